//! README's and docs/design.md's "Code layout" blocks match the tree (issue 15, "done means"):
//! every file and folder of `src/` has an entry, every file in a folder is named in that
//! folder's entry, and every file an entry names exists. A file added, moved or deleted
//! without its line in both documents fails here, naming the document and the file.

use crate::common::*;
use std::collections::BTreeMap;
use std::path::Path;

/// One document's layout block: entry (`src/grid.rs`, `src/stage/`) -> its description.
fn layout_entries(doc: &str, text: &str) -> BTreeMap<String, String> {
    let start = text.find("## Code layout").unwrap_or_else(|| panic!("{doc}: no \"## Code layout\" section"));
    let block = &text[start..];
    let open = block.find("```").unwrap_or_else(|| panic!("{doc}: the code layout has no fenced block"));
    let block = &block[open + 3..];
    let block = &block[block.find('\n').unwrap() + 1..block.find("\n```").unwrap()];
    let mut entries: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in block.lines() {
        if let Some(entry) = line.strip_prefix("src/").map(|_| line.split_whitespace().next().unwrap()) {
            let desc = line[entry.len()..].trim().to_string();
            assert!(entries.insert(entry.to_string(), desc).is_none(), "{doc}: {entry} is listed twice");
            last = Some(entry.to_string());
        } else {
            let entry = last.as_ref().unwrap_or_else(|| panic!("{doc}: a layout line before any entry: {line}"));
            let desc = entries.get_mut(entry).unwrap();
            desc.push(' ');
            desc.push_str(line.trim());
        }
    }
    entries
}

/// `.rs` files below `dir`, as paths relative to it (`manifest/v1.rs`).
fn rust_files(dir: &Path, rel: &str, out: &mut Vec<String>) {
    let mut names: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let name = e.file_name().to_string_lossy().to_string();
        if e.file_type().unwrap().is_dir() {
            rust_files(&e.path(), &format!("{rel}{name}/"), out);
        } else if name.ends_with(".rs") {
            out.push(format!("{rel}{name}"));
        }
    }
}

/// The `*.rs` names a description mentions (`manifest/v1.rs`, `parquet.rs`).
fn named_files(desc: &str) -> Vec<String> {
    desc.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '/' || c == '.'))
        .map(|w| w.trim_end_matches('.'))
        .filter(|w| w.ends_with(".rs") && !w.starts_with("src/"))
        .map(str::to_string)
        .collect()
}

/// Every way `doc`'s layout differs from the tree under `src`, one line each.
fn layout_problems(doc: &str, text: &str, src: &Path) -> Vec<String> {
    let entries = layout_entries(doc, text);
    let mut problems = Vec::new();
    let mut top: Vec<_> = std::fs::read_dir(src).unwrap().map(|e| e.unwrap()).collect();
    top.sort_by_key(|e| e.file_name());
    for e in &top {
        let name = e.file_name().to_string_lossy().to_string();
        // lib.rs is the crate root: it only declares the modules the layout lists.
        if name == "lib.rs" {
            continue;
        }
        let is_dir = e.file_type().unwrap().is_dir();
        let entry = if is_dir { format!("src/{name}/") } else { format!("src/{name}") };
        let Some(desc) = entries.get(&entry) else {
            problems.push(format!("{doc}: {entry} is in the tree but not in the code layout"));
            continue;
        };
        if is_dir {
            let mut files = Vec::new();
            rust_files(&e.path(), "", &mut files);
            let named = named_files(desc);
            for f in files.iter().filter(|f| !named.contains(f)) {
                problems.push(format!("{doc}: {entry}{f} is in the tree but its folder's entry does not name it"));
            }
            // A name with a folder may point elsewhere in src/ ("through stage/read.rs").
            for f in named.iter().filter(|f| !files.contains(f) && !src.join(f).is_file()) {
                problems.push(format!("{doc}: {entry} names {f}, which is not in the tree"));
            }
        }
    }
    for entry in entries.keys() {
        if !src.parent().unwrap().join(entry).exists() {
            problems.push(format!("{doc}: {entry} is in the code layout but not in the tree"));
        }
    }
    problems
}

#[test]
fn readme_and_design_code_layouts_match_the_tree() {
    let src = repo_file("src");
    let mut problems = Vec::new();
    for doc in ["README.md", "docs/design.md"] {
        let text = std::fs::read_to_string(repo_file(doc)).unwrap();
        problems.extend(layout_problems(doc, &text, &src));
    }
    assert!(problems.is_empty(), "the code layout and the tree differ:\n{}", problems.join("\n"));
}

#[test]
fn a_missing_or_stale_entry_is_named() {
    let dir = tmp();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("stage/manifest")).unwrap();
    for f in ["lib.rs", "grid.rs", "tiff.rs", "stage/mod.rs", "stage/zarr.rs", "stage/manifest/v1.rs"] {
        std::fs::write(src.join(f), "").unwrap();
    }
    let doc = "## Code layout\n\n```\nsrc/grid.rs   grids\nsrc/gone.rs   removed\n\
               src/stage/    mod.rs (errors), zarr.rs\n              (Zarr), parquet.rs\n```\n";
    let problems = layout_problems("README.md", doc, &src);
    assert_eq!(
        problems,
        [
            "README.md: src/stage/manifest/v1.rs is in the tree but its folder's entry does not name it",
            "README.md: src/stage/ names parquet.rs, which is not in the tree",
            "README.md: src/tiff.rs is in the tree but not in the code layout",
            "README.md: src/gone.rs is in the code layout but not in the tree",
        ]
    );
}
