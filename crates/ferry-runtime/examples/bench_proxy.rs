//! ferry's Service proxy standalone, for `bench/proxy-vs-nginx.sh`.
//!
//! Usage: `bench_proxy LISTEN BACKEND[,BACKEND...] [THREADS] [http|tcp|auto]`;
//! runs until killed.

use std::net::SocketAddr;

use ferry_runtime::proxy::{self, Backends, Endpoint, Metrics, Protocol, ServiceId};
use tokio::net::TcpListener;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:18081".into());
    let backends: Vec<SocketAddr> = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:18080".into())
        .split(',')
        .map(|a| a.parse().expect("BACKEND is HOST:PORT"))
        .collect();
    let threads = args.next().and_then(|t| t.parse().ok()).unwrap_or(2);
    let protocol = match args.next().as_deref() {
        None | Some("http") => Protocol::Http,
        Some("tcp") => Protocol::Tcp,
        Some("auto") => Protocol::Auto,
        Some(other) => panic!("protocol {other:?}: expected http, tcp or auto"),
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?
        .block_on(run(listen, backends, protocol))
}

async fn run(listen: String, addrs: Vec<SocketAddr>, protocol: Protocol) -> std::io::Result<()> {
    let backends = Backends::new();
    backends.set_endpoints(
        addrs
            .iter()
            .enumerate()
            .map(|(i, a)| Endpoint::ready(*a, "bench", format!("bench-{i}")))
            .collect(),
    );
    let metrics = Metrics::new();
    let listener = TcpListener::bind(&listen).await?;
    let service = ServiceId::new("bench", "backend", 80);
    let handle = proxy::serve(listener, service, protocol, backends, metrics.clone()).await;
    println!("bench_proxy listening on {}", handle.local_addr);
    // Metrics are recorded as in the runtime (that cost is part of the figure).
    std::future::pending::<()>().await;
    drop((handle, metrics));
    Ok(())
}
