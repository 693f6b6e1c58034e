//! Stages: names, indexes, FROM <stage>, COPY --from, --target and the plan.

use ferry_build::dockerfile::{CommandLine, Healthcheck, InstructionKind};
use ferry_build::evaluator::StepKind;
use ferry_build::{Base, CopySource};

use crate::util::{env, options, parse, plan, run_var, steps};

const PYTHON: &str = "FROM python:3.11-slim AS builder
WORKDIR /app
COPY requirements.txt .
RUN pip install --user --no-cache-dir -r requirements.txt
FROM python:3.11-slim
RUN useradd -m appuser
WORKDIR /app
COPY --from=builder /root/.local /home/appuser/.local
COPY --chown=appuser:appuser . .
USER appuser
ENV PATH=/home/appuser/.local/bin:$PATH
EXPOSE 8080
HEALTHCHECK CMD curl -f http://localhost:8080/health || exit 1
CMD [\"gunicorn\", \"--bind\", \"0.0.0.0:8080\", \"app:app\"]
";

/// The multi-stage Python Dockerfile teams write, end to end.
#[test]
fn python_multi_stage() {
    let df = parse(PYTHON);
    assert_eq!(df.instructions.len(), 14);
    assert!(df.warnings.is_empty(), "{:?}", df.warnings);
    for (i, ins) in df.instructions.iter().enumerate() {
        assert_eq!((ins.start_line, ins.end_line), (i + 1, i + 1));
    }
    let p = plan(PYTHON, &[], None);
    assert_eq!(p.stages.len(), 2);
    assert_eq!(p.stages[0].name.as_deref(), Some("builder"));
    assert_eq!(p.stages[0].base, Base::Image("python:3.11-slim".into()));
    assert_eq!(p.stages[1].name, None);
    assert_eq!(p.stages[1].dependencies, [0]);
    assert_eq!(p.order, [0, 1]);
    assert_eq!(p.target, 1);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);

    let python_env = [
        (
            "PATH",
            "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("LANG", "C.UTF-8"),
    ];
    let s0 = steps(&p, 0, &python_env);
    assert_eq!(s0[0].kind, StepKind::Workdir("/app".into()));
    match &s0[1].kind {
        StepKind::Copy(c) => {
            assert_eq!(c.from, CopySource::Context);
            assert_eq!(c.sources, ["requirements.txt"]);
            assert_eq!(c.dest, ".");
        }
        k => panic!("{k:?}"),
    }
    assert_eq!(run_var(&s0[2], "LANG"), Some("C.UTF-8"));

    let (s1, final_env) = p.steps(1, &env(&python_env)).unwrap();
    match &s1[2].kind {
        StepKind::Copy(c) => {
            assert_eq!(c.from, CopySource::Stage(0));
            assert_eq!(c.sources, ["/root/.local"]);
            assert_eq!(c.dest, "/home/appuser/.local");
        }
        k => panic!("{k:?}"),
    }
    match &s1[3].kind {
        StepKind::Copy(c) => assert_eq!(c.chown.as_deref(), Some("appuser:appuser")),
        k => panic!("{k:?}"),
    }
    assert_eq!(s1[4].kind, StepKind::User("appuser".into()));
    let path =
        "/home/appuser/.local/bin:/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin";
    assert_eq!(
        s1[5].kind,
        StepKind::Env(vec![("PATH".into(), path.into())])
    );
    assert!(final_env.contains(&("PATH".to_string(), path.to_string())));
    match &s1[6].kind {
        StepKind::Expose(p) => assert_eq!(p[0].keys(), ["8080/tcp"]),
        k => panic!("{k:?}"),
    }
    match &s1[7].kind {
        StepKind::Healthcheck(Healthcheck::Check { test, .. }) => {
            assert_eq!(
                test,
                &[
                    "CMD-SHELL",
                    "curl -f http://localhost:8080/health || exit 1"
                ]
            );
        }
        k => panic!("{k:?}"),
    }
    assert_eq!(
        s1[8].kind,
        StepKind::Cmd(CommandLine::Exec(vec![
            "gunicorn".into(),
            "--bind".into(),
            "0.0.0.0:8080".into(),
            "app:app".into()
        ]))
    );
    assert_eq!((s1[8].start_line, s1[8].end_line), (14, 14));
}

const MULTI: &str = "FROM alpine AS base
RUN echo base
FROM base AS Build
RUN echo build
FROM golang AS tools
RUN echo tools
FROM scratch AS final
COPY --from=build /out /out
COPY --from=0 /etc/os-release /
COPY --from=nginx:1.27 /etc/nginx/nginx.conf /
FROM alpine AS other
";

#[test]
fn target_selects_only_needed_stages() {
    let p = plan(MULTI, &[], Some("FINAL"));
    assert_eq!(p.target, 3);
    assert_eq!(p.order, [0, 1, 3]);
    assert_eq!(p.stages[1].base, Base::Stage(0));
    assert_eq!(p.stages[3].base, Base::Scratch);
    let sources: Vec<&CopySource> = p.stages[3].copy_sources.values().collect();
    assert_eq!(
        sources,
        [
            &CopySource::Stage(1),
            &CopySource::Stage(0),
            &CopySource::Image("nginx:1.27".into())
        ]
    );
    // Without --target, the last stage, which needs nothing else.
    let p = plan(MULTI, &[], None);
    assert_eq!(p.order, [4]);
    let p = plan(MULTI, &[], Some("tools"));
    assert_eq!(p.order, [2]);
    let e = ferry_build::plan(&parse(MULTI), &options(&[], Some("nope")))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "Dockerfile: target stage \"nope\" could not be found; the named stages are: base, build, tools, final, other"
    );
}

