//! Data flows one way: no dependency cycle between the crate's modules (issue 15, point 2).
//!
//! The check parses every crate of `src/` with `syn` — the library (`src/lib.rs`) and each
//! binary (`src/main.rs`, `src/bin/*.rs`, `src/bin/*/main.rs`) — following `mod` declarations
//! as rustc does, so it keeps working when files move. Granularity: a node is a module at
//! depth one or two (`stage`, `stage::zarr`, `cli::load`); deeper modules count as their
//! depth-two ancestor. An edge is any path that names another module's item (`use` trees,
//! paths in code, `crate::`/`super::` paths inside macro calls), resolved through `use`
//! re-exports (and `#[macro_export]`) to the module that defines it. A submodule using its
//! parent is not an edge (the parent is the namespace its children share: `super::SourceBlock`,
//! `super::LoadError`), but the crate root is no such namespace: a CLI module calling back into
//! main.rs is a cycle. Every other edge counts, parent to child included, and so do
//! `#[cfg(test)]` items (a test module that calls a higher module ties the two together just as
//! well) and intra-doc links (`[`crate::load::x`]` makes rustdoc resolve one module from another).

use crate::common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use syn::visit::Visit;

/// A module path from the crate root (`[]` is the root itself).
type ModPath = Vec<String>;

/// Where an edge comes from: file, line, and the path as written.
#[derive(Clone, Debug)]
struct Evidence {
    file: PathBuf,
    line: usize,
    path: String,
}

/// One crate's modules: their files and what their `use` items import.
#[derive(Default)]
struct Crate {
    /// The crate root's file, for naming the root node.
    root: PathBuf,
    /// Every module (inline ones included) -> the file holding it.
    modules: BTreeMap<ModPath, PathBuf>,
    /// Per module: imported name -> absolute path (of a module or item).
    imports: BTreeMap<ModPath, BTreeMap<String, ModPath>>,
    /// Per module: paths it names, made absolute where they point into the crate.
    refs: Vec<(ModPath, ModPath, Evidence)>,
}

/// A path as written, before resolution: its segments and where it was.
struct RawRef {
    module: ModPath,
    segments: Vec<String>,
    glob: bool,
    evidence: Evidence,
}

/// The intra-doc link targets of one doc attribute (`[`a::b`]`, `[text](a::b)`, `[a::b()]`), as
/// path segments. Web links and plain bracketed prose are not paths and are skipped.
fn doc_links(attr: &syn::Attribute) -> Vec<Vec<String>> {
    let syn::Meta::NameValue(nv) = &attr.meta else { return Vec::new() };
    let syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) = &nv.value else { return Vec::new() };
    if !attr.path().is_ident("doc") {
        return Vec::new();
    }
    let text = s.value();
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(open) = rest.find('[') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find(']') else { break };
        let (inside, after) = (&rest[..close], &rest[close + 1..]);
        // `[text](target)`: the target is the link; otherwise the bracketed text is.
        let target = match after.strip_prefix('(') {
            // Up to the matching `)`: a target may end in `()` itself.
            Some(a) => {
                let mut depth = 1;
                let end = a.char_indices().find_map(|(i, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    (depth == 0).then_some(i)
                });
                end.map_or(inside, |e| &a[..e])
            }
            None => inside,
        };
        let target = target.trim().trim_matches('`');
        let target = target.split_once('@').map_or(target, |(_, p)| p).trim_end_matches("()").trim_end_matches('!');
        let is_path = !target.is_empty()
            && target.split("::").all(|seg| {
                seg.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
        if is_path {
            out.push(target.split("::").map(str::to_string).collect());
        }
        rest = after;
    }
    out
}

