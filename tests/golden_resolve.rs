//! Golden tests for loading + `resolve`: each directory under `tests/golden/resolve` has a `case.yaml` naming
//! its inputs; the output is `mesh.yaml` (the resolved model and its warnings) or `diagnostics.yaml` (every
//! load or resolve diagnostic). `SWITCHYARD_BLESS=1` rewrites them and removes the one that no longer applies.

mod support;

use std::fs;
use std::path::Path;
use support::golden;

use serde::Deserialize;
use switchyard::mesh::{self, Diagnostic};
use switchyard::spec::{self, Config};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    inputs: Vec<String>,
}

/// Like `golden::load_inputs`, but load errors are a result, not a panic.
fn load(dir: &Path, inputs: &[String]) -> Result<Config, Vec<Diagnostic>> {
    let mut config = Config::default();
    let mut errors = Vec::new();
    for input in inputs {
        let (path, label) = match input.strip_prefix("istio:") {
            Some(file) => (
                golden::istio_samples_dir().join(file),
                format!("istio-bookinfo/{file}"),
            ),
            None => (dir.join(input), input.clone()),
        };
        match spec::load_str(&label, &fs::read_to_string(&path).expect("input")) {
            Ok(c) => config = config.overlay(c),
            Err(e) => errors.extend(switchyard::mesh::load_diagnostics(e)),
        }
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

#[test]
fn resolve_goldens() {
    let root = golden::golden_dir().join("resolve");
    let mut cases: Vec<_> = fs::read_dir(&root)
        .expect("tests/golden/resolve")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("case.yaml").is_file())
        .collect();
    cases.sort();
    assert!(!cases.is_empty());
    let mut problems = Vec::new();
    for dir in cases {
        let case: Case =
            serde_yaml::from_str(&fs::read_to_string(dir.join("case.yaml")).expect("case"))
                .expect("case yaml");
        let file = match load(&dir, &case.inputs).and_then(|c| mesh::resolve(&c)) {
            Ok(resolved) => {
                #[derive(serde::Serialize)]
                struct Out<'a> {
                    warnings: &'a [Diagnostic],
                    mesh: &'a mesh::Mesh,
                }
                (
                    "mesh.yaml".to_owned(),
                    serde_yaml::to_string(&Out {
                        warnings: &resolved.warnings,
                        mesh: &resolved.mesh,
                    })
                    .expect("yaml"),
                )
            }
            Err(diags) => (
                "diagnostics.yaml".to_owned(),
                serde_yaml::to_string(&diags).expect("yaml"),
            ),
        };
        problems.extend(golden::check_dir(&dir, &[file]));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
