//! Slow and idle clients cannot take the daemon down: connections that never
//! finish their request heads once exhausted its file descriptors, and `/healthz`
//! (with every Service, whose proxies live in the same process) stopped answering.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use util::Daemon;

/// How many slow clients to open: 3,000, or fewer where this process's open-files
/// limit is lower.
fn flood_size() -> usize {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    let soft = getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(s, _)| s);
    usize::try_from(soft.saturating_sub(512))
        .unwrap_or(usize::MAX)
        .min(3000)
}

/// Opens `n` connections to the daemon that send `bytes` and then nothing.
fn slow_clients(port: u16, n: usize, bytes: &[u8]) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(bytes).unwrap();
            s
        })
        .collect()
}

/// `GET /healthz` on `s`; the response's status line and body, or `None` if the
/// connection was closed first.
fn healthz_on(s: &mut TcpStream) -> Option<(String, String)> {
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= len {
                let status = head.lines().next().unwrap_or_default().to_string();
                return Some((status, body.to_string()));
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// `GET /healthz` from a fresh client.
fn healthz(port: u16) -> Option<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    healthz_on(&mut s)
}

/// Whether the daemon closed `s` (EOF or reset) without a byte, within 30 s.
fn closed_silently(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut rest = Vec::new();
    match s.read_to_end(&mut rest) {
        Ok(_) => rest.is_empty(),
        Err(e) => {
            rest.is_empty()
                && !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                )
        }
    }
}

#[test]
fn regression_slow_header_flood_keeps_healthz_up() {
    let _serial = util::serial();
    let d = Daemon::start(&["--addr", "127.0.0.1:0", "--header-timeout", "2s"]);
    let n = flood_size();
    let mut slow = slow_clients(
        d.port,
        n,
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
    );
    // While they are held, a fresh client is answered.
    let (status, body) = healthz(d.port).unwrap_or_else(|| {
        panic!(
            "/healthz did not answer with {n} slow clients held\n{}",
            d.log_tail()
        )
    });
    assert!(status.starts_with("HTTP/1.1 200"), "{status}\n{body}");
    // Every slow one is closed after the header timeout, never answered.
    for (i, s) in slow.iter_mut().enumerate() {
        assert!(
            closed_silently(s),
            "slow client {i} of {n} was not closed (or was answered)\n{}",
            d.log_tail()
        );
    }
    assert!(healthz(d.port).is_some_and(|(s, _)| s.starts_with("HTTP/1.1 200")));
}

#[test]
fn regression_connection_cap_keeps_established_keep_alive_client_served() {
    let _serial = util::serial();
    // Slow clients are not timed out here: only the cap is at work.
    let d = Daemon::start(&[
        "--addr",
        "127.0.0.1:0",
        "--header-timeout",
        "10m",
        "--max-connections",
        "64",
    ]);
    // Nothing else talks to this daemon: the established client and 63 slow ones
    // fill the cap.
    let mut established = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    let first = healthz_on(&mut established).expect("an answer before the flood");
    assert!(first.0.starts_with("HTTP/1.1 200"), "{first:?}");

    let mut slow = slow_clients(d.port, 200, b"GET /healthz HTTP/1.1\r\nHost:");
    let refused = slow
        .iter_mut()
        .skip(63)
        .map(closed_silently)
        .filter(|closed| *closed)
        .count();
    assert_eq!(
        refused,
        200 - 63,
        "connections past the cap are closed at once"
    );
    let mut fresh = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    assert!(
        healthz_on(&mut fresh).is_none(),
        "a fresh client past the cap is closed unanswered"
    );

    // The established client is served as before, on the same connection.
    for _ in 0..3 {
        let again = healthz_on(&mut established).unwrap_or_else(|| {
            panic!(
                "the established keep-alive connection was closed\n{}",
                d.log_tail()
            )
        });
        assert!(again.0.starts_with("HTTP/1.1 200"), "{again:?}");
    }

    // Once the slow clients go, fresh ones are served again.
    drop(slow);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !healthz(d.port).is_some_and(|(s, _)| s.starts_with("HTTP/1.1 200")) {
        assert!(
            Instant::now() < deadline,
            "fresh clients still refused 10 s after the slow ones left\n{}",
            d.log_tail()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        std::fs::read_to_string(d.home().join("serve.log"))
            .unwrap_or_default()
            .contains("its cap"),
        "the refusals are logged\n{}",
        d.log_tail()
    );
}

#[test]
fn regression_out_of_file_descriptors_on_accept_is_backed_off_not_fatal() {
    let _serial = util::serial();
    let home = tempfile::tempdir().unwrap();
    let log_path = home.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let log_tail = || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "--- daemon log ---\n{}",
            lines[lines.len().saturating_sub(40)..].join("\n")
        )
    };
    // A hard open-files limit of 200 (which the daemon cannot raise) and a cap
    // above it: accepting runs out of descriptors before the cap is reached.
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 200 && exec \"$0\" serve --addr 127.0.0.1:0 --header-timeout 2s --max-connections 1000")
        .arg(util::ferry_bin())
        .env("FERRY_HOME", home.path())
        .env("RUST_LOG", "info")
        .env_remove("FERRY_SERVER")
        .env_remove("FERRY_TOKEN")
        .env_remove("FERRY_WEBHOOK_SECRET")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = child.id();
    let port = util::eventually("daemon.json of the new daemon", 20, log_tail, || {
        let text = std::fs::read_to_string(home.path().join("daemon.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        (v["pid"].as_u64() == Some(u64::from(pid))).then_some(())?;
        let addr: std::net::SocketAddr = v["addr"].as_str()?.parse().ok()?;
        Some(addr.port())
    });
    let stop = |child: &mut std::process::Child| {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = child.wait();
    };

    let mut slow = slow_clients(port, 300, b"GET /healthz HTTP/1.1\r\nHost:");
    util::eventually("an accept error in the log", 20, log_tail, || {
        std::fs::read_to_string(&log_path)
            .ok()?
            .contains("accept failed")
            .then_some(())
    });
    // Every slow client is closed in time (those waiting in the backlog once
    // descriptors free up), and then /healthz answers from the same daemon.
    for (i, s) in slow.iter_mut().enumerate() {
        if !closed_silently(s) {
            stop(&mut child);
            panic!("slow client {i} was not closed\n{}", log_tail());
        }
    }
    let answered = util::eventually("/healthz after the flood", 30, log_tail, || {
        healthz(port).filter(|(s, _)| s.starts_with("HTTP/1.1 200"))
    });
    let alive = matches!(child.try_wait(), Ok(None));
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    stop(&mut child);
    assert!(alive, "the daemon exited\n{}", log_tail());
    assert!(answered.1.contains("ok"), "{answered:?}");
    // Logged per burst, not per failed accept: no hot loop.
    let logged = text.matches("accept failed").count();
    eprintln!(
        "{logged} bursts of accept errors logged; {} recoveries",
        text.matches("accepting connections again").count()
    );
    assert!(
        (1..=300).contains(&logged),
        "{logged} accept errors logged\n{}",
        log_tail()
    );
}
