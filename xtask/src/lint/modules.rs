//! The module graph has no import circles: among the children of every module, the `use
//! crate::…`/`super::…` references (and `crate::a::b` paths in code) between them must form
//! no cycle. Checked for the library (`doh-trace/src/lib.rs`) and the binary
//! (`doh-trace/src/bin/doh-trace/main.rs`), each module found from its files.
//!
//! The graph is that of the code that is built: `#[cfg(test)]` modules (inline or in their
//! own files) may reach across for fixtures and oracles and are left out. The parser is small
//! on purpose: comments and string contents are stripped, then every `crate::` or `super::`
//! path is read, `{…}` groups expanded; a component that is no module (a type, a function) is
//! not a sibling.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context as _, Result};

/// A module's path below the crate root (`["proto", "doh"]`).
type ModPath = Vec<String>;

/// The modules of one crate and the files that define them.
struct Crate {
    /// Module path → its file.
    files: BTreeMap<ModPath, PathBuf>,
}

impl Crate {
    /// Every module under `root_file`'s directory, by file (`x.rs`, `x/mod.rs`).
    fn discover(root_file: &Path) -> Result<Crate> {
        let dir = root_file.parent().context("root file has a directory")?;
        let mut files = BTreeMap::new();
        files.insert(Vec::new(), root_file.to_path_buf());
        walk(dir, &mut Vec::new(), &mut files, root_file)?;
        Ok(Crate { files })
    }

    fn is_module(&self, path: &[String]) -> bool {
        self.files.contains_key(path)
    }
}

fn walk(
    dir: &Path,
    prefix: &mut ModPath,
    files: &mut BTreeMap<ModPath, PathBuf>,
    root_file: &Path,
) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path == root_file {
            continue;
        }
        if path.is_dir() {
            // A binary's own directory (src/bin) is another crate.
            if prefix.is_empty() && name == "bin" {
                continue;
            }
            prefix.push(name);
            if path.join("mod.rs").exists() {
                files.insert(prefix.clone(), path.join("mod.rs"));
            }
            walk(&path, prefix, files, root_file)?;
            prefix.pop();
        } else if let Some(stem) = name.strip_suffix(".rs") {
            if stem != "mod" && stem != "main" && stem != "lib" {
                let mut p = prefix.clone();
                p.push(stem.to_string());
                files.entry(p).or_insert(path);
            }
        }
    }
    Ok(())
}

/// The names of the child modules `code` declares under `#[cfg(test)]` (`mod tests;`).
fn test_modules(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = code.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line == "#[cfg(test)]" {
            if let Some(next) = lines.next() {
                let decl = next
                    .trim_start_matches("pub ")
                    .trim_start_matches("pub(crate) ");
                if let Some(name) = decl.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
                    out.push(name.trim().to_string());
                }
            }
        }
    }
    out
}

