//! The crate's shape, checked from its source: dependencies between top-level modules point one
//! way. Every `crate::…` path in `src/**/*.rs` (outside comments) is an edge from the file's
//! top-level module to the named one; `cli` is outermost (nothing imports it), `domain` imports
//! nothing else from the crate, and the edges form no cycle.
//!
//! Run alone: `cargo test --test integration layout`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module → the top-level modules its files name, with one file per edge for messages.
type Graph = BTreeMap<String, BTreeMap<String, PathBuf>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's text without `//` comments (line, doc and inner doc comments). A `//` inside a
/// string literal (`"http://…"`) is kept: the scan only cuts at `//` outside double quotes.
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let bytes = line.as_bytes();
        let mut in_string = false;
        let mut cut = bytes.len();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' if in_string => i += 1,
                b'"' => in_string = !in_string,
                b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => {
                    cut = i;
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        out.push_str(&line[..cut]);
        out.push('\n');
    }
    out
}

fn ident(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules a piece of code names through `crate::x` or `crate::{x, y::z}`.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        // `countersign::` or `$crate::` are other paths; only a standalone `crate::` counts.
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let body = &group[..group.find('}').unwrap_or(group.len())];
            for item in body.split(',') {
                let name = ident(item.trim());
                if !name.is_empty() && name != "self" {
                    names.insert(name.to_string());
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                names.insert(name.to_string());
            }
        }
    }
    names
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut graph = Graph::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src");
        let first = rel.components().next().expect("a component").as_os_str().to_string_lossy().into_owned();
        let top = first.trim_end_matches(".rs").to_string();
        // The crate root declares every module and the binary calls `cli`; neither is a layer.
        if top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("source is readable");
        let edges = graph.entry(top.clone()).or_default();
        for name in named_modules(&without_comments(&text)) {
            if name != top {
                edges.entry(name).or_insert_with(|| rel.to_path_buf());
            }
        }
    }
    graph
}

/// A cycle as a list of modules (first = last), if the graph has one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(node: &str, graph: &Graph, stack: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[pos..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flat_map(|e| e.keys()) {
            if let Some(c) = visit(next, graph, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_scan_reads_grouped_paths_and_skips_comments_and_other_crates() {
    let code = without_comments(
        "use crate::{app::x, store};\n// crate::cli in a comment\nlet u = \"http://x\"; crate::domain::y();\n$crate::z; countersign::cli::run();",
    );
    let names: Vec<String> = named_modules(&code).into_iter().collect();
    assert_eq!(names, ["app", "domain", "store"]);
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into(), PathBuf::from("a.rs"));
    g.entry("b".into()).or_default().insert("a".into(), PathBuf::from("b.rs"));
    assert_eq!(find_cycle(&g), Some(vec!["a".to_string(), "b".to_string(), "a".to_string()]));
}

#[test]
fn no_module_imports_the_command_line() {
    let graph = graph();
    let importers: Vec<String> =
        graph.iter().filter_map(|(m, edges)| edges.get("cli").map(|f| format!("{m} ({})", f.display()))).collect();
    assert!(importers.is_empty(), "cli is the outermost layer, yet these import it: {importers:?}");
}

#[test]
fn the_domain_imports_nothing_else_from_the_crate() {
    let graph = graph();
    let edges: Vec<String> =
        graph.get("domain").expect("a domain module").iter().map(|(m, f)| format!("{m} ({})", f.display())).collect();
    assert!(edges.is_empty(), "domain holds pure types and rules, yet names: {edges:?}");
}

#[test]
fn top_level_modules_form_no_import_cycle() {
    let graph = graph();
    assert!(graph.len() >= 10, "the scan found the modules: {:?}", graph.keys().collect::<Vec<_>>());
    if let Some(cycle) = find_cycle(&graph) {
        let steps: Vec<String> =
            cycle.windows(2).map(|w| format!("{} → {} ({})", w[0], w[1], graph[&w[0]][&w[1]].display())).collect();
        panic!("import cycle between top-level modules: {}", steps.join(", "));
    }
}
