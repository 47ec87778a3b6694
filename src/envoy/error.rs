use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Everything that can go wrong while finding, installing, configuring or supervising Envoy.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    /// A binary was named explicitly (`--envoy` or `$ENVOY`) but cannot be used; no fallback, since the
    /// user asked for that one.
    #[error("Envoy binary {path} (given by {origin}) {problem}")]
    BadBinary {
        path: PathBuf,
        origin: &'static str,
        problem: String,
    },
    #[error(
        "no Envoy binary found (looked at --envoy, $ENVOY, PATH and {cache}); install it with:\n    {command}"
    )]
    NotFound { cache: PathBuf, command: String },
    #[error(
        "could not install Envoy: {reason}\ninstall it by hand with:\n    {command}\nor pass --envoy PATH or set ENVOY=PATH"
    )]
    InstallFailed { command: String, reason: String },
    #[error("cannot choose a cache directory: set SWITCHYARD_CACHE_DIR, XDG_CACHE_HOME or HOME")]
    NoCacheDir,
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot render the Envoy bootstrap: {0}")]
    Render(#[from] serde_yaml::Error),
    #[error("cannot start Envoy {binary}: {source}")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Envoy (pid {pid}) exited with {status} while {during}; last log lines:\n{log_tail}")]
    Exited {
        pid: u32,
        status: ExitStatus,
        during: String,
        log_tail: String,
    },
    #[error("timed out after {waited:?} waiting for {what}; last seen: {last_seen}{}",
        log_tail.as_deref().map(|t| format!("\nlast log lines:\n{t}")).unwrap_or_default())]
    Timeout {
        what: String,
        waited: Duration,
        last_seen: String,
        log_tail: Option<String>,
    },
    #[error("Envoy admin request {url} failed: {source}")]
    Admin {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("Envoy admin request {url} returned HTTP {status}: {body}")]
    AdminStatus {
        url: String,
        status: u16,
        body: String,
    },
    #[error("Envoy admin response from {url} is not what was expected: {problem}")]
    AdminResponse { url: String, problem: String },
}

impl EnvoyError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        EnvoyError::Io {
            context: context.into(),
            source,
        }
    }
}
