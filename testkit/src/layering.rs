//! A crate's module graph read from its sources, for tests that hold the crate to the layering
//! `docs/ARCHITECTURE.md` states: which top-level module (a file or folder under `src/`)
//! refers to which, through `crate::` paths (also inside `use crate::{…}` lists) and `super::`
//! paths that climb out of a top-level module. Comments are skipped; the crate root (`lib.rs`,
//! `main.rs`) is not a module of the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Top-level module → the top-level modules it refers to, with one file that does.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Graph {
    pub modules: BTreeSet<String>,
    pub edges: BTreeMap<String, BTreeMap<String, String>>,
}

/// Reads every `.rs` file under `src`.
pub fn read(src: &Path) -> std::io::Result<Graph> {
    let mut files = Vec::new();
    collect(src, &mut files)?;
    let mut graph = Graph::default();
    let mut sources = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(src)
            .map_err(std::io::Error::other)?
            .to_path_buf();
        let parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
            continue;
        }
        graph.modules.insert(parts[0].clone());
        sources.push((parts, rel, std::fs::read_to_string(&file)?));
    }
    for (parts, rel, text) in sources {
        let top = &parts[0];
        // `a.rs` and `a/mod.rs` are module `a` (depth 1); `a/b.rs` is `a::b` (depth 2).
        let depth = parts.len() - usize::from(parts.last().is_some_and(|p| p == "mod"));
        for name in references(&strip_comments(&text), depth) {
            if &name != top && graph.modules.contains(&name) {
                graph
                    .edges
                    .entry(top.clone())
                    .or_default()
                    .entry(name)
                    .or_insert_with(|| rel.display().to_string());
            }
        }
    }
    Ok(graph)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    Ok(())
}

/// The text without `//` and `/* */` comments (string literals are not told apart: a `//` in
/// one only hides the rest of its line).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |i| &after[i..]);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |i| &after[i + 2..]);
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first segment after the crate root in every path of `text`, a file at `depth`.
fn references(text: &str, depth: usize) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < text.len() {
        let word_start = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let rest = &text[i..];
        if word_start && rest.starts_with("crate::") {
            after_root(&rest["crate::".len()..], &mut found);
            i += "crate::".len();
        } else if word_start && rest.starts_with("super::") {
            let mut climbed = 0;
            let mut r = rest;
            while let Some(after) = r.strip_prefix("super::") {
                climbed += 1;
                r = after.trim_start();
            }
            if climbed >= depth {
                after_root(r, &mut found);
            }
            i += rest.len() - r.len();
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    found
}

/// `x::…` or `{x, y::…, z as w}` after `crate::`.
fn after_root(rest: &str, found: &mut Vec<String>) {
    let rest = rest.trim_start();
    if let Some(list) = rest.strip_prefix('{') {
        let mut depth = 0usize;
        let mut at_item = true;
        for (i, c) in list.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => at_item = true,
                c if at_item && !c.is_whitespace() => {
                    at_item = false;
                    let name = ident(&list[i..]);
                    if !name.is_empty() {
                        found.push(name.to_string());
                    }
                }
                _ => {}
            }
        }
    } else {
        let name = ident(rest);
        if !name.is_empty() {
            found.push(name.to_string());
        }
    }
}

/// The layering a document states: the rows `| module | may import |` of the table that
/// follows `heading`, imports comma-separated in backticks (`—` for none).
pub fn stated(document: &str, heading: &str) -> Result<Graph, String> {
    let start = document
        .find(heading)
        .ok_or_else(|| format!("no heading {heading:?}"))?;
    let mut graph = Graph::default();
    let mut in_table = false;
    for line in document[start + heading.len()..].lines() {
        let line = line.trim();
        if !line.starts_with('|') {
            if in_table {
                break;
            }
            continue;
        }
        in_table = true;
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells.len() != 2 || cells[0].starts_with("---") || cells[0] == "module" {
            continue;
        }
        let module = cells[0].trim_matches('`').to_string();
        graph.modules.insert(module.clone());
        for import in cells[1].split(',').map(|s| s.trim().trim_matches('`')) {
            if !import.is_empty() && import != "—" {
                graph
                    .edges
                    .entry(module.clone())
                    .or_default()
                    .insert(import.to_string(), heading.to_string());
            }
        }
    }
    if graph.modules.is_empty() {
        return Err(format!("no table of modules after {heading:?}"));
    }
    Ok(graph)
}

/// A cycle of the graph, if it has one.
pub fn cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit<'a>(
        graph: &'a Graph,
        node: &'a str,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = path[at..].iter().map(|s| s.to_string()).collect();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node);
        for next in graph.edges.get(node).into_iter().flat_map(|e| e.keys()) {
            if let Some(c) = visit(graph, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node);
        None
    }
    let mut done = BTreeSet::new();
    graph
        .modules
        .iter()
        .find_map(|m| visit(graph, m, &mut Vec::new(), &mut done))
}

