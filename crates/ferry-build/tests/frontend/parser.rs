//! The parser: lines, continuations, comments, directives, JSON versus shell form,
//! flags, and every instruction's typed form.

use std::time::Duration;

use ferry_build::dockerfile::{
    ArgDecl, CommandLine, Copy, From, Healthcheck, InstructionKind, KeyValue,
};

use crate::util::{keywords, kinds, parse, parse_err};

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: v.into(),
    }
}

#[test]
fn keywords_are_case_insensitive_and_lines_are_kept() {
    let df = parse("from alpine\n\nRun echo a \\\n  b \\\n  c\n# comment\n  cmd [\"x\"]\n");
    assert_eq!(keywords(&df), ["FROM", "RUN", "CMD"]);
    let lines: Vec<(usize, usize)> = df
        .instructions
        .iter()
        .map(|i| (i.start_line, i.end_line))
        .collect();
    assert_eq!(lines, [(1, 1), (3, 5), (7, 7)]);
    assert_eq!(
        df.instructions[1].kind,
        InstructionKind::Run(ferry_build::dockerfile::Run {
            command: CommandLine::Shell("echo a   b   c".into()),
            heredocs: vec![],
        })
    );
}

/// buildkit's `TestParseWarnsOnEmptyContinutationLine` file: comments inside
/// continuations are dropped, empty continuation lines warned about.
#[test]
fn comments_and_empty_lines_inside_continuations() {
    let text = "FROM alpine:3.6\n\nRUN something \\\n\n    following \\\n\n    more\n\nRUN another \\\n\n    thing\nRUN non-indented \\\n# this is a comment\n   after-comment\n\nRUN indented \\\n    # this is an indented comment\n    comment\n";
    let df = parse(text);
    let runs: Vec<String> = df
        .instructions
        .iter()
        .filter_map(|i| match &i.kind {
            InstructionKind::Run(r) => match &r.command {
                CommandLine::Shell(s) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(
        runs,
        [
            "something     following     more",
            "another     thing",
            "non-indented    after-comment",
            "indented     comment"
        ]
    );
    let empty_warnings = df
        .warnings
        .iter()
        .filter(|w| w.message.contains("empty continuation line"))
        .count();
    assert_eq!(empty_warnings, 2);
    assert_eq!(df.instructions[1].start_line, 3);
    assert_eq!(df.instructions[1].end_line, 7);
}

#[test]
fn a_comment_is_only_a_comment_at_line_start() {
    let df = parse("FROM alpine\nRUN echo hi # not a comment\n");
    assert_eq!(
        kinds(&df)[1],
        &InstructionKind::Run(ferry_build::dockerfile::Run {
            command: CommandLine::Shell("echo hi # not a comment".into()),
            heredocs: vec![]
        })
    );
}

#[test]
fn escaped_escape_at_line_end_is_not_a_continuation() {
    let df = parse("FROM alpine\nRUN echo foo\\\\\nRUN echo bar\n");
    assert_eq!(keywords(&df), ["FROM", "RUN", "RUN"]);
}

/// The Dockerfile reference's escape directive examples.
#[test]
fn escape_directive() {
    let windows = "# escape=`\n\nFROM microsoft/nanoserver\nCOPY testfile.txt c:\\\nRUN dir c:\\\n";
    let df = parse(windows);
    assert_eq!(df.escape, '`');
    assert_eq!(keywords(&df), ["FROM", "COPY", "RUN"]);
    match &df.instructions[1].kind {
        InstructionKind::Copy(c) => assert_eq!(c.dest, "c:\\"),
        k => panic!("{k:?}"),
    }
    // Without the directive the backslashes continue the lines.
    let df = parse("FROM microsoft/nanoserver\nCOPY testfile.txt c:\\\nRUN dir c:\\\n");
    assert_eq!(keywords(&df), ["FROM", "COPY"]);
    // A backtick continues lines under `# escape=``.
    let df = parse("# escape=`\nFROM alpine\nRUN echo a `\n  b\n");
    assert_eq!(df.instructions[1].end_line, 4);
}

/// The reference's parser directive rules and buildkit's `directives_test.go`.
#[test]
fn directive_rules() {
    assert_eq!(parse("#escape=`\nFROM a\n").escape, '`');
    assert_eq!(parse("# ESCAPE = `\nFROM a\n").escape, '`');
    assert_eq!(
        parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM a\n").escape,
        '`'
    );
    let df = parse("# syntax=docker/dockerfile:1\nFROM a\n");
    assert_eq!(df.syntax(), Some("docker/dockerfile:1"));
    assert!(
        df.warnings
            .iter()
            .any(|w| w.message.contains("syntax directive"))
    );
    // `# check=` is accepted and ignored.
    assert_eq!(
        parse("# check=skip=all\nFROM a\n").directives[0].name,
        "check"
    );
    // After any other line, directives are comments.
    assert_eq!(parse("# a comment\n# escape=`\nFROM a\n").escape, '\\');
    assert_eq!(parse("FROM a\n# escape=`\n").escape, '\\');
    assert_eq!(
        parse("# unknowndirective=value\n# escape=`\nFROM a\n").escape,
        '\\'
    );
    assert_eq!(parse("\n# escape=`\nFROM a\n").escape, '\\');
    // A directive split by a continuation is no directive.
    let e = parse_err("# direc \\\ntive=value\nFROM a\n");
    assert!(
        e.contains("Dockerfile:2: unknown instruction: TIVE=VALUE"),
        "{e}"
    );
    let e = parse_err("# escape=\\\n# escape=`\nFROM a\n");
    assert!(
        e.contains("only one escape parser directive can be used"),
        "{e}"
    );
    let e = parse_err("# escape=x\nFROM a\n");
    assert!(e.contains("invalid escape token 'x'"), "{e}");
    // A BOM before the first directive is ignored.
    assert_eq!(parse("\u{feff}# escape=`\nFROM a\n").escape, '`');
}

#[test]
fn json_versus_shell_form() {
    let df = parse(concat!(
        "FROM a\n",
        "RUN [\"echo\", \"hi\"]\n",
        "RUN [\"echo\", \"hi\",]\n",
        "CMD [ \"a b\" ]\n",
        "ENTRYPOINT [\"/bin/sh\", \"-c\"]\n",
        "CMD []\n",
        "RUN [echo]\n",
    ));
    let k = kinds(&df);
    assert!(
        matches!(k[1], InstructionKind::Run(r) if r.command == CommandLine::Exec(vec!["echo".into(), "hi".into()]))
    );
    // Invalid JSON falls back to the shell form.
    assert!(
        matches!(k[2], InstructionKind::Run(r) if r.command == CommandLine::Shell("[\"echo\", \"hi\",]".into()))
    );
    assert_eq!(
        k[3],
        &InstructionKind::Cmd(CommandLine::Exec(vec!["a b".into()]))
    );
    assert_eq!(
        k[4],
        &InstructionKind::Entrypoint(CommandLine::Exec(vec!["/bin/sh".into(), "-c".into()]))
    );
    assert_eq!(k[5], &InstructionKind::Cmd(CommandLine::Exec(vec![])));
    assert!(
        matches!(k[6], InstructionKind::Run(r) if r.command == CommandLine::Shell("[echo]".into()))
    );
    // Valid JSON with non-strings is an error, as in Docker.
    let e = parse_err("FROM a\nCMD [\"a\", 1]\n");
    assert!(
        e.contains(
            "Dockerfile:2: when using JSON array syntax, arrays must be comprised of strings only"
        ),
        "{e}"
    );
}

#[test]
fn every_instruction_typed() {
    let df = parse(concat!(
        "ARG BASE=alpine\n",
        "FROM --platform=$BUILDPLATFORM ${BASE}:3.20 AS Build\n",
        "ARG A B=2 C=\"x y\"\n",
        "ENV K1=v1 K2=\"v 2\"\n",
        "ENV LEGACY some value\n",
        "WORKDIR /app\n",
        "COPY --from=build --chown=1:1 --chmod=0755 --link a b /dst/\n",
        "ADD --checksum=sha256:abc https://example.com/x.tgz /x\n",
        "COPY [\"with space\", \"/d/\"]\n",
        "USER app:app\n",
        "EXPOSE 80 80/tcp 53/udp 8000-8010\n",
        "LABEL a=b \"c d\"=\"e f\"\n",
        "STOPSIGNAL SIGTERM\n",
        "SHELL [\"/bin/bash\", \"-c\"]\n",
        "VOLUME [\"/data\", \"/logs\"]\n",
        "VOLUME /a /b\n",
        "HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --start-interval=1s --retries=3 CMD [\"curl\", \"-f\", \"http://x/\"]\n",
        "HEALTHCHECK NONE\n",
        "MAINTAINER someone@example.com\n",
    ));
    let k = kinds(&df);
    assert_eq!(
        k[0],
        &InstructionKind::Arg(vec![ArgDecl {
            name: "BASE".into(),
            default: Some("alpine".into())
        }])
    );
    assert_eq!(
        k[1],
        &InstructionKind::From(From {
            image: "${BASE}:3.20".into(),
            name: Some("build".into()),
            platform: Some("$BUILDPLATFORM".into())
        })
    );
    assert_eq!(
        k[2],
        &InstructionKind::Arg(vec![
            ArgDecl {
                name: "A".into(),
                default: None
            },
            ArgDecl {
                name: "B".into(),
                default: Some("2".into())
            },
            ArgDecl {
                name: "C".into(),
                default: Some("\"x y\"".into())
            },
        ])
    );
    assert_eq!(
        k[3],
        &InstructionKind::Env(vec![kv("K1", "v1"), kv("K2", "\"v 2\"")])
    );
    assert_eq!(
        k[4],
        &InstructionKind::Env(vec![kv("LEGACY", "some value")])
    );
    assert!(
        df.warnings
            .iter()
            .any(|w| w.line == Some(5) && w.message.contains("legacy"))
    );
    assert_eq!(k[5], &InstructionKind::Workdir("/app".into()));
    assert_eq!(
        k[6],
        &InstructionKind::Copy(Copy {
            sources: vec!["a".into(), "b".into()],
            dest: "/dst/".into(),
            from: Some("build".into()),
            chown: Some("1:1".into()),
            chmod: Some("0755".into()),
            link: true,
            ..Copy::default()
        })
    );
    assert!(
        df.warnings
            .iter()
            .any(|w| w.line == Some(7) && w.message.contains("--link"))
    );
    assert!(
        matches!(k[7], InstructionKind::Add(c) if c.checksum.as_deref() == Some("sha256:abc") && c.sources == ["https://example.com/x.tgz"])
    );
    assert!(
        matches!(k[8], InstructionKind::Copy(c) if c.sources == ["with space"] && c.dest == "/d/")
    );
    assert_eq!(k[9], &InstructionKind::User("app:app".into()));
    assert_eq!(
        k[10],
        &InstructionKind::Expose(vec![
            "80".into(),
            "80/tcp".into(),
            "53/udp".into(),
            "8000-8010".into()
        ])
    );
    assert_eq!(
        k[11],
        &InstructionKind::Label(vec![kv("a", "b"), kv("\"c d\"", "\"e f\"")])
    );
    assert_eq!(k[12], &InstructionKind::StopSignal("SIGTERM".into()));
    assert_eq!(
        k[13],
        &InstructionKind::Shell(vec!["/bin/bash".into(), "-c".into()])
    );
    assert_eq!(
        k[14],
        &InstructionKind::Volume(vec!["/data".into(), "/logs".into()])
    );
    assert_eq!(
        k[15],
        &InstructionKind::Volume(vec!["/a".into(), "/b".into()])
    );
    assert_eq!(
        k[16],
        &InstructionKind::Healthcheck(Healthcheck::Check {
            test: vec!["CMD".into(), "curl".into(), "-f".into(), "http://x/".into()],
            interval: Some(Duration::from_secs(30)),
            timeout: Some(Duration::from_secs(3)),
            start_period: Some(Duration::from_secs(5)),
            start_interval: Some(Duration::from_secs(1)),
            retries: Some(3),
        })
    );
    assert_eq!(k[17], &InstructionKind::Healthcheck(Healthcheck::None));
    assert_eq!(
        k[18],
        &InstructionKind::Maintainer("someone@example.com".into())
    );
    assert!(
        df.warnings
            .iter()
            .any(|w| w.line == Some(19) && w.message.contains("MAINTAINER"))
    );
}

/// The reference's ENV and LABEL examples keep quotes for the lexer to remove.
#[test]
fn env_and_label_examples() {
    let df = parse(concat!(
        "FROM a\n",
        "ENV MY_NAME=\"John Doe\"\n",
        "ENV MY_DOG=Rex\\ The\\ Dog\n",
        "ENV MY_CAT=fluffy\n",
        "ENV MY_NAME=\"John Doe\" MY_DOG=Rex\\ The\\ Dog \\\n    MY_CAT=fluffy\n",
        "LABEL \"com.example.vendor\"=\"ACME Incorporated\"\n",
        "LABEL description=\"This text illustrates \\\nthat label-values can span multiple lines.\"\n",
        "LABEL multi.label1=\"value1\" \\\n      multi.label2=\"value2\" \\\n      other=\"value3\"\n",
    ));
    let k = kinds(&df);
    assert_eq!(
        k[2],
        &InstructionKind::Env(vec![kv("MY_DOG", "Rex\\ The\\ Dog")])
    );
    assert_eq!(
        k[4],
        &InstructionKind::Env(vec![
            kv("MY_NAME", "\"John Doe\""),
            kv("MY_DOG", "Rex\\ The\\ Dog"),
            kv("MY_CAT", "fluffy")
        ])
    );
    assert_eq!(
        k[6],
        &InstructionKind::Label(vec![kv(
            "description",
            "\"This text illustrates that label-values can span multiple lines.\""
        )])
    );
    assert!(matches!(k[7], InstructionKind::Label(l) if l.len() == 3));
}

/// buildkit's `testfiles/health` case: HEALTHCHECK forms and a shell command.
#[test]
fn healthcheck_shell_form() {
    let df =
        parse("FROM debian\nHEALTHCHECK --retries=2 CMD curl -f http://localhost/ || exit 1\n");
    assert_eq!(
        kinds(&df)[1],
        &InstructionKind::Healthcheck(Healthcheck::Check {
            test: vec![
                "CMD-SHELL".into(),
                "curl -f http://localhost/ || exit 1".into()
            ],
            interval: None,
            timeout: None,
            start_period: None,
            start_interval: None,
            retries: Some(2),
        })
    );
}

#[test]
fn flags_end_at_double_dash_and_only_lead() {
    let df = parse("FROM a\nRUN -- --not-a-flag\nCOPY src --chown=x /d\n");
    assert!(
        matches!(kinds(&df)[1], InstructionKind::Run(r) if r.command == CommandLine::Shell("--not-a-flag".into()))
    );
    assert!(
        matches!(kinds(&df)[2], InstructionKind::Copy(c) if c.sources == ["src", "--chown=x"] && c.chown.is_none())
    );
}
