//! What `apply -f`/`delete -f` read: a file, every YAML file of a directory (like `kubectl apply -f DIR`), or
//! standard input for `-f -` (how Istio's docs pipe resources in: `kubectl apply -f - <<EOF`).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// One input: the path diagnostics name (`<stdin>` for standard input) and its text.
pub struct Input {
    pub path: PathBuf,
    pub text: String,
}

impl Input {
    /// Where `apply` puts this input's new resources, relative to the spec directory.
    pub fn target_name(&self) -> &Path {
        if self.path == Path::new(STDIN) {
            Path::new("stdin.yaml")
        } else {
            &self.path
        }
    }
}

pub const STDIN: &str = "<stdin>";

/// Reads every `-f` argument, in order; a directory gives its `*.yaml`/`*.yml` files in name order (not its
/// subdirectories, as kubectl without `-R`).
pub fn read_all(args: &[PathBuf]) -> anyhow::Result<Vec<Input>> {
    let mut inputs = Vec::new();
    for arg in args {
        if arg == Path::new("-") {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read standard input")?;
            inputs.push(Input {
                path: PathBuf::from(STDIN),
                text,
            });
        } else if arg.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(arg)
                .with_context(|| format!("cannot read `{}`", arg.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| {
                    path.is_file()
                        && path
                            .extension()
                            .is_some_and(|ext| ext == "yaml" || ext == "yml")
                })
                .collect();
            files.sort();
            anyhow::ensure!(
                !files.is_empty(),
                "`{}` holds no *.yaml or *.yml files; nothing was changed",
                arg.display()
            );
            for path in files {
                inputs.push(read_file(path)?);
            }
        } else {
            inputs.push(read_file(arg.clone())?);
        }
    }
    Ok(inputs)
}

fn read_file(path: PathBuf) -> anyhow::Result<Input> {
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    Ok(Input { path, text })
}
