//! House rules of the source tree, checked on every test run: no import circle anywhere in
//! `src/` — no two files that import each other, directly or through others.
//!
//! A file's imports are its `use` declarations and the `crate::…` / `super::…` /
//! `snrscope::…` paths in its code, each resolved to the file that defines the item: a path
//! through a `pub use` re-export counts as an import of the file the item comes from, and a
//! module's own re-exports are not imports of its own. (The binary's `cli/` and `ui/` see the
//! library as `snrscope::`, so both crates form one graph.)

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

type Module = Vec<String>;

struct Tree {
    /// Module path -> its file.
    files: BTreeMap<Module, PathBuf>,
    /// Per module: re-exported name -> the module it comes from.
    reexports: BTreeMap<Module, BTreeMap<String, Module>>,
}

fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts.as_slice() == ["lib"] || parts.as_slice() == ["main"] {
        parts.clear();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            // Test modules may import what they test from anywhere.
            if p.file_name().is_some_and(|n| n == "tests") {
                continue;
            }
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code without comments, string literals and `#[cfg(test)]` modules.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i..].starts_with(b"r#\"") {
            let end = text[i + 3..].find("\"#").map_or(b.len(), |e| i + 3 + e + 2);
            i = end;
            out.push_str("\"\"");
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// `use` trees flattened: `a::{b, c::{d, e}}` -> `a::b`, `a::c::d`, `a::c::e`.
fn flatten(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    let mut depth = 0;
    let mut start = 0;
    let mut items = Vec::new();
    for (i, ch) in tree.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&tree[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&tree[start..]);
    for item in items.into_iter().map(str::trim).filter(|s| !s.is_empty()) {
        if let Some(open) = item.find('{') {
            let head = item[..open].trim_end_matches("::");
            let inner = &item[open + 1..item.rfind('}').unwrap()];
            let p = join(prefix, head);
            flatten(&p, inner, out);
        } else {
            let item = item.split(" as ").next().unwrap().trim();
            out.push(join(prefix, item));
        }
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}::{b}"),
    }
}

/// `use` declarations: (is it a re-export, flattened paths).
fn uses(code: &str) -> Vec<(bool, Vec<String>)> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = &rest[..i];
        let word_start = i == 0 || !rest.as_bytes()[i - 1].is_ascii_alphanumeric();
        let Some(end) = rest[i..].find(';') else {
            break;
        };
        if word_start {
            let line_start = before.rfind('\n').map_or(0, |n| n + 1);
            let head = before[line_start..].trim();
            let public = head.starts_with("pub");
            if head.is_empty() || head.starts_with("pub") {
                let mut paths = Vec::new();
                flatten("", &rest[i + 4..i + end], &mut paths);
                out.push((public, paths));
            }
        }
        rest = &rest[i + end + 1..];
    }
    out
}

impl Tree {
    fn read(src: &Path) -> Tree {
        let mut list = Vec::new();
        rust_files(src, &mut list);
        let files: BTreeMap<Module, PathBuf> =
            list.into_iter().map(|f| (module_of(src, &f), f)).collect();
        let mut tree = Tree {
            files,
            reexports: BTreeMap::new(),
        };
        let mut reexports = BTreeMap::new();
        for (m, f) in &tree.files {
            let code = code(&std::fs::read_to_string(f).unwrap());
            let mut map = BTreeMap::new();
            for (public, paths) in uses(&code) {
                if !public {
                    continue;
                }
                for p in paths {
                    if let Some(target) = tree.module_for(m, &p, false) {
                        let name = p.rsplit("::").next().unwrap().to_string();
                        map.insert(name, target);
                    }
                }
            }
            reexports.insert(m.clone(), map);
        }
        tree.reexports = reexports;
        tree
    }

    /// The module a path (as written in module `from`) points into; `None` outside the crate.
    fn module_for(&self, from: &Module, path: &str, follow: bool) -> Option<Module> {
        let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let (mut base, rest): (Module, &[&str]) = match segs.first().copied() {
            Some("crate") => (Vec::new(), &segs[1..]),
            Some("snrscope") => (Vec::new(), &segs[1..]),
            Some("self") => (from.clone(), &segs[1..]),
            Some("super") => {
                let mut b = from.clone();
                let mut k = 0;
                while segs.get(k) == Some(&"super") {
                    b.pop();
                    k += 1;
                }
                (b, &segs[k..])
            }
            // A child module named without `self::`.
            Some(first) => {
                let mut child = from.clone();
                child.push(first.to_string());
                if !self.files.contains_key(&child) {
                    return None;
                }
                (from.clone(), &segs[..])
            }
            None => return None,
        };
        let mut used = 0;
        for s in rest {
            let mut next = base.clone();
            next.push(s.to_string());
            if self.files.contains_key(&next) {
                base = next;
                used += 1;
            } else {
                break;
            }
        }
        // An item re-exported by that module: the module it comes from.
        if follow && let Some(item) = rest.get(used) {
            let mut seen = BTreeSet::new();
            while let Some(t) = self.reexports.get(&base).and_then(|r| r.get(*item)) {
                if !seen.insert(base.clone()) {
                    break;
                }
                base = t.clone();
            }
        }
        Some(base)
    }