fn path_attr(attrs: &[syn::Attribute]) -> Option<String> {
    attrs.iter().find(|a| a.path().is_ident("path")).and_then(|a| match &a.meta {
        syn::Meta::NameValue(nv) => match &nv.value {
            syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

/// Collects the paths of one module's items, stopping at nested modules (walked on their own).
struct Collector<'a> {
    module: &'a ModPath,
    file: &'a Path,
    out: Vec<RawRef>,
    uses: Vec<(String, Vec<String>, bool)>,
    exported: Vec<String>,
}

impl Collector<'_> {
    fn push(&mut self, segments: Vec<String>, glob: bool, line: usize) {
        let path = segments.join("::") + if glob { "::*" } else { "" };
        let evidence = Evidence { file: self.file.to_path_buf(), line, path };
        self.out.push(RawRef { module: self.module.clone(), segments, glob, evidence });
    }

    /// Expands a use tree into (bound name, full path, glob) triples.
    fn use_tree(&mut self, prefix: &[String], tree: &syn::UseTree, line: usize) {
        let mut p = prefix.to_vec();
        match tree {
            syn::UseTree::Path(u) => {
                p.push(u.ident.to_string());
                self.use_tree(&p, &u.tree, line);
            }
            syn::UseTree::Name(n) => {
                let name = n.ident.to_string();
                // `use a::b::{self}` binds `b`.
                let (bound, full) = if name == "self" && !p.is_empty() {
                    (p.last().unwrap().clone(), p.clone())
                } else {
                    p.push(name.clone());
                    (name, p.clone())
                };
                self.uses.push((bound, full.clone(), false));
                self.push(full, false, line);
            }
            syn::UseTree::Rename(r) => {
                let name = r.ident.to_string();
                if name != "self" {
                    p.push(name);
                }
                self.uses.push((r.rename.to_string(), p.clone(), false));
                self.push(p, false, line);
            }
            syn::UseTree::Glob(_) => {
                self.uses.push((String::new(), p.clone(), true));
                self.push(p, true, line);
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(&p, t, line);
                }
            }
        }
    }

    /// `crate::a::b`, `super::x`, `self::y` sequences inside a macro call's tokens.
    fn macro_tokens(&mut self, tokens: proc_macro2::TokenStream) {
        use proc_macro2::TokenTree;
        let tts: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tts.len() {
            match &tts[i] {
                TokenTree::Group(g) => self.macro_tokens(g.stream()),
                TokenTree::Ident(id) if ["crate", "super", "self"].contains(&id.to_string().as_str()) => {
                    let line = id.span().start().line;
                    let mut segs = vec![id.to_string()];
                    let mut j = i + 1;
                    // `::` is two ':' puncts, then an identifier.
                    while j + 2 < tts.len() && is_colon(&tts[j]) && is_colon(&tts[j + 1]) {
                        match &tts[j + 2] {
                            TokenTree::Ident(next) => {
                                segs.push(next.to_string());
                                j += 3;
                            }
                            _ => break,
                        }
                    }
                    if segs.len() > 1 {
                        self.push(segs, false, line);
                    }
                    i = j;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }
}

fn is_colon(t: &proc_macro2::TokenTree) -> bool {
    matches!(t, proc_macro2::TokenTree::Punct(p) if p.as_char() == ':')
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {}

    fn visit_attribute(&mut self, a: &'ast syn::Attribute) {
        let line = a.pound_token.span.start().line;
        for segs in doc_links(a) {
            self.push(segs, false, line);
        }
        syn::visit::visit_attribute(self, a);
    }

    fn visit_item_macro(&mut self, m: &'ast syn::ItemMacro) {
        // `#[macro_export]` puts the macro at the crate root: `crate::name` means this module.
        if let Some(name) = m.ident.as_ref().filter(|_| m.attrs.iter().any(|a| a.path().is_ident("macro_export"))) {
            self.exported.push(name.to_string());
        }
        syn::visit::visit_item_macro(self, m);
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        if u.leading_colon.is_none() {
            self.use_tree(&[], &u.tree, u.use_token.span.start().line);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        if p.leading_colon.is_none() && p.segments.len() > 1 {
            let segs = p.segments.iter().map(|s| s.ident.to_string()).collect();
            let line = p.segments[0].ident.span().start().line;
            self.push(segs, false, line);
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.macro_tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }
}

impl Crate {
    /// Reads the crate rooted at `root` (lib.rs, main.rs, ...).
    fn read(root: &Path) -> Result<Crate, String> {
        let mut c = Crate { root: root.to_path_buf(), ..Crate::default() };
        let mut raw = Vec::new();
        let dir = root.parent().unwrap().to_path_buf();
        c.read_file(&[], root, &dir, &mut raw)?;
        c.resolve(raw);
        Ok(c)
    }

    /// Parses `file` as module `module`; `dir` is where its `mod x;` children live.
    fn read_file(&mut self, module: &[String], file: &Path, dir: &Path, raw: &mut Vec<RawRef>) -> Result<(), String> {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let ast = syn::parse_file(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        self.read_items(module, &ast.attrs, &ast.items, file, dir, raw)
    }

    fn read_items(
        &mut self,
        module: &[String],
        inner_attrs: &[syn::Attribute],
        items: &[syn::Item],
        file: &Path,
        dir: &Path,
        raw: &mut Vec<RawRef>,
    ) -> Result<(), String> {
        let module = module.to_vec();
        self.modules.insert(module.clone(), file.to_path_buf());
        let mut col = Collector { module: &module, file, out: Vec::new(), uses: Vec::new(), exported: Vec::new() };
        // The module's own `//!` docs: their links are resolved from inside the module.
        for a in inner_attrs {
            col.visit_attribute(a);
        }
        for item in items {
            col.visit_item(item);
        }
        let (out, uses, exported) = (col.out, col.uses, col.exported);
        raw.extend(out);
        for name in exported {
            let definer = [vec!["crate".to_string()], module.clone(), vec![name.clone()]].concat();
            self.imports.entry(Vec::new()).or_default().insert(name, definer);
        }
        let imports = self.imports.entry(module.clone()).or_default();
        for (name, full, glob) in uses {
            if !glob {
                imports.insert(name, full);
            }
        }
        for item in items {
            let syn::Item::Mod(m) = item else { continue };
            let name = m.ident.to_string();
            let mut child = module.clone();
            child.push(name.clone());
            if let Some((_, content)) = &m.content {
                self.read_items(&child, &m.attrs, content, file, &dir.join(&name), raw)?;
                continue;
            }
            let file = match path_attr(&m.attrs) {
                Some(p) => file.parent().unwrap().join(p),
                None => {
                    let flat = dir.join(format!("{name}.rs"));
                    if flat.exists() {
                        flat
                    } else {
                        dir.join(&name).join("mod.rs")
                    }
                }
            };
            // A `mod.rs` (or a #[path] file) keeps its children beside it; `x.rs` in `x/`.
            let child_dir = if file.file_name().is_some_and(|n| n == "mod.rs") {
                file.parent().unwrap().to_path_buf()
            } else {
                file.with_extension("")
            };
            self.read_file(&child, &file, &child_dir, raw)?;
        }
        Ok(())
    }

    /// Makes a written path absolute within the crate, or None for other crates and std.
    fn absolute(&self, module: &ModPath, segs: &[String], hops: usize) -> Option<ModPath> {
        let (first, rest) = segs.split_first()?;
        let base = match first.as_str() {
            "crate" => Vec::new(),
            "self" => module.clone(),
            "super" => {
                let mut m = module.clone();
                m.pop()?;
                if rest.first().is_some_and(|s| s == "super") {
                    return self.absolute(&m, rest, hops);
                }
                m
            }
            name => {
                let mut child = module.clone();
                child.push(name.to_string());
                if self.modules.contains_key(&child) {
                    child
                } else {
                    // `use crate::stage::manifest;` then `manifest::checksum`.
                    let target = self.imports.get(module)?.get(name)?;
                    if hops >= 16 {
                        return None;
                    }
                    return self.absolute(module, &[target, rest].concat(), hops + 1);
                }
            }
        };
        Some([base, rest.to_vec()].concat())
    }

    /// The module that defines what `path` (absolute) names, following `use` re-exports.
    fn defining_module(&self, path: &[String], hops: usize) -> ModPath {
        let mut m: ModPath = Vec::new();
        for (i, seg) in path.iter().enumerate() {
            let mut child = m.clone();
            child.push(seg.clone());
            if self.modules.contains_key(&child) {
                m = child;
                continue;
            }
            if hops < 16 {
                if let Some(target) = self.imports.get(&m).and_then(|imp| imp.get(seg)) {
                    if let Some(abs) = self.absolute(&m, target, 0) {
                        return self.defining_module(&[abs, path[i + 1..].to_vec()].concat(), hops + 1);
                    }
                }
            }
            break;
        }
        m
    }

    fn resolve(&mut self, raw: Vec<RawRef>) {
        for r in raw {
            let Some(abs) = self.absolute(&r.module, &r.segments, 0) else { continue };
            let target = if r.glob { abs } else { self.defining_module(&abs, 0) };
            self.refs.push((r.module, target, r.evidence));
        }
    }
}

/// A module's node: itself up to depth two.
fn node(m: &[String]) -> ModPath {
    m[..m.len().min(2)].to_vec()
}

fn node_name(krate: &Crate, m: &[String]) -> String {
    if m.is_empty() {
        format!("crate root ({})", krate.root.file_name().unwrap().to_string_lossy())
    } else {
        m.join("::")
    }
}

/// `file` relative to the folder holding `src`, as the repository names it.
fn rel<'a>(src: &Path, file: &'a Path) -> &'a Path {
    file.strip_prefix(src.parent().unwrap_or(src)).unwrap_or(file)
}

/// Every crate root under `src`.
fn crate_roots(src: &Path) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = ["lib.rs", "main.rs"].iter().map(|f| src.join(f)).filter(|p| p.exists()).collect();
    // Targets Cargo.toml places elsewhere under src (the binary in src/cli/main.rs).
    let manifest = std::fs::read_to_string(src.parent().unwrap_or(src).join("Cargo.toml")).unwrap_or_default();
    for line in manifest.lines() {
        let Some(path) = line.trim().strip_prefix("path = \"src/").and_then(|p| p.strip_suffix('"')) else { continue };
        let p = src.join(path);
        if p.exists() && !roots.contains(&p) {
            roots.push(p);
        }
    }
    if let Ok(entries) = std::fs::read_dir(src.join("bin")) {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "rs") {
                roots.push(p);
            } else if p.join("main.rs").exists() {
                roots.push(p.join("main.rs"));
            }
        }
    }
    roots.sort();
    roots
}

/// The module cycles of every crate under `src`, each as lines naming its edges and where each
/// edge is written. Empty when the graph is acyclic.
fn module_cycles(src: &Path) -> Result<Vec<String>, String> {
    let mut report = Vec::new();
    let roots = crate_roots(src);
    if roots.is_empty() {
        return Err(format!("no crate root (lib.rs, main.rs, bin/) under {}", src.display()));
    }
    for root in roots {
        let krate = Crate::read(&root)?;
        let mut edges: BTreeMap<ModPath, BTreeMap<ModPath, Evidence>> = BTreeMap::new();
        for (from, to, ev) in &krate.refs {
            let (a, b) = (node(from), node(to));
            // Same node, or a module using its top-level module (`stage::zarr` -> `stage`): not
            // an edge. The crate root is no such namespace: `crate::convert_jobs` from a CLI
            // module that main.rs uses is a cycle.
            if a == b || (!b.is_empty() && a.starts_with(&b)) {
                continue;
            }
            edges.entry(a).or_default().entry(b).or_insert_with(|| ev.clone());
        }
        let edge = |indent: &str, from: &ModPath, to: &ModPath| {
            let ev = &edges[from][to];
            let (from, to, file) = (node_name(&krate, from), node_name(&krate, to), rel(src, &ev.file).display());
            format!("{indent}{from} -> {to}: {file}:{} names {}", ev.line, ev.path)
        };
        for (cycle, component) in cycles(&edges) {
            let mut lines = vec![format!(
                "cycle in {}: {}",
                rel(src, &root).display(),
                cycle.iter().chain(cycle.first()).map(|m| node_name(&krate, m)).collect::<Vec<_>>().join(" -> ")
            )];
            for (i, from) in cycle.iter().enumerate() {
                lines.push(edge("  ", from, &cycle[(i + 1) % cycle.len()]));
            }
            if component.len() > cycle.len() {
                let names: Vec<String> = component.iter().map(|m| node_name(&krate, m)).collect();
                lines.push(format!("  and more cycles among: {}", names.join(", ")));
                // Every edge inside the component, so that one run shows all there is to cut.
                for from in &component {
                    for to in edges.get(from).into_iter().flat_map(|m| m.keys()).filter(|to| component.contains(to)) {
                        lines.push(edge("    ", from, to));
                    }
                }
            }
            report.push(lines.join("\n"));
        }
    }
    Ok(report)
}

/// One shortest cycle through each strongly connected component with more than one node, and
/// the component's nodes.
fn cycles(edges: &BTreeMap<ModPath, BTreeMap<ModPath, Evidence>>) -> Vec<(Vec<ModPath>, Vec<ModPath>)> {
    let nodes: BTreeSet<&ModPath> = edges.iter().flat_map(|(a, bs)| std::iter::once(a).chain(bs.keys())).collect();
    let reach = |from: &ModPath| -> BTreeMap<ModPath, ModPath> {
        // Breadth-first from `from`: node -> predecessor on a shortest path.
        let mut pred = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([from.clone()]);
        while let Some(n) = queue.pop_front() {
            for next in edges.get(&n).into_iter().flat_map(|m| m.keys()) {
                if !pred.contains_key(next) {
                    pred.insert(next.clone(), n.clone());
                    queue.push_back(next.clone());
                }
            }
        }
        pred
    };
    let mut seen: BTreeSet<ModPath> = BTreeSet::new();
    let mut out = Vec::new();
    for n in nodes {
        if seen.contains(n) {
            continue;
        }
        let pred = reach(n);
        if !pred.contains_key(n) {
            continue;
        }
        // Walk back from n to n along shortest-path predecessors.
        let mut cycle = vec![n.clone()];
        let mut cur = pred[n].clone();
        while &cur != n {
            cycle.push(cur.clone());
            cur = pred[&cur].clone();
        }
        cycle.reverse();
        cycle.rotate_right(1);
        // Every node on a cycle through n and back: n's whole component is reported once.
        let component: Vec<ModPath> = pred.keys().filter(|m| reach(m).contains_key(n)).cloned().collect();
        seen.extend(component.iter().cloned());
        out.push((cycle, component));
    }
    out
}

/// Cycles known and not yet removed, each as its first line (`<crate root>: a -> b -> a`):
/// none; a new one fails the test.
const KNOWN_CYCLES: [&str; 0] = [];

#[test]
fn src_modules_have_no_cycle() {
    let found = module_cycles(&repo_file("src")).unwrap();
    let heads: Vec<&str> = found.iter().map(|c| c.lines().next().unwrap().trim_start_matches("cycle in ")).collect();
    let new: Vec<&String> =
        found.iter().zip(&heads).filter(|(_, h)| !KNOWN_CYCLES.contains(h)).map(|(c, _)| c).collect();
    let new: Vec<&str> = new.iter().map(|c| c.as_str()).collect();
    assert!(new.is_empty(), "module cycles (data must flow one way):\n{}", new.join("\n"));
    let gone: Vec<&&str> = KNOWN_CYCLES.iter().filter(|k| !heads.contains(k)).collect();
    assert!(gone.is_empty(), "these cycles are gone: delete them from KNOWN_CYCLES: {gone:?}");
}

/// Writes `files` (path under the tree, text) into a fresh folder and returns it.
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tmp();
    for (rel, text) in files {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

/// The library tree every fixture starts from: acyclic, with the shapes the crate uses.
const BASE: [(&str, &str); 7] = [
    ("src/lib.rs", "pub mod source;\npub mod stage;\npub mod json;\n"),
    ("src/json.rs", "pub fn f64_opt() {}\n"),
    ("src/source.rs", "use crate::json::f64_opt;\npub struct SourceInfo;\n"),
    // A parent re-exporting a child's item, used by a sibling and by the child itself.
    ("src/stage/mod.rs", "pub mod manifest;\npub mod zarr;\npub use manifest::Manifest;\npub struct StageError;\n"),
    (
        "src/stage/manifest.rs",
        "use crate::source::SourceInfo;\nuse super::StageError;\npub struct Manifest;\n\
         #[cfg(test)]\nmod tests { use crate::json::f64_opt; }\n/// Numbers as [`crate::json::f64_opt`] writes them.\npub struct Sum;\n",
    ),
    ("src/stage/zarr.rs", "use crate::stage::Manifest;\npub fn chunk_key() {}\n"),
    ("src/main.rs", "mod cli_load;\nmod cli_shard;\nfn main() { cli_load::run(); }\n"),
];

fn with(extra: &[(&'static str, &'static str)]) -> tempfile::TempDir {
    let mut files: BTreeMap<&str, &str> = BASE.iter().copied().collect();
    files.extend(extra.iter().copied());
    files.entry("src/cli_load.rs").or_insert("pub fn run() { crate::cli_shard::plan(); }\n");
    files.entry("src/cli_shard.rs").or_insert("pub fn plan() {}\n");
    tree(&files.into_iter().collect::<Vec<_>>())
}

#[test]
fn fixture_tree_without_cycle_passes() {
    // Parent re-exports, a child using its parent, a cfg(test) module and a doc link to a lower
    // module: none of them is a cycle.
    let dir = with(&[]);
    assert_eq!(module_cycles(&dir.path().join("src")).unwrap(), Vec::<String>::new());
}

#[test]
fn deliberate_cycles_are_found_and_named() {
    // Top-level modules: source uses stage's JSON helper, stage::manifest uses source.
    let dir =
        with(&[("src/source.rs", "pub struct SourceInfo;\nfn f() { crate::stage::manifest::json_opt_f64(); }\n")]);
    let found = module_cycles(&dir.path().join("src")).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("source -> stage::manifest -> source"), "{}", found[0]);
    assert!(found[0].contains("src/source.rs:2 names crate::stage::manifest::json_opt_f64"), "{}", found[0]);
    assert!(found[0].contains("src/stage/manifest.rs:1 names crate::source::SourceInfo"), "{}", found[0]);

    // Sibling submodules, one through its parent's re-export, one inside a macro call.
    let dir = with(&[(
        "src/stage/manifest.rs",
        "use super::StageError;\npub struct Manifest;\nfn k() -> String { format!(\"{}\", super::zarr::chunk_key()) }\n",
    )]);
    let found = module_cycles(&dir.path().join("src")).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("stage::manifest -> stage::zarr -> stage::manifest"), "{}", found[0]);
    assert!(found[0].contains("names super::zarr::chunk_key"), "{}", found[0]);
    assert!(found[0].contains("names crate::stage::Manifest"), "{}", found[0]);

    // In the binary: two CLI modules using each other.
    let dir = with(&[("src/cli_shard.rs", "use crate::cli_load::run;\npub fn plan() {}\n")]);
    let found = module_cycles(&dir.path().join("src")).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("cli_load -> cli_shard -> cli_load"), "{}", found[0]);
    assert!(found[0].contains("src/main.rs: cli_load -> cli_shard -> cli_load"), "{}", found[0]);

    // A CLI module calling back into main.rs, which uses it.
    let dir = with(&[("src/cli_load.rs", "pub fn run() { crate::main(); }\n")]);
    let found = module_cycles(&dir.path().join("src")).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("crate root (main.rs) -> cli_load -> crate root (main.rs)"), "{}", found[0]);

    // A test module, and a doc link, calling a module that uses this one.
    for manifest in [
        "use super::StageError;\npub struct Manifest;\n#[cfg(test)]\nmod tests {\n    use crate::stage::zarr::chunk_key;\n}\n",
        "use super::StageError;\n/// Tiles are named by [`super::zarr::chunk_key`].\npub struct Manifest;\n",
        "//! Tiles are named by [chunk keys](crate::stage::zarr::chunk_key()).\npub struct Manifest;\n",
    ] {
        let dir = with(&[("src/stage/manifest.rs", manifest)]);
        let found = module_cycles(&dir.path().join("src")).unwrap();
        assert_eq!(found.len(), 1, "{manifest}: {found:?}");
        assert!(found[0].contains("stage::manifest -> stage::zarr -> stage::manifest"), "{}", found[0]);
        assert!(found[0].contains("zarr::chunk_key"), "{}", found[0]);
    }
}

