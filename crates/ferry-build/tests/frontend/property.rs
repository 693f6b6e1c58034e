//! Property tests: no input makes the frontend panic.

use proptest::prelude::*;

/// Dockerfile-ish text: keywords, flags, quotes, escapes, variables, heredocs.
fn dockerfile_text() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("FROM ".to_string()),
        Just("RUN ".to_string()),
        Just("COPY ".to_string()),
        Just("ARG ".to_string()),
        Just("ENV ".to_string()),
        Just("LABEL ".to_string()),
        Just("EXPOSE ".to_string()),
        Just("HEALTHCHECK ".to_string()),
        Just("WORKDIR ".to_string()),
        Just(" AS ".to_string()),
        Just("--from=".to_string()),
        Just("--".to_string()),
        Just("<<EOF".to_string()),
        Just("EOF".to_string()),
        Just("${".to_string()),
        Just("$".to_string()),
        Just("}".to_string()),
        Just(":-".to_string()),
        Just(":?".to_string()),
        Just("\\".to_string()),
        Just("`".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("=".to_string()),
        Just("#".to_string()),
        Just("# escape=`".to_string()),
        Just("\n".to_string()),
        Just(" ".to_string()),
        "[a-z0-9/._-]{1,6}",
        any::<char>().prop_map(|c| c.to_string()),
    ];
    proptest::collection::vec(token, 0..60).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn parse_plan_and_expand_never_panic(text in dockerfile_text()) {
        if let Ok(df) = ferry_build::dockerfile::parse("Dockerfile", &text) {
            for target in [None, Some("a".to_string())] {
                let opts = ferry_build::BuildOptions { target, ..Default::default() };
                if let Ok(plan) = ferry_build::plan(&df, &opts) {
                    for s in 0..plan.stages.len() {
                        let _ = plan.steps(s, &[]);
                    }
                }
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = ferry_build::dockerfile::parse("Dockerfile", &text);
        let _ = ferry_build::expansion::Lexer::new('\\').process(&text, &Vec::<(String, String)>::new());
        let _ = ferry_build::PatternMatcher::parse(".dockerignore", &text);
    }

    #[test]
    fn ignore_patterns_never_panic(patterns in proptest::collection::vec("[a-z*?!/\\[\\]\\\\.-]{0,8}", 0..6), path in "[a-z/.]{0,12}") {
        let list: Vec<(usize, String)> = patterns.into_iter().enumerate().collect();
        if let Ok(pm) = ferry_build::PatternMatcher::new(".dockerignore", &list) {
            let _ = pm.matches(&path);
            let _ = pm.may_include_below(&path);
        }
    }
}