/// Checks that the crate under `src` has no cycle between its top-level modules and that its
/// graph is exactly the table after `heading` in `document`; the error lists every difference.
pub fn check(src: &Path, document: &str, heading: &str) -> Result<(), String> {
    let found = read(src).map_err(|e| format!("{}: {e}", src.display()))?;
    let stated = stated(document, heading)?;
    let mut problems = String::new();
    if let Some(c) = cycle(&found) {
        let _ = writeln!(problems, "the modules form a cycle: {}", c.join(" → "));
    }
    for m in found.modules.difference(&stated.modules) {
        let _ = writeln!(problems, "module `{m}` has no row in the table");
    }
    for m in stated.modules.difference(&found.modules) {
        let _ = writeln!(problems, "the table names `{m}`, which is no module");
    }
    for (from, to) in &found.edges {
        for (name, file) in to {
            if !stated.edges.get(from).is_some_and(|s| s.contains_key(name)) {
                let _ = writeln!(
                    problems,
                    "`{from}` imports `{name}` ({file}), which the table does not allow"
                );
            }
        }
    }
    for (from, to) in &stated.edges {
        for name in to.keys() {
            if !found.edges.get(from).is_some_and(|s| s.contains_key(name)) {
                let _ = writeln!(
                    problems,
                    "the table lets `{from}` import `{name}`, which it does not"
                );
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// [`check`] for the crate at `manifest_dir` (its `src/`) against the workspace's
/// `docs/ARCHITECTURE.md`, panicking with every difference: the body of a crate's layering test.
pub fn assert_crate_matches(manifest_dir: &str, heading: &str) {
    let root = Path::new(manifest_dir);
    let doc_path = root.join("../docs/ARCHITECTURE.md");
    let doc = std::fs::read_to_string(&doc_path)
        .unwrap_or_else(|e| panic!("{}: {e}", doc_path.display()));
    if let Err(problems) = check(&root.join("src"), &doc, heading) {
        panic!(
            "{}/src against docs/ARCHITECTURE.md {heading:?}:\n{problems}",
            root.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_lists_and_climbing_supers() {
        let text = "use crate::{a::X, b, c::{D, E}};\nfn f() { crate::d::g(); }\n\
                    // crate::hidden\n/* crate::also_hidden */ use super::super::e::F;\n\
                    use super::local; let s = \"notcrate::x\";";
        assert_eq!(
            references(&strip_comments(text), 2),
            ["a", "b", "c", "d", "e"]
        );
        assert_eq!(
            references(&strip_comments(text), 1),
            ["a", "b", "c", "d", "e", "local"]
        );
        assert_eq!(references("use super::x;", 2), Vec::<String>::new());
    }

    #[test]
    fn cycles_are_found_and_reported() {
        let doc = "## L\n\n| module | may import |\n|---|---|\n| `a` | `b` |\n| `b` | `c` |\n\
                   | `c` | `a`, `b` |\n| `d` | — |\n\nafter";
        let g = stated(doc, "## L").unwrap();
        assert_eq!(g.modules.len(), 4);
        let c = cycle(&g).unwrap();
        assert_eq!(c.first(), c.last());
        assert!(c.len() >= 3, "{c:?}");
        let acyclic = stated(&doc.replace("| `c` | `a`, `b` |", "| `c` | `d` |"), "## L");
        assert_eq!(acyclic.map(|g| cycle(&g)), Ok(None));
    }

    #[test]
    fn a_source_tree_against_its_table() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path();
        std::fs::create_dir(src.join("low")).unwrap();
        std::fs::write(src.join("lib.rs"), "pub mod low; pub mod high;").unwrap();
        std::fs::write(src.join("low/mod.rs"), "mod inner;").unwrap();
        std::fs::write(src.join("low/inner.rs"), "use super::Thing;").unwrap();
        std::fs::write(src.join("high.rs"), "use crate::low::Thing;").unwrap();
        let doc = "# M\n| module | may import |\n|---|---|\n| `high` | `low` |\n| `low` | — |\n";
        assert_eq!(check(src, doc, "# M"), Ok(()));
        std::fs::write(src.join("low/inner.rs"), "use crate::high::Other;").unwrap();
        let e = check(src, doc, "# M").unwrap_err();
        assert!(e.contains("cycle"), "{e}");
        assert!(e.contains("`low` imports `high` (low/inner.rs)"), "{e}");
        let e = check(
            src,
            &doc.replace("| `high` | `low` |", "| `high` | — |"),
            "# M",
        );
        assert!(e.unwrap_err().contains("`high` imports `low`"));
    }
}
