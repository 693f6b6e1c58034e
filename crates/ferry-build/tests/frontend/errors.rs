//! Errors name the Dockerfile and line, in Docker's words, with a hint.

use crate::util::{options, parse, parse_err};

#[test]
fn unknown_instruction_suggests_the_nearest() {
    let e = parse_err("FROM a\nRUN a\nRUN b\nRUN c\nRUN d\nRUN e\nRUNN echo hi\n");
    assert_eq!(
        e,
        "Dockerfile:7: unknown instruction: RUNN (did you mean RUN?)"
    );
    let e = parse_err("FROM a\nFOO bar\n");
    assert_eq!(e, "Dockerfile:2: unknown instruction: FOO");
}

#[test]
fn unsupported_features_name_the_line() {
    let cases = [
        (
            "FROM a\nRUN --mount=type=cache,target=/root/.cache pip install x\n",
            "Dockerfile:2: RUN --mount is not supported by ferry",
        ),
        (
            "FROM a\n\nRUN --network=none true\n",
            "Dockerfile:3: RUN --network is not supported by ferry",
        ),
        (
            "FROM a\nRUN --security=insecure true\n",
            "Dockerfile:2: RUN --security is not supported by ferry",
        ),
        (
            "FROM a\nONBUILD RUN echo hi\n",
            "Dockerfile:2: ONBUILD is not supported by ferry",
        ),
        (
            "FROM a\nCOPY --parents a/b /c\n",
            "Dockerfile:2: COPY --parents is not supported by ferry",
        ),
    ];
    for (text, want) in cases {
        let e = parse_err(text);
        assert!(e.starts_with(want), "{e}");
        assert!(e.contains('('), "a hint is given: {e}");
    }
}

#[test]
fn syntax_errors() {
    let cases = [
        ("", "Dockerfile:1: file with no instructions"),
        (
            "# only a comment\n",
            "Dockerfile:1: file with no instructions",
        ),
        (
            "FROM a b\n",
            "Dockerfile:1: FROM requires either one or three arguments",
        ),
        (
            "FROM a\nCOPY onlyone\n",
            "Dockerfile:2: COPY requires at least two arguments",
        ),
        (
            "FROM a\nCOPY --from a b\n",
            "Dockerfile:2: missing a value on flag: --from",
        ),
        (
            "FROM a\nCOPY --frm=x a b\n",
            "Dockerfile:2: unknown flag: --frm",
        ),
        (
            "FROM a\nCOPY --from=x --from=y a b\n",
            "Dockerfile:2: duplicate flag specified: --from",
        ),
        (
            "FROM a\nCOPY --chmod=u+x a b\n",
            "Dockerfile:2: invalid --chmod value \"u+x\"",
        ),
        ("FROM a\nCOPY a[ b\n", "Dockerfile:2: invalid source \"a[\""),
        (
            "FROM a\nENV\n",
            "Dockerfile:2: ENV requires at least one argument",
        ),
        (
            "FROM a\nENV A\n",
            "Dockerfile:2: ENV must have two arguments",
        ),
        (
            "FROM a\nENV A=1 B\n",
            "Dockerfile:2: Syntax error - can't find = in \"B\"",
        ),
        (
            "FROM a\nENV =x\n",
            "Dockerfile:2: ENV names can not be blank",
        ),
        (
            "FROM a\nARG =x\n",
            "Dockerfile:2: ARG names can not be blank",
        ),
        (
            "FROM a\nSHELL /bin/bash -c\n",
            "Dockerfile:2: SHELL requires the arguments to be in JSON form",
        ),
        (
            "FROM a\nWORKDIR\n",
            "Dockerfile:2: WORKDIR requires exactly one argument",
        ),
        (
            "FROM a\nEXPOSE 80/xyz\n",
            "Dockerfile:2: invalid proto: xyz",
        ),
        (
            "FROM a\nEXPOSE abc\n",
            "Dockerfile:2: invalid containerPort: abc",
        ),
        (
            "FROM a\nHEALTHCHECK --retries=0 CMD true\n",
            "Dockerfile:2: --retries must be at least 1 (not 0)",
        ),
        (
            "FROM a\nHEALTHCHECK --interval=fast CMD true\n",
            "Dockerfile:2: invalid duration \"fast\" for --interval",
        ),
        (
            "FROM a\nHEALTHCHECK BOGUS true\n",
            "Dockerfile:2: Unknown type \"BOGUS\" in HEALTHCHECK",
        ),
        (
            "FROM a\nHEALTHCHECK CMD\n",
            "Dockerfile:2: Missing command after HEALTHCHECK CMD",
        ),
        (
            "FROM a\nHEALTHCHECK NONE x\n",
            "Dockerfile:2: HEALTHCHECK NONE takes no arguments",
        ),
        (
            "FROM a\nVOLUME [\"\"]\n",
            "Dockerfile:2: VOLUME specified can not be an empty string",
        ),
        (
            "FROM a\nENV --x=1 A=b\n",
            "Dockerfile:2: unknown flag: --x (ENV takes no flags)",
        ),
    ];
    for (text, want) in cases {
        let e = parse_err(text);
        assert!(e.starts_with(want), "{text:?}: {e}");
    }
}

#[test]
fn plan_errors() {
    let cases = [
        (
            "RUN echo\nFROM a\n",
            "Dockerfile:1: RUN comes before the first FROM: no build stage in current context",
        ),
        (
            "ARG A=1\n",
            "Dockerfile:1: dockerfile contains no stages to build",
        ),
        (
            "ARG A=${B:?required}\nFROM a\n",
            "Dockerfile:1: failed to process \"${B:?required}\": B: required",
        ),
    ];
    for (text, want) in cases {
        let e = ferry_build::plan(&parse(text), &options(&[], None))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(want), "{text:?}: {e}");
    }
}

#[test]
fn step_errors() {
    let p = ferry_build::plan(
        &parse("FROM a\nARG S=SIGBOGUS\nSTOPSIGNAL $S\n"),
        &options(&[], None),
    )
    .unwrap();
    let e = p.steps(0, &[]).unwrap_err().to_string();
    assert!(
        e.starts_with("Dockerfile:3: Invalid signal: SIGBOGUS"),
        "{e}"
    );
    let p = ferry_build::plan(&parse("FROM a\nCOPY \"a b\" /c\n"), &options(&[], None)).unwrap();
    let e = p.steps(0, &[]).unwrap_err().to_string();
    assert!(e.starts_with("Dockerfile:2: failed to process \"\\\"a\": unexpected end of statement while looking for matching double-quote"), "{e}");
}

#[test]
fn errors_carry_their_line() {
    let e = ferry_build::dockerfile::parse("app.Dockerfile", "FROM a\n\n\nRUNX\n").unwrap_err();
    assert_eq!(e.line(), Some(4));
    assert!(e.to_string().starts_with("app.Dockerfile:4:"));
}
