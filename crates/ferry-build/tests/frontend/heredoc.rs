//! Heredocs in RUN and COPY, as buildkit parses them (`parser_heredoc_test.go`).

use ferry_build::dockerfile::{CommandLine, InstructionKind, RunScript};
use ferry_build::evaluator::StepKind;

use crate::util::{kinds, parse, parse_err, plan, steps};

fn run(df: &ferry_build::Dockerfile, i: usize) -> &ferry_build::dockerfile::Run {
    match kinds(df)[i] {
        InstructionKind::Run(r) => r,
        k => panic!("{k:?}"),
    }
}

#[test]
fn lone_heredoc_is_the_script() {
    let df = parse("FROM busybox\nRUN <<EOF\necho hello\necho world\nEOF\nRUN echo after\n");
    let r = run(&df, 1);
    assert_eq!(r.heredocs.len(), 1);
    assert_eq!(r.heredocs[0].name, "EOF");
    assert!(r.heredocs[0].expand);
    assert_eq!(r.heredocs[0].content, "echo hello\necho world\n");
    assert_eq!(
        r.script(),
        RunScript::Shell("echo hello\necho world\n".into())
    );
    assert_eq!(
        (df.instructions[1].start_line, df.instructions[1].end_line),
        (2, 5)
    );
    assert_eq!(df.instructions[2].start_line, 6);
}

#[test]
fn chomp_and_quoted_delimiters() {
    let df = parse(
        "FROM busybox\nRUN <<-EOF\n\techo $HOME\n\tEOF\nRUN <<'EOF'\necho $HOME\nEOF\nRUN <<\"EOF\"\nx\nEOF\n",
    );
    let r = run(&df, 1);
    assert!(r.heredocs[0].chomp);
    assert_eq!(r.heredocs[0].body(), "echo $HOME\n");
    assert!(!run(&df, 2).heredocs[0].expand);
    assert!(!run(&df, 3).heredocs[0].expand);
}

#[test]
fn heredoc_fed_to_a_command_goes_to_the_shell() {
    let df = parse("FROM python\nRUN python3 <<EOF\nprint(1)\nEOF\n");
    assert_eq!(
        run(&df, 1).script(),
        RunScript::Shell("python3 <<EOF\nprint(1)\nEOF".into())
    );
    let df = parse(
        "FROM busybox\nRUN <<FILE1 cat > file1 && <<FILE2 cat > file2\nI am\nfirst\nFILE1\nI am\nsecond\nFILE2\n",
    );
    let r = run(&df, 1);
    let names: Vec<&str> = r.heredocs.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["FILE1", "FILE2"]);
    assert_eq!(r.heredocs[1].content, "I am\nsecond\n");
    assert_eq!(df.instructions[1].end_line, 8);
}

#[test]
fn shebang_heredoc_runs_as_a_file() {
    let df = parse("FROM python\nRUN <<EOF\n#!/usr/bin/env python3\nprint('hi')\nEOF\n");
    assert_eq!(
        run(&df, 1).script(),
        RunScript::File {
            name: "EOF".into(),
            content: "#!/usr/bin/env python3\nprint('hi')\n".into()
        }
    );
}

#[test]
fn exec_form_and_quoted_markers_are_not_heredocs() {
    let df = parse("FROM a\nRUN [\"echo\", \"<<EOF\"]\nRUN echo \"<<EOF\"\nCMD x\n");
    assert_eq!(df.instructions.len(), 4);
    assert!(run(&df, 1).heredocs.is_empty());
    assert!(matches!(run(&df, 2).command, CommandLine::Shell(_)));
    assert!(run(&df, 2).heredocs.is_empty());
}

#[test]
fn copy_heredocs_are_inline_files_expanded_unless_quoted() {
    let text = "FROM a\nARG NAME=world\nCOPY <<robots.txt <<'humans.txt' /dest/\nhello $NAME\nrobots.txt\nhi $NAME\nhumans.txt\n";
    let df = parse(text);
    match kinds(&df)[2] {
        InstructionKind::Copy(c) => {
            assert!(c.sources.is_empty());
            assert_eq!(c.inline.len(), 2);
            assert_eq!(c.inline[0].name, "robots.txt");
            assert!(!c.inline[1].expand);
        }
        k => panic!("{k:?}"),
    }
    let p = plan(text, &[], None);
    let s = steps(&p, 0, &[]);
    match &s[1].kind {
        StepKind::Copy(c) => {
            assert_eq!(c.inline[0].content, "hello world\n");
            assert_eq!(c.inline[1].content, "hi $NAME\n");
        }
        k => panic!("{k:?}"),
    }
}

#[test]
fn unterminated_heredoc_names_the_line() {
    let e = parse_err("FROM a\nRUN <<EOF\necho hi\n");
    assert!(e.starts_with("Dockerfile:2: unterminated heredoc"), "{e}");
    let e = parse_err("FROM a\nCOPY a <<EOF\nx\nEOF\n");
    assert!(
        e.contains("COPY cannot accept a heredoc as a destination"),
        "{e}"
    );
}
