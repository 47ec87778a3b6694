//! One supervised Envoy: started from a binary and a bootstrap, killed (and reaped) when dropped.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::admin::{stat_accepted, AdminClient, Stats};
use super::error::EnvoyError;
use super::poll::Poll;
use super::private_dir::PrivateDir;

const BOOTSTRAP_FILE: &str = "bootstrap.yaml";
const LOG_FILE: &str = "envoy.log";
const ADMIN_ADDRESS_FILE: &str = "admin-address";
/// Lines of log carried by errors: enough for a config rejection or a crash.
const ERROR_LOG_LINES: usize = 40;

/// How an Envoy is run. `Default` is what every Switchyard Envoy uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOptions {
    pub log_level: String,
    /// Worker threads; one is plenty on loopback and keeps many Envoys cheap.
    pub concurrency: u32,
    /// Appended after Switchyard's own arguments.
    pub extra_args: Vec<OsString>,
    /// How long `start` waits for the admin listener.
    pub startup_timeout: Duration,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        ProcessOptions {
            log_level: "info".into(),
            concurrency: 1,
            extra_args: Vec::new(),
            startup_timeout: Duration::from_secs(10),
        }
    }
}

/// A running Envoy with a private directory holding its bootstrap and log.
///
/// Dropping it (also while a test unwinds from a panic) sends SIGKILL and reaps the process, then removes the
/// directory. A process killed outright (SIGKILL of the owner) cannot run destructors; nothing here helps then.
#[derive(Debug)]
pub struct EnvoyProcess {
    child: ChildGuard,
    admin: AdminClient,
}

impl EnvoyProcess {
    /// Starts Envoy with `--concurrency 1 --disable-hot-restart` (hot restart's shared memory makes a second
    /// Envoy on the machine fail) and returns once its admin endpoint listens. The admin address is read
    /// from `--admin-address-path`, so a bootstrap with admin port 0 works.
    pub async fn start(
        binary: &Path,
        bootstrap_yaml: &str,
        options: &ProcessOptions,
    ) -> Result<Self, EnvoyError> {
        let dir = PrivateDir::create(&std::env::temp_dir(), "switchyard-envoy-")
            .map_err(|e| EnvoyError::io("cannot create a directory for Envoy", e))?;
        let bootstrap = dir.path().join(BOOTSTRAP_FILE);
        std::fs::write(&bootstrap, bootstrap_yaml)
            .map_err(|e| EnvoyError::io(format!("cannot write {}", bootstrap.display()), e))?;
        let log_path = dir.path().join(LOG_FILE);
        let log = File::create(&log_path)
            .map_err(|e| EnvoyError::io(format!("cannot create {}", log_path.display()), e))?;
        let log_err = log
            .try_clone()
            .map_err(|e| EnvoyError::io(format!("cannot open {}", log_path.display()), e))?;
        let admin_file = dir.path().join(ADMIN_ADDRESS_FILE);

        let child = Command::new(binary)
            .arg("-c")
            .arg(&bootstrap)
            .arg("--concurrency")
            .arg(options.concurrency.to_string())
            .arg("--disable-hot-restart")
            .arg("--log-level")
            .arg(&options.log_level)
            .arg("--admin-address-path")
            .arg(&admin_file)
            .args(&options.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .map_err(|source| EnvoyError::Spawn {
                binary: binary.to_path_buf(),
                source,
            })?;
        let child = ChildGuard {
            pid: child.id(),
            child: Mutex::new(child),
            dir,
        };
        tracing::debug!(pid = child.pid, dir = %child.dir.path().display(), "started envoy");

        let address = child
            .wait_for_admin_address(&admin_file, Instant::now() + options.startup_timeout)
            .await?;
        let admin = AdminClient::new(address)?;
        Ok(EnvoyProcess { child, admin })
    }

    pub fn pid(&self) -> u32 {
        self.child.pid
    }

    pub fn admin(&self) -> &AdminClient {
        &self.admin
    }

    pub fn admin_address(&self) -> SocketAddr {
        self.admin.address()
    }

    /// The private directory (bootstrap, log); removed on drop.
    pub fn dir(&self) -> &Path {
        self.child.dir.path()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir().join(LOG_FILE)
    }

    /// Everything Envoy wrote to stdout and stderr so far.
    pub fn logs(&self) -> Result<String, EnvoyError> {
        let bytes = std::fs::read(self.log_path())
            .map_err(|e| EnvoyError::io(format!("cannot read {}", self.log_path().display()), e))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The last `lines` lines of the log (best effort: an unreadable log yields a note instead).
    pub fn log_tail(&self, lines: usize) -> String {
        self.child.log_tail(lines)
    }

    /// `Some` once Envoy has exited (it is then reaped).
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.child.exit_status()
    }

    /// Waits until `/ready` answers LIVE, failing early with the log tail if Envoy exits.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), EnvoyError> {
        let poll = Poll::new("Envoy /ready to answer 200 LIVE", Instant::now() + timeout);
        loop {
            self.child.fail_if_exited("waiting for /ready")?;
            let last_seen = match self.admin.request("/ready").await {
                Ok(r) if r.status == 200 => return Ok(()),
                Ok(r) => format!("HTTP {} {}", r.status, r.body.trim()),
                Err(e) => e.to_string(),
            };
            poll.next(last_seen)
                .await
                .map_err(|e| self.child.with_log_tail(e))?;
        }
    }

