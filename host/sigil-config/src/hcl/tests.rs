//! The normalisation keeps original line numbers; HCL 1 shapes SPIRE configs use parse.

use super::*;

fn lines_of(section: &Section) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for entry in &section.entries {
        out.push((entry.key.clone(), entry.line));
        if let Some(inner) = entry.value.as_section() {
            for (k, l) in lines_of(inner) {
                out.push((format!("{}.{k}", entry.key), l));
            }
        }
    }
    out
}

#[test]
fn one_line_nested_blocks_parse_and_keep_lines() {
    let text = "a \"x\" { plugin_data {} }\nb { c { d = 1 } }\n\ne = { f = 2, g = { h = 3 } }\n";
    let tree = parse(text, "t.conf", "").unwrap();
    let got = lines_of(&tree);
    let expected = [
        ("a", 1),
        ("a.plugin_data", 1),
        ("b", 2),
        ("b.c", 2),
        ("b.c.d", 2),
        ("e", 4),
        ("e.f", 4),
        ("e.g", 4),
        ("e.g.h", 4),
    ];
    let expected: Vec<(String, usize)> = expected.iter().map(|(k, l)| ((*k).into(), *l)).collect();
    assert_eq!(got, expected);
    assert!(matches!(tree.entries[0].value, Node::Block(_)));
    assert!(matches!(tree.entries[2].value, Node::Object(_)));
    assert_eq!(tree.entries[0].labels, ["x"]);
}

#[test]
fn braces_in_strings_comments_and_heredocs_are_left_alone() {
    let text = r#"s = "{ not a block }"
# a comment { with braces
// another }
/* a block
   comment { } */
h = <<EOT
  { text }
EOT
t = "after \" quote { }"
last { x = "}" }
"#;
    let tree = parse(text, "t.conf", "").unwrap();
    let got = lines_of(&tree);
    let expected: Vec<(String, usize)> =
        [("s", 1), ("h", 6), ("t", 9), ("last", 10), ("last.x", 10)]
            .iter()
            .map(|(k, l)| ((*k).into(), *l))
            .collect();
    assert_eq!(got, expected);
    let value = |i: usize| match &tree.entries[i].value {
        Node::Str(s) => s.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(value(0), "{ not a block }");
    assert_eq!(value(1), "  { text }\n");
    assert_eq!(value(2), "after \" quote { }");
}

#[test]
fn syntax_errors_name_the_original_line() {
    // Lines 1-2 gain inserted newlines; the error on line 4 must still say 4.
    let text = "a { b {} }\nc { d = 1 }\n\nbroken = = 1\n";
    let err = parse(text, "t.conf", "").unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { line: 4, .. }), "{err}");
    let err = parse("a {\n  s = \"open\n}\n", "t.conf", "").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("t.conf:2: syntax error: unterminated string"),
        "{err}"
    );
}

#[test]
fn only_literals_are_values() {
    let err = parse("a {\n  b = \"x${y}\"\n}\n", "t.conf", "").unwrap_err();
    assert_eq!(err.line(), Some(2));
    assert_eq!(err.key(), Some("a.b"));
    let err = parse("p \"n\" {\n  q = var.x\n}\n", "t.conf", "").unwrap_err();
    assert_eq!((err.line(), err.key()), (Some(2), Some("p.n.q")));
    let tree = parse(
        "a = \"$${y}\"\nb = -3\nc = 1.5\nd = [true, null]\n",
        "t.conf",
        "",
    )
    .unwrap();
    assert!(matches!(&tree.entries[0].value, Node::Str(s) if s == "${y}"));
    assert!(matches!(tree.entries[1].value, Node::Int(-3)));
    assert!(matches!(tree.entries[2].value, Node::Float(f) if f == 1.5));
    assert!(
        matches!(&tree.entries[3].value, Node::List(l) if matches!(l[..], [Node::Bool(true), Node::Null]))
    );
}

#[test]
fn deeply_nested_expressions_are_refused_before_the_parser_sees_them() {
    // The fuzzer's input (fuzz/corpus/hcl_config): 18 open parentheses with unary minus runs
    // took hcl-edit seconds, doubling with each level.
    let hostile = format!("a = {}1\n", "(---3---1---".repeat(18));
    let started = std::time::Instant::now();
    let error = parse(&format!("x = 1\n{hostile}"), "agent.conf", "").expect_err("refused");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    let text = error.to_string();
    assert!(text.contains("agent.conf") && text.contains(":2"), "{text}");
    assert!(text.contains("nest deeper than 8"), "{text}");
    // Eight levels, or brackets inside strings, are fine.
    let eight = format!("a = {}1{}\n", "(".repeat(8), ")".repeat(8));
    assert!(parse(&eight, "agent.conf", "").is_ok());
    assert!(parse("a = \"((((((((((((\"\n", "agent.conf", "").is_ok());
}