#[test]
fn a_stage_name_wins_over_an_image_name() {
    let p = plan(
        "FROM busybox AS alpine\nRUN x\nFROM alpine\nCOPY --from=alpine /a /b\n",
        &[],
        None,
    );
    assert_eq!(p.stages[1].base, Base::Stage(0));
    assert_eq!(
        p.stages[1].copy_sources.values().next(),
        Some(&CopySource::Stage(0))
    );
    assert_eq!(p.order, [0, 1]);
}

#[test]
fn forward_references_are_errors() {
    let df = parse("FROM alpine AS a\nCOPY --from=b /x /x\nFROM alpine AS b\n");
    let e = ferry_build::plan(&df, &options(&[], None))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("Dockerfile:2: COPY --from=b refers to the stage defined later at line 3"),
        "{e}"
    );
    let df = parse("FROM alpine AS a\nCOPY --from=1 /x /x\nFROM alpine AS b\n");
    let e = ferry_build::plan(&df, &options(&[], None))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("Dockerfile:2: COPY --from=1 refers to a stage defined later"),
        "{e}"
    );
    let df = parse("FROM later\nFROM alpine AS later\n");
    let e = ferry_build::plan(&df, &options(&[], None))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("Dockerfile:1: FROM later refers to the stage defined later at line 2"),
        "{e}"
    );
    let df = parse("FROM alpine AS a\nCOPY --from=a /x /x\n");
    let e = ferry_build::plan(&df, &options(&[], None))
        .unwrap_err()
        .to_string();
    assert!(e.contains("refers to the stage it is in"), "{e}");
    let df = parse("FROM alpine\nCOPY --from=7 /x /x\n");
    let e = ferry_build::plan(&df, &options(&[], None))
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid stage index 7"), "{e}");
}

#[test]
fn duplicate_and_invalid_stage_names() {
    let df = parse("FROM alpine AS a\nFROM alpine AS A\n");
    let e = ferry_build::plan(&df, &options(&[], None))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("Dockerfile:2: duplicate stage name \"a\""),
        "{e}"
    );
    let e = crate::util::parse_err("FROM alpine AS 1st\n");
    assert!(e.contains("invalid name for build stage: \"1st\""), "{e}");
}

#[test]
fn from_platform_other_than_host_warns() {
    let host = ferry_build::Platform::host();
    let other = if host.arch == "arm64" {
        "linux/amd64"
    } else {
        "linux/arm64"
    };
    let p = plan(&format!("FROM --platform={other} alpine\n"), &[], None);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.line == Some(1) && w.message.contains("does not match")),
        "{:?}",
        p.warnings
    );
    assert_eq!(p.stages[0].platform.as_deref(), Some(other));
}

#[test]
fn empty_base_name_is_an_error() {
    let df = parse("ARG IMAGE\nFROM $IMAGE\n");
    let e = ferry_build::plan(&df, &options(&[], None))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("Dockerfile:2: base name ($IMAGE) should not be blank"),
        "{e}"
    );
    let p = plan("ARG IMAGE\nFROM $IMAGE\n", &[("IMAGE", "debian:12")], None);
    assert_eq!(p.stages[0].base, Base::Image("debian:12".into()));
}

#[test]
fn stage_instructions_are_split_at_from() {
    let p = plan(MULTI, &[], None);
    let counts: Vec<usize> = p.stages.iter().map(|s| s.instructions.len()).collect();
    assert_eq!(counts, [1, 1, 1, 3, 0]);
    assert!(matches!(
        p.stages[3].instructions[0].kind,
        InstructionKind::Copy(_)
    ));
    assert_eq!(p.stages[3].line, 7);
}

#[test]
fn undeclared_from_argument_is_warned() {
    let p = plan("FROM alpine:${TAG:-3.20}\n", &[], None);
    assert_eq!(p.stages[0].base, Base::Image("alpine:3.20".into()));
    assert!(
        p.warnings
            .iter()
            .any(|w| w.line == Some(1)
                && w.message.starts_with("FROM argument 'TAG' is not declared"))
    );
    let p = plan("ARG TAG\nFROM alpine:${TAG:-3.20}\n", &[], None);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn crlf_line_endings() {
    let df = parse("FROM alpine\r\nRUN echo a \\\r\n  b\r\nCMD [\"x\"]\r\n");
    assert_eq!(df.instructions.len(), 3);
    assert_eq!(df.instructions[1].original, "RUN echo a   b");
    assert_eq!(
        (df.instructions[1].start_line, df.instructions[1].end_line),
        (2, 3)
    );
}
