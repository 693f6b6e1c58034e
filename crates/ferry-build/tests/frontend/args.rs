//! ARG and ENV scoping and expansion, with the Dockerfile reference's examples.

use ferry_build::evaluator::StepKind;

use crate::util::{plan, run_var, steps};

fn user(s: &ferry_build::Step) -> &str {
    match &s.kind {
        StepKind::User(u) => u,
        k => panic!("{k:?}"),
    }
}

/// "Scope": a variable is usable only after its ARG line.
#[test]
fn arg_is_defined_from_its_line_on() {
    let text = "FROM busybox\nUSER ${username:-some_user}\nARG username\nUSER $username\n";
    let p = plan(text, &[("username", "what_user")], None);
    let s = steps(&p, 0, &[]);
    assert_eq!(user(&s[0]), "some_user");
    assert_eq!(user(&s[2]), "what_user");
    assert!(
        p.warnings
            .iter()
            .all(|w| !w.message.contains("not consumed"))
    );
}

/// "Using ARG variables": ENV overrides ARG of the same name.
#[test]
fn env_overrides_arg() {
    let text = "FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=v1.0.0\nRUN echo $CONT_IMG_VER\n";
    let p = plan(text, &[("CONT_IMG_VER", "v2.0.1")], None);
    let s = steps(&p, 0, &[]);
    assert_eq!(run_var(&s[2], "CONT_IMG_VER"), Some("v1.0.0"));

    let text = "FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}\nRUN echo $CONT_IMG_VER\n";
    let with = plan(text, &[("CONT_IMG_VER", "v2.0.1")], None);
    assert_eq!(
        run_var(&steps(&with, 0, &[])[2], "CONT_IMG_VER"),
        Some("v2.0.1")
    );
    let without = plan(text, &[], None);
    assert_eq!(
        run_var(&steps(&without, 0, &[])[2], "CONT_IMG_VER"),
        Some("v1.0.0")
    );
}

/// "Understand how ARG and FROM interact": global ARGs reach FROM lines only,
/// unless redeclared in the stage.
#[test]
fn global_args_reach_from_and_redeclared_args() {
    let text = "ARG VERSION=latest\nFROM busybox:$VERSION\nARG VERSION\nRUN echo $VERSION > image_version\n";
    let p = plan(text, &[], None);
    assert_eq!(
        p.stages[0].base,
        ferry_build::Base::Image("busybox:latest".into())
    );
    assert_eq!(run_var(&steps(&p, 0, &[])[1], "VERSION"), Some("latest"));

    let text = "ARG  CODE_VERSION=latest\nFROM base:${CODE_VERSION}\nCMD  /code/run-app\n\nFROM extras:${CODE_VERSION}\nCMD  /code/run-extras\n";
    let p = plan(text, &[("CODE_VERSION", "1.2")], None);
    assert_eq!(
        p.stages[0].base,
        ferry_build::Base::Image("base:1.2".into())
    );
    assert_eq!(
        p.stages[1].base,
        ferry_build::Base::Image("extras:1.2".into())
    );

    // Not redeclared: invisible in the stage.
    let text = "ARG VERSION=latest\nFROM busybox:$VERSION\nWORKDIR /v$VERSION\nRUN true\n";
    let p = plan(text, &[], None);
    let s = steps(&p, 0, &[]);
    assert_eq!(s[0].kind, StepKind::Workdir("/v".into()));
    assert_eq!(run_var(&s[1], "VERSION"), None);
}

#[test]
fn build_arg_overrides_default_and_defaults_expand() {
    let text = "FROM a\nARG A=one B=${A}-two\nRUN x\n";
    let s = steps(&plan(text, &[], None), 0, &[]);
    assert_eq!(
        s[0].kind,
        StepKind::Arg(vec![
            ("A".into(), Some("one".into())),
            ("B".into(), Some("one-two".into()))
        ])
    );
    let s = steps(&plan(text, &[("A", "uno")], None), 0, &[]);
    assert_eq!(run_var(&s[1], "B"), Some("uno-two"));
    // Quotes in defaults are removed.
    let s = steps(&plan("FROM a\nARG C=\"x y\"\nRUN x\n", &[], None), 0, &[]);
    assert_eq!(run_var(&s[1], "C"), Some("x y"));
}