    /// [`AdminClient::wait_until`], failing early if Envoy exits and carrying the log tail on timeout.
    pub async fn wait_until<T>(
        &self,
        what: &str,
        deadline: Instant,
        mut check: impl FnMut(&Stats) -> Result<T, String>,
    ) -> Result<T, EnvoyError> {
        let poll = Poll::new(what, deadline);
        let during = format!("waiting for {what}");
        loop {
            self.child.fail_if_exited(&during)?;
            let last_seen = match self.admin.stats().await {
                Ok(stats) => match check(&stats) {
                    Ok(done) => return Ok(done),
                    Err(seen) => seen,
                },
                Err(e) => format!("no stats: {e}"),
            };
            poll.next(last_seen)
                .await
                .map_err(|e| self.child.with_log_tail(e))?;
        }
    }

    /// Polls one stat until `accept` is true of it.
    pub async fn wait_for_stat(
        &self,
        name: &str,
        deadline: Instant,
        accept: impl Fn(u64) -> bool,
    ) -> Result<u64, EnvoyError> {
        let what = format!("stat {name} to reach the expected value");
        self.wait_until(&what, deadline, stat_accepted(name, accept))
            .await
    }

    pub async fn stats(&self) -> Result<Stats, EnvoyError> {
        self.admin.stats().await
    }

    pub async fn stat(&self, name: &str) -> Result<Option<u64>, EnvoyError> {
        self.admin.stat(name).await
    }

    pub async fn config_dump(&self, include_eds: bool) -> Result<Value, EnvoyError> {
        self.admin.config_dump(include_eds).await
    }

    pub async fn get(&self, path: &str) -> Result<String, EnvoyError> {
        self.admin.get(path).await
    }
}

/// Owns the child and its directory; the kill lives here so a failed `start` cleans up too.
#[derive(Debug)]
struct ChildGuard {
    pid: u32,
    // `try_wait` needs `&mut`; the lock is held only for that non-blocking call.
    child: Mutex<Child>,
    dir: PrivateDir,
}

impl ChildGuard {
    fn lock(&self) -> MutexGuard<'_, Child> {
        // A panic elsewhere while holding the lock leaves the Child itself intact.
        self.child
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn exit_status(&self) -> Option<ExitStatus> {
        self.lock().try_wait().ok().flatten()
    }

    fn fail_if_exited(&self, during: &str) -> Result<(), EnvoyError> {
        match self.exit_status() {
            Some(status) => Err(EnvoyError::Exited {
                pid: self.pid,
                status,
                during: during.to_string(),
                log_tail: self.log_tail(ERROR_LOG_LINES),
            }),
            None => Ok(()),
        }
    }

    fn with_log_tail(&self, err: EnvoyError) -> EnvoyError {
        match err {
            EnvoyError::Timeout {
                what,
                waited,
                last_seen,
                log_tail: None,
            } => EnvoyError::Timeout {
                what,
                waited,
                last_seen,
                log_tail: Some(self.log_tail(ERROR_LOG_LINES)),
            },
            other => other,
        }
    }

    async fn wait_for_admin_address(
        &self,
        file: &Path,
        deadline: Instant,
    ) -> Result<SocketAddr, EnvoyError> {
        let poll = Poll::new("Envoy to write its admin address", deadline);
        loop {
            self.fail_if_exited("starting")?;
            // Envoy writes the file once its admin listener is bound, in a single short write: an empty
            // file (created, not yet written) is the only intermediate state worth retrying on.
            let last_seen = match std::fs::read_to_string(file) {
                Ok(text) => match text.trim().parse::<SocketAddr>() {
                    Ok(address) => return Ok(address),
                    Err(_) => format!("{} holds {text:?}", file.display()),
                },
                Err(e) => format!("{}: {e}", file.display()),
            };
            poll.next(last_seen)
                .await
                .map_err(|e| self.with_log_tail(e))?;
        }
    }

    fn log_tail(&self, lines: usize) -> String {
        let path = self.dir.path().join(LOG_FILE);
        match read_tail(&path, lines) {
            Ok(tail) => tail,
            Err(e) => format!("(cannot read {}: {e})", path.display()),
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let child = self
            .child
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // SIGKILL: nothing Envoy does at shutdown matters to a test or demo, and it cannot be ignored.
        if let Err(e) = child.kill() {
            tracing::debug!(pid = self.pid, error = %e, "envoy already gone");
        }
        // Reaping here, synchronously, is what guarantees no zombie and no survivor once drop returns.
        match child.wait() {
            Ok(status) => tracing::debug!(pid = self.pid, %status, "envoy stopped"),
            Err(e) => tracing::warn!(pid = self.pid, error = %e, "cannot reap envoy"),
        }
    }
}

/// The last `lines` lines of a file, reading at most its last 64 KiB (debug logs grow large).
fn read_tail(path: &Path, lines: usize) -> std::io::Result<String> {
    const WINDOW: u64 = 64 * 1024;
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(WINDOW)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    Ok(all[all.len().saturating_sub(lines)..].join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let text: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).unwrap();
        assert_eq!(read_tail(&path, 3).unwrap(), "line 98\nline 99\nline 100");
        assert_eq!(read_tail(&path, 1000).unwrap().lines().count(), 100);
    }
}
