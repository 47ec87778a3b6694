//! `switchyard delete`: `kubectl delete -f` on the spec directory.
//!
//! Removes every document defining a resource named in the given files (only kind, namespace and name are read
//! from them), and a file once it has no documents left. Nothing is written when a resource is not in the directory
//! (unless `--ignore-not-found`) or when the directory would have errors without the resources (a DestinationRule
//! a VirtualService still needs, for example); the reasons go to stderr and the exit status is 1. On success
//! stdout gets kubectl's lines, `virtualservice.networking.istio.io "reviews" deleted`.

use std::path::PathBuf;
use std::process::ExitCode;

use super::apply::{resource_type, result};
use super::inputs;
use super::output::Output;
use super::served::{Before, ServedArgs};
use super::validate::{check_dir, has_errors, refuse};
use crate::spec::{edit, ResourceKey, SpecDir};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example (an Istio task's cleanup, from the repository root):\n  \
    switchyard delete -f ../shared/istio-bookinfo/virtual-service-all-v1.yaml"
)]
pub struct Args {
    /// File naming the resources to remove; a directory (its *.yaml files) or `-` (standard input). Repeat -f
    /// for more.
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
    /// Skip resources that are not in the spec directory instead of refusing.
    #[arg(long)]
    pub ignore_not_found: bool,
    #[command(flatten)]
    pub served: ServedArgs,
    /// `-o json|yaml`: the deleted resources, as a list, instead of kubectl's lines.
    #[command(flatten)]
    pub output: Output,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut dir = SpecDir::read(&args.config)?;
    let mut keys: Vec<ResourceKey> = Vec::new();
    for input in inputs::read_all(&args.files)? {
        let file = &input.path;
        let docs = edit::input_documents(file, &input.text)?;
        anyhow::ensure!(
            !docs.is_empty(),
            "no resources found in `{}`; nothing was changed",
            file.display()
        );
        for doc in docs {
            if !keys.contains(&doc.key) {
                keys.push(doc.key);
            }
        }
    }
    let (deleted, missing): (Vec<_>, Vec<_>) = keys.into_iter().partition(|k| dir.delete(k));
    if !missing.is_empty() && !args.ignore_not_found {
        for key in &missing {
            eprintln!(
                "Error (NotFound): {} \"{}\" not found in namespace \"{}\" of `{}`",
                resource_type(key.kind),
                key.name,
                key.namespace,
                dir.root().display()
            );
        }
        eprintln!(
            "error: nothing was changed (pass --ignore-not-found to delete the others anyway)"
        );
        return Ok(ExitCode::FAILURE);
    }
    let diagnostics = check_dir(&dir);
    if has_errors(&diagnostics) {
        return refuse(
            &diagnostics,
            &format!(
                "the spec directory `{}` would not be valid without these resources",
                dir.root().display()
            ),
        );
    }
    let before = Before::read(&args.served)?;
    dir.commit()?;
    if args.output.structured() {
        let list: Vec<serde_json::Value> =
            deleted.iter().map(|key| result(key, "deleted")).collect();
        args.output.print(&list)?;
    } else {
        for key in &deleted {
            println!("{} \"{}\" deleted", resource_type(key.kind), key.name);
        }
    }
    before.report(&args.served, dir.root())
}