#[test]
fn predefined_and_platform_args() {
    let text = "FROM a\nARG TARGETARCH\nRUN x\n";
    let p = plan(text, &[("HTTP_PROXY", "http://proxy:3128")], None);
    let s = steps(&p, 0, &[]);
    assert_eq!(run_var(&s[1], "HTTP_PROXY"), Some("http://proxy:3128"));
    assert_eq!(run_var(&s[1], "TARGETARCH"), Some(p.platform.arch.as_str()));
    assert!(
        p.warnings
            .iter()
            .all(|w| !w.message.contains("not consumed"))
    );
    // A proxy arg is not visible to expansion without an ARG line.
    let s = steps(
        &plan(
            "FROM a\nWORKDIR /$HTTP_PROXY\n",
            &[("HTTP_PROXY", "p")],
            None,
        ),
        0,
        &[],
    );
    assert_eq!(s[0].kind, StepKind::Workdir("/".into()));
    // Platform args are in the global scope: usable in FROM.
    let p = plan(
        "FROM --platform=$BUILDPLATFORM golang:1.22-$TARGETOS\n",
        &[],
        None,
    );
    assert_eq!(
        p.stages[0].base,
        ferry_build::Base::Image(format!("golang:1.22-{}", p.platform.os))
    );
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn unused_build_arg_is_warned_as_docker_does() {
    let p = plan(
        "FROM a\nARG USED\n",
        &[("USED", "1"), ("X", "2"), ("Y", "3")],
        None,
    );
    let w: Vec<String> = p.warnings.iter().map(ToString::to_string).collect();
    assert!(
        w.contains(&"[Warning] One or more build-args [X Y] were not consumed".to_string()),
        "{w:?}"
    );
    // An ARG in a stage that is not built does not consume it.
    let p = plan(
        "FROM a AS one\nARG ONLY_ONE\nFROM b AS two\n",
        &[("ONLY_ONE", "1")],
        Some("two"),
    );
    assert!(p.warnings.iter().any(|w| w.message.contains("[ONLY_ONE]")));
}

/// "Environment replacement" examples.
#[test]
fn environment_replacement_examples() {
    let text = "FROM busybox\nENV FOO=/bar\nWORKDIR ${FOO}\nADD . $FOO\nCOPY \\$FOO /quux\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n";
    let (s, env) = plan(text, &[], None).steps(0, &[]).unwrap();
    assert_eq!(s[1].kind, StepKind::Workdir("/bar".into()));
    match (&s[2].kind, &s[3].kind) {
        (StepKind::Add(a), StepKind::Copy(c)) => {
            assert_eq!(a.dest, "/bar");
            assert_eq!(c.sources, ["$FOO"]);
            assert_eq!(c.dest, "/quux");
        }
        k => panic!("{k:?}"),
    }
    assert_eq!(
        s[5].kind,
        StepKind::Env(vec![
            ("abc".into(), "bye".into()),
            ("def".into(), "hello".into())
        ])
    );
    assert_eq!(s[6].kind, StepKind::Env(vec![("ghi".into(), "bye".into())]));
    assert!(env.contains(&("def".to_string(), "hello".to_string())));
}

#[test]
fn env_and_label_quotes_and_escapes() {
    let text = concat!(
        "FROM a\n",
        "ENV MY_NAME=\"John Doe\" MY_DOG=Rex\\ The\\ Dog \\\n    MY_CAT=fluffy\n",
        "ENV LEGACY some value\n",
        "LABEL \"com.example.vendor\"=\"ACME Incorporated\" version=\"1.0\"\n",
        "LABEL description=\"This text illustrates \\\nthat label-values can span multiple lines.\"\n",
        "ENV SINGLE='$MY_NAME' DOUBLE=\"$MY_NAME\"\n",
    );
    let s = steps(&plan(text, &[], None), 0, &[]);
    assert_eq!(
        s[0].kind,
        StepKind::Env(vec![
            ("MY_NAME".into(), "John Doe".into()),
            ("MY_DOG".into(), "Rex The Dog".into()),
            ("MY_CAT".into(), "fluffy".into())
        ])
    );
    assert_eq!(
        s[1].kind,
        StepKind::Env(vec![("LEGACY".into(), "some value".into())])
    );
    assert_eq!(
        s[2].kind,
        StepKind::Label(vec![
            ("com.example.vendor".into(), "ACME Incorporated".into()),
            ("version".into(), "1.0".into())
        ])
    );
    assert_eq!(
        s[3].kind,
        StepKind::Label(vec![(
            "description".into(),
            "This text illustrates that label-values can span multiple lines.".into()
        )])
    );
    assert_eq!(
        s[4].kind,
        StepKind::Env(vec![
            ("SINGLE".into(), "$MY_NAME".into()),
            ("DOUBLE".into(), "John Doe".into())
        ])
    );
}

#[test]
fn run_cmd_entrypoint_are_not_expanded_and_base_env_is_seen() {
    let text = "FROM a\nENV P=/x:$PATH\nRUN echo $P\nCMD echo $P\n";
    let s = steps(&plan(text, &[], None), 0, &[("PATH", "/usr/bin")]);
    assert_eq!(
        s[0].kind,
        StepKind::Env(vec![("P".into(), "/x:/usr/bin".into())])
    );
    match &s[1].kind {
        StepKind::Run(r) => assert_eq!(
            r.script,
            ferry_build::dockerfile::RunScript::Shell("echo $P".into())
        ),
        k => panic!("{k:?}"),
    }
    assert_eq!(
        s[2].kind,
        StepKind::Cmd(ferry_build::dockerfile::CommandLine::Shell(
            "echo $P".into()
        ))
    );
}

#[test]
fn expose_expands_and_splits() {
    let text = "FROM a\nARG PORTS=\"80 443/tcp\"\nEXPOSE $PORTS 53/udp 8000-8001\n";
    let s = steps(&plan(text, &[], None), 0, &[]);
    match &s[1].kind {
        StepKind::Expose(ports) => {
            let keys: Vec<String> = ports.iter().flat_map(|p| p.keys()).collect();
            assert_eq!(
                keys,
                ["80/tcp", "443/tcp", "53/udp", "8000/tcp", "8001/tcp"]
            );
        }
        k => panic!("{k:?}"),
    }
}

#[test]
fn mandatory_variable_error_names_the_line() {
    let p = plan("FROM a\n\nWORKDIR ${APP_DIR:?set APP_DIR}\n", &[], None);
    let e = p.steps(0, &[]).unwrap_err().to_string();
    assert_eq!(
        e,
        "Dockerfile:3: failed to process \"${APP_DIR:?set APP_DIR}\": APP_DIR: set APP_DIR"
    );
}
