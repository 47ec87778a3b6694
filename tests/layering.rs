//! The pipeline points one way: spec → mesh → translate → xds, with the runtime pieces above them. The modules
//! are one crate (see docs/architecture.md, "Why one crate"), so the compiler does not keep the layers apart;
//! this test does. It reads `src/**/*.rs`, collects every `crate::<module>` path per top-level module, and fails
//! on an edge the table below does not allow. It also fails on a cycle between sibling files of one module
//! (`super::<sibling>` both ways), which the table cannot see.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Who may name whom, after the pipeline's direction. A module missing here is an error, so a new module gets
/// its place in the picture when it is added.
const ALLOWED: &[(&str, &[&str])] = &[
    // Leaves: the node identity contract and the file watcher, which both sides of the pipeline use.
    ("node_id", &[]),
    ("watcher", &[]),
    // The pipeline's stages.
    ("spec", &[]),
    ("mesh", &["spec", "node_id"]),
    ("translate", &["mesh"]),
    ("xds", &["node_id", "watcher"]),
    // Reading specs, and what proxies are and where they run.
    ("source", &["spec", "mesh", "watcher"]),
    ("envoy", &["mesh"]),
    ("topology", &["envoy", "mesh"]),
    // What the mesh does now, from the Envoys' admin stats: `switchyard top` and the dashboard.
    ("traffic", &["envoy", "node_id", "topology", "xds"]),
    // Certificates for xDS over mutual TLS.
    ("certs", &["xds"]),
    // The generated meshes of the benchmarks: files a user would write, and the nodes of their sidecars.
    ("meshgen", &["control_plane", "envoy", "topology", "xds"]),
    // Running it all.
    ("admin", &["mesh", "node_id", "traffic", "xds"]),
    (
        "control_plane",
        &["admin", "mesh", "source", "traffic", "translate", "xds"],
    ),
    (
        "demo",
        &[
            "certs",
            "control_plane",
            "envoy",
            "mesh",
            "source",
            "topology",
            "xds",
        ],
    ),
    (
        "cli",
        &[
            "certs",
            "control_plane",
            "demo",
            "envoy",
            "mesh",
            "node_id",
            "source",
            "spec",
            "topology",
            "traffic",
            "xds",
        ],
    ),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments (doc links name modules without depending on them).
fn code(path: &Path) -> String {
    fs::read_to_string(path)
        .expect("read source")
        .lines()
        .map(|l| l.split_once("//").map_or(l, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first segments of the paths after `prefix` (`prefix` followed by `name` or `{a, b::c}`).
fn names_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices(prefix) {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[i + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let end = group
                .find(|c| {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => return true,
                        '}' => depth -= 1,
                        _ => {}
                    }
                    false
                })
                .unwrap_or(group.len());
            let mut depth = 0;
            let mut start = 0;
            // Split the group at top-level commas; each item's first segment is a name.
            for (j, c) in group[..end].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(&group[start..j]));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
            out.insert(ident(&group[start..end]));
        } else {
            out.insert(ident(rest));
        }
    }
    out.retain(|n| !n.is_empty() && n != "self");
    out
}

/// The top-level module a file belongs to (`None` for `lib.rs` and `main.rs`).
fn top_module(root: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(root).expect("under src");
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    match first.strip_suffix(".rs") {
        Some("lib" | "main") => None,
        Some(name) => Some(name.to_owned()),
        None => Some(first),
    }
}

#[test]
fn modules_depend_only_downwards() {
    let root = src();
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(m, deps)| (*m, deps.iter().copied().collect()))
        .collect();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for file in &files {
        let Some(module) = top_module(&root, file) else {
            continue;
        };
        seen.insert(module.clone());
        let Some(may) = allowed.get(module.as_str()) else {
            problems.push(format!("module `{module}` has no row in ALLOWED"));
            continue;
        };
        for dep in names_after(&code(file), "crate::") {
            if dep != module && !may.contains(dep.as_str()) {
                problems.push(format!(
                    "{}: `{module}` uses `crate::{dep}`, which it may not",
                    file.strip_prefix(&root).expect("under src").display()
                ));
            }
        }
    }
    for module in allowed.keys() {
        if !seen.contains(*module) {
            problems.push(format!("ALLOWED names `{module}`, which is not in src/"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn sibling_files_do_not_import_each_other() {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    // (directory, file stem) → the siblings it names through `super::`.
    let mut edges: BTreeMap<(PathBuf, String), BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let stem = file.file_stem().and_then(|s| s.to_str()).expect("stem");
        if matches!(stem, "mod" | "lib" | "main") {
            continue;
        }
        let dir = file.parent().expect("parent").to_path_buf();
        let siblings: BTreeSet<String> = names_after(&code(file), "super::")
            .into_iter()
            .filter(|n| n != stem && dir.join(format!("{n}.rs")).is_file())
            .collect();
        edges.insert((dir, stem.to_owned()), siblings);
    }
    let mut cycles = Vec::new();
    for ((dir, a), deps) in &edges {
        for b in deps {
            let back = edges
                .get(&(dir.clone(), b.clone()))
                .is_some_and(|d| d.contains(a));
            if back && a < b {
                cycles.push(format!(
                    "{}: `{a}` and `{b}` import each other",
                    dir.strip_prefix(&root).expect("under src").display()
                ));
            }
        }
    }
    assert!(cycles.is_empty(), "{}", cycles.join("\n"));
}

#[test]
fn the_parser_sees_grouped_imports() {
    let names = names_after(
        "use crate::{mesh::{self, Mesh}, spec};\nlet x = crate::xds::Cache::new();\nfoo_crate::y;",
        "crate::",
    );
    assert_eq!(
        names,
        BTreeSet::from(["mesh".to_owned(), "spec".to_owned(), "xds".to_owned()])
    );
}