    fn edges(&self) -> BTreeMap<Module, BTreeSet<Module>> {
        let mut edges = BTreeMap::new();
        for (m, f) in &self.files {
            let code = code(&std::fs::read_to_string(f).unwrap());
            let mut to = BTreeSet::new();
            for (public, paths) in uses(&code) {
                if public {
                    continue;
                }
                for p in paths {
                    to.extend(self.module_for(m, &p, true));
                }
            }
            for root in ["crate::", "super::", "snrscope::"] {
                let mut rest = code.as_str();
                while let Some(i) = rest.find(root) {
                    let ok = i == 0 || {
                        let c = rest.as_bytes()[i - 1];
                        !(c.is_ascii_alphanumeric() || c == b'_' || c == b':')
                    };
                    let tail = &rest[i..];
                    let end = tail
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                        .unwrap_or(tail.len());
                    // `crate::{…}` is a use tree, already counted item by item.
                    if ok && !tail[..end].ends_with("::") {
                        to.extend(self.module_for(m, &tail[..end], true));
                    }
                    rest = &rest[i + end.max(1)..];
                }
            }
            to.remove(m);
            // A module's children are part of it; importing the parent from a child is not a
            // circle unless the parent imports the child back, which the edges then show.
            edges.insert(m.clone(), to);
        }
        edges
    }
}

/// Strongly connected components with more than one module (Tarjan).
fn circles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct S<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on: BTreeSet<&'a Module>,
        next: usize,
        out: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut S<'a>, v: &'a Module) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on.insert(v);
        for w in s.edges.get(v).into_iter().flatten() {
            let Some((w, _)) = s.edges.get_key_value(w) else {
                continue;
            };
            if !s.index.contains_key(w) {
                visit(s, w);
                let l = s.low[v].min(s.low[w]);
                s.low.insert(v, l);
            } else if s.on.contains(w) {
                let l = s.low[v].min(s.index[w]);
                s.low.insert(v, l);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                s.out.push(comp);
            }
        }
    }
    let mut s = S {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "crate root".into()
    } else {
        m.join("/")
    }
}

#[test]
fn no_import_circles_in_src() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let tree = Tree::read(&src);
    assert!(tree.files.len() > 50, "read the tree: {}", tree.files.len());
    let edges = tree.edges();
    let found = circles(&edges);
    let text: Vec<String> = found
        .iter()
        .map(|c| {
            let set: BTreeSet<&Module> = c.iter().collect();
            let inner: Vec<String> = c
                .iter()
                .flat_map(|a| {
                    edges[a]
                        .iter()
                        .filter(|b| set.contains(b))
                        .map(move |b| format!("{} -> {}", name(a), name(b)))
                })
                .collect();
            inner.join(", ")
        })
        .collect();
    assert!(found.is_empty(), "import circles:\n{}", text.join("\n"));
}

/// The checker itself finds a circle when there is one, through a re-export too.
#[test]
fn the_circle_check_sees_a_planted_circle() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path();
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod a;\npub mod b;\n").unwrap();
    std::fs::write(src.join("a/mod.rs"), "mod inner;\npub use inner::Thing;\n").unwrap();
    std::fs::write(
        src.join("a/inner.rs"),
        "use crate::b::Other;\npub struct Thing(Other);\n",
    )
    .unwrap();
    std::fs::write(
        src.join("b.rs"),
        "pub struct Other;\nuse crate::a::Thing;\n",
    )
    .unwrap();
    let tree = Tree::read(src);
    let found = circles(&tree.edges());
    assert_eq!(found.len(), 1, "{found:?}");
    let set: BTreeSet<String> = found[0].iter().map(name).collect();
    assert_eq!(
        set,
        ["a/inner", "b"].iter().map(|s| s.to_string()).collect(),
        "through the re-export, to the file that defines Thing"
    );
    // Without the back edge, no circle.
    std::fs::write(src.join("b.rs"), "pub struct Other;\n").unwrap();
    assert!(circles(&Tree::read(src).edges()).is_empty());
}