#[test]
fn moved_cli_files_are_still_checked() {
    // The binary in its own folder with one module per subcommand, and a #[path] module.
    let dir = with(&[
        ("src/main.rs", "fn main() {}\n"),
        ("src/bin/rasterstage/main.rs", "mod cli;\nfn main() { cli::load::run(); }\n"),
        (
            "src/bin/rasterstage/cli/mod.rs",
            "pub mod load;\npub mod shard;\n#[path = \"args_impl.rs\"]\npub mod args;\n",
        ),
        ("src/bin/rasterstage/cli/args_impl.rs", "pub struct Db;\n"),
        ("src/bin/rasterstage/cli/load.rs", "use super::args::Db;\npub fn run() { super::shard::plan(); }\n"),
        ("src/bin/rasterstage/cli/shard.rs", "use crate::cli::args::Db;\npub fn plan() {}\n"),
    ]);
    assert_eq!(module_cycles(&dir.path().join("src")).unwrap(), Vec::<String>::new());
    let dir = with(&[
        ("src/main.rs", "fn main() {}\n"),
        ("src/bin/rasterstage/main.rs", "mod cli;\nfn main() {}\n"),
        ("src/bin/rasterstage/cli/mod.rs", "pub mod load;\npub mod shard;\n"),
        ("src/bin/rasterstage/cli/load.rs", "pub fn run() { super::shard::plan(); }\n"),
        ("src/bin/rasterstage/cli/shard.rs", "pub fn plan() { crate::cli::load::run(); }\n"),
    ]);
    let found = module_cycles(&dir.path().join("src")).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("src/bin/rasterstage/main.rs: cli::load -> cli::shard -> cli::load"), "{}", found[0]);
}
