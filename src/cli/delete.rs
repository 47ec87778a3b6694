//! `switchyard delete`: `kubectl delete -f` on the spec directory.
//!
//! Removes every document defining a resource named in the given files (only kind, namespace and name are read
//! from them), and a file once it has no documents left. Nothing is written when a resource is not in the directory
//! (unless `--ignore-not-found`) or when the directory would have errors without the resources (a DestinationRule
//! a VirtualService still needs, for example); the reasons go to stderr and the exit status is 1. On success
//! stdout gets kubectl's lines, `virtualservice.networking.istio.io "reviews" deleted`.

use std::fs;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::apply::resource_type;
use super::validate::{check_dir, has_errors, refuse};
use crate::spec::{edit, ResourceKey, SpecDir};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example (an Istio task's cleanup, from the repository root):\n  \
    switchyard delete -f ../shared/istio-bookinfo/virtual-service-all-v1.yaml"
)]
pub struct Args {
    /// File naming the resources to remove (repeat -f for more files).
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// The spec directory to edit.
    #[arg(long, value_name = "DIR", default_value = "config")]
    pub config: PathBuf,
    /// Skip resources that are not in the spec directory instead of refusing.
    #[arg(long)]
    pub ignore_not_found: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut dir = SpecDir::read(&args.config)?;
    let mut keys: Vec<ResourceKey> = Vec::new();
    for file in &args.files {
        let text = fs::read_to_string(file)
            .with_context(|| format!("cannot read `{}`", file.display()))?;
        let docs = edit::input_documents(file, &text)?;
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
    dir.commit()?;
    for key in &deleted {
        println!("{} \"{}\" deleted", resource_type(key.kind), key.name);
    }
    Ok(ExitCode::SUCCESS)
}
