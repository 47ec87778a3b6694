//! `switchyard apply`: `kubectl apply -f` on the spec directory.
//!
//! Each resource in the given files replaces the document with the same kind/namespace/name wherever the directory
//! defines it, or is added to a file named after the input file (`-f x/reviews.yaml` adds to `config/reviews.yaml`).
//! The directory is edited in memory and checked as a whole first; if the result would have errors nothing is
//! written, the diagnostics go to stderr and the exit status is 1. Otherwise each changed file is replaced
//! atomically and stdout gets kubectl's lines, `virtualservice.networking.istio.io/reviews created|configured|
//! unchanged` (`unchanged`: same YAML content, comments and formatting aside; the file is then not touched).
//! Warnings about the applied resources go to stderr.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use super::inputs;
use super::output::Output;
use super::served::{Before, ServedArgs};
use super::validate::{check_dir, has_errors, refuse};
use crate::mesh::load_diagnostics;
use crate::spec::{self, edit, Kind, ResourceKey, SpecDir};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example (an Istio task step, from the repository root):\n  \
    switchyard apply -f ../shared/istio-bookinfo/virtual-service-reviews-test-v2.yaml\n  \
    switchyard apply -f - < virtual-service.yaml      # standard input, as in Istio's docs\n  \
    switchyard apply -f ../shared/istio-bookinfo/virtual-service-all-v1.yaml --wait   # until every proxy ACKs"
)]
pub struct Args {
    /// File with the resources to add or replace: Istio YAML, one or more documents; a directory (its *.yaml
    /// files) or `-` (standard input). Repeat -f for more.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "FILE|DIR|-",
        required = true
    )]
    pub files: Vec<PathBuf>,
    /// The spec directory to edit.
    #[arg(long, value_name = "DIR", default_value = "config")]
    pub config: PathBuf,
    #[command(flatten)]
    pub served: ServedArgs,
    /// `-o json|yaml`: what happened to each resource, as a list, instead of kubectl's lines.
    #[command(flatten)]
    pub output: Output,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut dir = SpecDir::read(&args.config)?;
    let mut outcomes = Vec::new();
    for input in inputs::read_all(&args.files)? {
        let (file, text) = (&input.path, &input.text);
        // The input is checked on its own first, so its problems point at the file the user wrote.
        if let Err(errors) = spec::load_str(file, text) {
            return refuse(
                &load_diagnostics(errors),
                &format!("`{}` is not valid", file.display()),
            );
        }
        let docs = edit::input_documents(file, text)?;
        anyhow::ensure!(
            !docs.is_empty(),
            "no resources found in `{}`; nothing was changed",
            file.display()
        );
        let target = dir.target_for(input.target_name());
        for doc in &docs {
            outcomes.push((doc.key.clone(), dir.apply(doc, &target)));
        }
    }
    let diagnostics = check_dir(&dir);
    if has_errors(&diagnostics) {
        return refuse(
            &diagnostics,
            &format!(
                "the spec directory `{}` would not be valid with these resources",
                dir.root().display()
            ),
        );
    }
    let before = Before::read(&args.served)?;
    dir.commit()?;
    if args.output.structured() {
        let list: Vec<serde_json::Value> = outcomes
            .iter()
            .map(|(key, outcome)| result(key, outcome.as_str()))
            .collect();
        args.output.print(&list)?;
    } else {
        for (key, outcome) in &outcomes {
            println!(
                "{}/{} {}",
                resource_type(key.kind),
                key.name,
                outcome.as_str()
            );
        }
    }
    let applied: BTreeSet<&ResourceKey> = outcomes.iter().map(|(k, _)| k).collect();
    for warning in diagnostics
        .iter()
        .filter(|d| d.resource.as_ref().is_some_and(|r| applied.contains(r)))
    {
        eprintln!("{warning}");
    }
    before.report(&args.served, dir.root())
}

/// One resource's outcome for `-o json|yaml`.
pub(crate) fn result(key: &ResourceKey, outcome: &str) -> serde_json::Value {
    serde_json::json!({
        "type": resource_type(key.kind),
        "namespace": key.namespace,
        "name": key.name,
        "result": outcome,
    })
}

/// kubectl's name for a kind: `virtualservice.networking.istio.io`.
pub(crate) fn resource_type(kind: Kind) -> String {
    format!("{}.networking.istio.io", kind.as_str().to_lowercase())
}
