//! Golden tests for `resolve` + `translate`: every case directory under `tests/golden/translate` names its inputs
//! and proxies in `case.yaml`; each proxy's resources are compared with `<proxy>/{listeners,routes,clusters}.yaml`,
//! the endpoints (the same for every proxy: they depend on the mesh only) with the case's `endpoints.yaml`, and
//! the resolve warnings with `warnings.yaml`. `SWITCHYARD_BLESS=1` rewrites them and deletes files no longer
//! produced.
//!
//! The admin endpoint's descriptor set (`src/admin/envoy_descriptors.bin`, how `/debug/snapshot` prints
//! resources) is checked here too: it must be what the envoy-types in use yields (blessing rewrites it), and every
//! resource of every case must print through it.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use support::golden;

use serde::Deserialize;
use switchyard::admin::render::{self, Rendered};
use switchyard::mesh::{self, Proxy};
use switchyard::translate;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    inputs: Vec<String>,
    proxies: String,
}

fn run_case(dir: &Path) -> Vec<String> {
    let case: Case =
        serde_yaml::from_str(&fs::read_to_string(dir.join("case.yaml")).expect("case.yaml"))
            .expect("parse case.yaml");
    let config = golden::load_inputs(dir, &case.inputs);
    let resolved = match mesh::resolve(&config) {
        Ok(r) => r,
        Err(diags) => {
            let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
            return vec![format!(
                "{}: resolve failed:\n{}",
                dir.display(),
                text.join("\n")
            )];
        }
    };
    let proxies: BTreeMap<String, serde_yaml::Value> =
        serde_yaml::from_str(&fs::read_to_string(dir.join(&case.proxies)).expect("proxies file"))
            .expect("parse proxies");
    let mut files = vec![(
        "warnings.yaml".to_owned(),
        serde_yaml::to_string(&resolved.warnings).expect("warnings"),
    )];
    let mut problems = Vec::new();
    // (the first proxy, its endpoints): every other proxy must get the same.
    let mut endpoints: Option<(&str, String)> = None;
    for (name, node) in &proxies {
        let node = golden::node_from_yaml(node);
        let proxy = match Proxy::identify(&resolved.mesh, &node) {
            Ok(p) => p,
            Err(e) => {
                problems.push(format!("{}: proxy {name}: {e}", dir.display()));
                continue;
            }
        };
        let resources = translate::translate(&resolved.mesh, &proxy);
        if let Err(e) = resources.check_consistent() {
            problems.push(format!(
                "{}: proxy {name} is inconsistent: {e:?}",
                dir.display()
            ));
        }
        let again = translate::translate(&resolved.mesh, &proxy);
        if golden::encode_all(&resources) != golden::encode_all(&again) {
            problems.push(format!(
                "{}: proxy {name}: translating twice gave different bytes",
                dir.display()
            ));
        }
        for any in golden::pack_all(&resources) {
            if let Err(e) = Rendered::new(&any) {
                problems.push(format!(
                    "{}: proxy {name}: /debug/snapshot cannot print a resource: {e}; add the type to \
                     support::golden::embedded_descriptor_roots and bless",
                    dir.display()
                ));
            }
        }
        for (file, contents) in golden::render_resources(&resources) {
            if file != "endpoints.yaml" {
                files.push((format!("{name}/{file}"), contents));
                continue;
            }
            match &endpoints {
                None => endpoints = Some((name, contents)),
                Some((first, expected)) if *expected != contents => problems.push(format!(
                    "{}: proxy {name} got other endpoints than proxy {first}",
                    dir.display()
                )),
                Some(_) => {}
            }
        }
    }
    if let Some((_, contents)) = endpoints {
        files.push(("endpoints.yaml".to_owned(), contents));
    }
    problems.extend(golden::check_dir(dir, &files));
    problems
}

#[test]
fn translate_goldens() {
    let root = golden::golden_dir().join("translate");
    let mut cases: Vec<_> = fs::read_dir(&root)
        .expect("tests/golden/translate")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("case.yaml").is_file())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no cases under {}", root.display());
    let problems: Vec<String> = cases.iter().flat_map(|c| run_case(c)).collect();
    assert!(
        problems.is_empty(),
        "{} golden problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The descriptor set the admin endpoint embeds is the one the envoy-types in `Cargo.lock` yields: an upgrade that
/// changes a message the endpoint prints fails here until the set is blessed.
#[test]
fn embedded_descriptors_are_cut_from_envoy_types() {
    let wanted = golden::embedded_descriptor_set(&golden::embedded_descriptor_roots());
    let path = golden::manifest_dir().join(render::ENVOY_DESCRIPTORS_PATH);
    if golden::blessing() {
        fs::write(&path, &wanted).expect("write the descriptor set");
        return;
    }
    assert!(
        render::ENVOY_DESCRIPTORS == wanted.as_slice(),
        "{} ({} bytes) is not what envoy-types yields now ({} bytes): run \
         SWITCHYARD_BLESS=1 cargo test --test golden_translate",
        path.display(),
        render::ENVOY_DESCRIPTORS.len(),
        wanted.len()
    );
}