/// `code` without its inline `#[cfg(test)] mod … { … }` blocks (braces counted after
/// stripping, so strings and comments cannot unbalance them).
fn without_inline_tests(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let decl = after.trim_start();
        let is_block = decl.starts_with("mod ")
            && decl
                .find(['{', ';'])
                .is_some_and(|i| decl.as_bytes()[i] == b'{');
        if !is_block {
            out.push_str("#[cfg(test)]");
            rest = after;
            continue;
        }
        let open = after.find('{').expect("checked");
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Removes `//` comments and the contents of string literals, keeping line structure.
fn strip(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut chars = code.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        if in_str {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    in_str = false;
                    out.push('"');
                }
                '\n' => out.push('\n'),
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_str = true;
                out.push('"');
            }
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '\'' => {
                // A char literal ('"', '{') or a lifetime: copy what a lifetime would be.
                out.push('\'');
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with('\\') || rest.chars().nth(1) == Some('\'') {
                    for c in chars.by_ref() {
                        if c == '\'' {
                            break;
                        }
                    }
                    out.push('\'');
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Every path a `crate::`/`super::` reference in `code` names, relative to the crate root,
/// for code in module `here`.
fn references(code: &str, here: &[String]) -> Vec<ModPath> {
    let code = without_inline_tests(&strip(code));
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let at_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let base: Option<(ModPath, usize)> = if !at_word {
            None
        } else if code[i..].starts_with("crate::") {
            Some((Vec::new(), i + 7))
        } else if code[i..].starts_with("super::") {
            // `super` of a file `x.rs` is its parent; of `x/mod.rs`, the parent too.
            let mut base = here.to_vec();
            let mut j = i;
            while code[j..].starts_with("super::") {
                if base.pop().is_none() {
                    break;
                }
                j += 7;
            }
            Some((base, j))
        } else {
            None
        };
        match base {
            Some((base, j)) => {
                let end = parse_tree(&code, j, base, &mut out);
                i = end.max(i + 1);
            }
            None => i += 1,
        }
    }
    out
}

/// Parses a path or `{…}` group at `at` below `base`, pushing the full paths; returns where
/// it ended.
fn parse_tree(code: &str, mut at: usize, base: ModPath, out: &mut Vec<ModPath>) -> usize {
    let bytes = code.as_bytes();
    let mut path = base;
    loop {
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        if at < bytes.len() && bytes[at] == b'{' {
            at += 1;
            loop {
                while at < bytes.len() && (bytes[at].is_ascii_whitespace() || bytes[at] == b',') {
                    at += 1;
                }
                if at >= bytes.len() || bytes[at] == b'}' {
                    return at + 1;
                }
                at = parse_tree(code, at, path.clone(), out);
            }
        }
        let start = at;
        while at < bytes.len() && (bytes[at].is_ascii_alphanumeric() || bytes[at] == b'_') {
            at += 1;
        }
        if at == start {
            out.push(path);
            return at;
        }
        let word = &code[start..at];
        if word != "self" {
            path.push(word.to_string());
        }
        if code[at..].starts_with("::") {
            at += 2;
        } else {
            out.push(path);
            return at;
        }
    }
}

/// The sibling edges of a reference from module `from` to path `to`: the children of their
/// deepest common module that each lies in, if `to`'s is a module.
fn sibling_edge(
    krate: &Crate,
    from: &[String],
    to: &[String],
) -> Option<(ModPath, String, String)> {
    let k = from.iter().zip(to).take_while(|(a, b)| a == b).count();
    let (a, b) = (from.get(k)?, to.get(k)?);
    let mut target = to[..=k].to_vec();
    if !krate.is_module(&target) {
        return None;
    }
    target.pop();
    Some((target, a.clone(), b.clone()))
}

/// Finds a cycle in a directed graph, as the nodes along it.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let at = stack.iter().position(|s| s == m).expect("on the stack");
                    let mut c = stack[at..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, edges, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if !state.contains_key(n.as_str()) {
            if let Some(c) = visit(n, edges, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

/// Checks one crate; returns how many sibling edges it has.
fn check_crate(root_file: &Path) -> Result<usize> {
    let krate = Crate::discover(root_file)?;
    let mut graphs: BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut sources = BTreeMap::new();
    let mut tests: BTreeSet<ModPath> = BTreeSet::new();
    for (module, file) in &krate.files {
        let code =
            fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for name in test_modules(&strip(&code)) {
            let mut m = module.clone();
            m.push(name);
            tests.insert(m);
        }
        sources.insert(module.clone(), code);
    }
    for (module, code) in &sources {
        if tests.iter().any(|t| module.starts_with(t)) {
            continue;
        }
        for to in references(code, module) {
            if let Some((parent, a, b)) = sibling_edge(&krate, module, &to) {
                graphs
                    .entry(parent)
                    .or_default()
                    .entry(a)
                    .or_default()
                    .insert(b);
            }
        }
    }
    let mut edges = 0;
    for (parent, graph) in &graphs {
        edges += graph.values().map(BTreeSet::len).sum::<usize>();
        if let Some(c) = cycle(graph) {
            let parent = if parent.is_empty() {
                "crate".to_string()
            } else {
                format!("crate::{}", parent.join("::"))
            };
            bail!(
                "import circle among the modules of {parent} in {}: {}",
                root_file.display(),
                c.join(" → ")
            );
        }
    }
    Ok(edges)
}

/// Checks the library and the binary of doh-trace.
pub fn run(root: &Path) -> Result<()> {
    for file in [
        "doh-trace/src/lib.rs",
        "doh-trace/src/bin/doh-trace/main.rs",
    ] {
        let edges = check_crate(&root.join(file))?;
        eprintln!("lint: {file}: no import circles ({edges} edges between sibling modules)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn krate(files: &[&str]) -> Crate {
        Crate {
            files: files
                .iter()
                .map(|m| {
                    let path: ModPath = if m.is_empty() {
                        Vec::new()
                    } else {
                        m.split("::").map(String::from).collect()
                    };
                    (path, PathBuf::new())
                })
                .collect(),
        }
    }

    fn p(s: &str) -> ModPath {
        s.split("::").map(String::from).collect()
    }

    #[test]
    fn reads_grouped_and_relative_paths_and_ignores_comments_and_strings() {
        let code = "use crate::{a::{b, c::D}, e};\n// use crate::zzz;\nlet s = \"crate::yyy\";\nsuper::super::f::g();\nuse crate::h::self;";
        let refs = references(code, &p("x::y"));
        assert_eq!(
            refs,
            vec![p("a::b"), p("a::c::D"), p("e"), p("f::g"), p("h")]
        );
    }

    #[test]
    fn test_code_is_left_out() {
        let code = "use crate::a;\n#[cfg(test)]\nmod tests {\n    use crate::b::{c, d};\n    fn f() { let x = \"}\"; }\n}\n#[cfg(test)]\nmod more;\nuse crate::e;";
        assert_eq!(references(code, &p("x")), vec![p("a"), p("e")]);
        assert_eq!(test_modules(code), ["more"]);
    }

    #[test]
    fn finds_a_circle_between_siblings_at_any_depth() {
        let k = krate(&["", "a", "b", "p", "p::x", "p::y"]);
        assert_eq!(
            sibling_edge(&k, &p("a"), &p("b::T")),
            Some((vec![], "a".into(), "b".into()))
        );
        assert_eq!(
            sibling_edge(&k, &p("p::x"), &p("p::y::f")),
            Some((p("p"), "x".into(), "y".into()))
        );
        // An item of the parent is no sibling.
        assert_eq!(sibling_edge(&k, &p("p::x"), &p("p::Item")), None);
        let mut g = BTreeMap::new();
        g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
        g.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
        assert_eq!(cycle(&g), None);
        g.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
        assert_eq!(cycle(&g).unwrap(), ["a", "b", "c", "a"]);
    }

    #[test]
    fn doh_traces_library_and_binary_have_no_import_circles() {
        run(&crate::build_ebpf::workspace_root()).unwrap();
    }
}
