//! `switchyard validate`: Istio-`analyze`-style diagnostics for spec files.
//!
//! Text output is one diagnostic per line on stdout (`Error [CODE] (Kind ns/name) file:line field.path: message`,
//! then the warnings' `Warning [...]` lines); when there is nothing to report, a single `✔ No validation issues
//! found ...` line goes to stderr, so stdout is empty exactly when the configuration is clean. `-o json` / `-o yaml`
//! print the list of diagnostics (an empty list when clean) and nothing else. Exit status 1 when there is an error,
//! 0 otherwise (warnings do not fail).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::output::Output;
use crate::mesh::{self, load_diagnostics, Diagnostic};
use crate::spec::{self, Config, SpecDir};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    switchyard validate                         # the spec directory config/\n  \
    switchyard validate config ../shared/istio-bookinfo/virtual-service-all-v1.yaml\n  \
    switchyard validate -o json config\n\n\
    Files given together are checked together, as if they were one directory: a VirtualService needs the\n\
    ServiceEntries and DestinationRules it names, so pass the spec directory along with a single file.")]
pub struct Args {
    /// Spec files and directories to check together (directories are read recursively for *.yaml, *.yml and
    /// *.json).
    #[arg(value_name = "DIR|FILE", default_value = "config")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub output: Output,
    /// Spec files larger than this many bytes are errors, not read.
    #[arg(long, default_value_t = spec::DEFAULT_MAX_FILE_SIZE, value_name = "BYTES")]
    pub max_file_size: u64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // A missing spec directory, alone (`config/` outside the repository root), gets `apply`'s explanation; a
    // missing file, or one of several paths, is a diagnostic like any other.
    let spec_file = |p: &std::path::Path| {
        p.extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
    };
    if let [path] = args.paths.as_slice() {
        if !path.exists() && !spec_file(path) {
            super::ensure_spec_dir(
                path,
                "the spec directory or files: `switchyard validate DIR|FILE...`",
            )?;
        }
    }
    let options = spec::LoadOptions {
        max_file_size: args.max_file_size,
    };
    let diagnostics = match spec::load_paths_with(&args.paths, &options) {
        Ok(config) => check(&config),
        Err(errors) => load_diagnostics(errors),
    };
    if args.output.structured() {
        args.output.print(&diagnostics)?;
    } else {
        print_lines(&mut std::io::stdout().lock(), &diagnostics)?;
        if diagnostics.is_empty() {
            eprintln!(
                "✔ No validation issues found when analyzing {}.",
                describe(&args.paths)
            );
        }
    }
    Ok(exit_code(&diagnostics))
}

/// Resolves a loaded configuration: every error and warning, or an empty list.
pub(crate) fn check(config: &Config) -> Vec<Diagnostic> {
    match mesh::resolve(config) {
        Ok(resolved) => resolved.warnings,
        Err(diagnostics) => diagnostics,
    }
}

pub(crate) fn has_errors(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().any(Diagnostic::is_error)
}

pub(crate) fn exit_code(diagnostics: &[Diagnostic]) -> ExitCode {
    if has_errors(diagnostics) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

pub(crate) fn print_lines(out: &mut impl Write, diagnostics: &[Diagnostic]) -> std::io::Result<()> {
    for d in diagnostics {
        writeln!(out, "{d}")?;
    }
    Ok(())
}

/// Loads and checks a spec directory as `apply`/`delete` would leave it. Problems inside resources copied from an
/// input file point at that file, since the directory file they would land in is not written.
pub(crate) fn check_dir(dir: &SpecDir) -> Vec<Diagnostic> {
    let mut diagnostics = match dir.load() {
        Ok(config) => check(&config),
        Err(errors) => load_diagnostics(errors),
    };
    for d in &mut diagnostics {
        if let Some((file, line)) = dir.source_of(&d.file, d.line) {
            d.file = file;
            d.line = line;
        }
    }
    diagnostics
}

/// Reports why `apply`/`delete` changed nothing (the errors; warnings are not the reason); the exit status.
pub(crate) fn refuse(diagnostics: &[Diagnostic], reason: &str) -> anyhow::Result<ExitCode> {
    let errors: Vec<Diagnostic> = diagnostics
        .iter()
        .filter(|d| d.is_error())
        .cloned()
        .collect();
    print_lines(&mut std::io::stderr().lock(), &errors)?;
    eprintln!("error: {reason}; nothing was changed");
    Ok(ExitCode::FAILURE)
}

fn describe(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(", ")
}
