//! After `apply`/`delete` wrote the spec directory: did the running server take the change, and (with `--wait`,
//! like `istioctl x wait`) did every proxy it affects acknowledge it?
//!
//! Everything is read from the server's admin endpoint. Before the write, [`Before::read`] notes the latest
//! revision and, per connected proxy, the resources it is served (`/debug/snapshot`) and the versions it was
//! sent (`/debug/proxies`). After the write the server has accepted the change when it serves a mesh with the
//! directory's fingerprint, and rejected it when a newer revision fails. A proxy is affected when its served
//! resources of a type changed; it has taken the change when it was sent a new version of each such type and
//! acknowledged it, and rejected it on a NACK of one. Reports go to stderr (stdout keeps kubectl's lines).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::server_admin::{self, AdminArgs, AskError, ConfigView, ServerAdmin};
use crate::control_plane::{fingerprint, read_mesh};
use crate::node_id::short_name;
use crate::xds::status::{latest_per_node, TypeStatus};

#[derive(Debug, Clone, clap::Args)]
pub struct ServedArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Wait until every proxy the change affects has acknowledged it; exit status 1 when one rejects it or
    /// has not acknowledged it within --timeout (like `istioctl x wait`).
    #[arg(long)]
    pub wait: bool,
    /// How long to wait for the server to read the change and, with --wait, for the proxies (`30s`, `2m`, `500ms`).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 30s"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("`{text}`: the unit is ms, s or m")),
    }
}

const POLL: Duration = Duration::from_millis(25);

/// One proxy as the admin endpoint shows it, as far as waiting needs.
#[derive(serde::Deserialize)]
struct ProxyView {
    stream: u64,
    node_id: String,
    #[serde(default)]
    types: BTreeMap<String, TypeStatus>,
}

/// What the server served before the write.
pub struct Before {
    admin: ServerAdmin,
    /// `None`: no server answered.
    config: Option<ConfigView>,
    /// Per node id, the resources it is served, per type.
    served: BTreeMap<String, BTreeMap<String, Value>>,
    /// Per node id, what it was sent, per type.
    sent: BTreeMap<String, BTreeMap<String, TypeStatus>>,
}

impl Before {
    pub fn read(args: &ServedArgs) -> anyhow::Result<Before> {
        let admin = ServerAdmin::new(&args.admin)?;
        let mut before = Before {
            admin,
            config: None,
            served: BTreeMap::new(),
            sent: BTreeMap::new(),
        };
        server_admin::runtime()?.block_on(async {
            match before.admin.config().await {
                Ok(config) => before.config = Some(config),
                Err(AskError::Unreachable(_)) => return Ok(()),
                Err(AskError::Failed(e)) => return Err(e),
            }
            if args.wait {
                for proxy in proxies(&before.admin).await? {
                    let served = served(&before.admin, &proxy.node_id).await?;
                    before.served.insert(proxy.node_id.clone(), served);
                    before.sent.insert(proxy.node_id, proxy.types);
                }
            }
            Ok(())
        })?;
        Ok(before)
    }

    /// Reports what the server (and, with `--wait`, its proxies) made of the directory as it is now.
    pub fn report(self, args: &ServedArgs, dir: &Path) -> anyhow::Result<ExitCode> {
        server_admin::runtime()?.block_on(self.report_async(args, dir))
    }

    async fn report_async(self, args: &ServedArgs, dir: &Path) -> anyhow::Result<ExitCode> {
        let addr = self.admin.addr();
        let failed = if args.wait {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
        let Some(before) = &self.config else {
            eprintln!(
                "No Switchyard answers at {addr}: the change takes effect when `switchyard serve --config {}` runs.",
                dir.display()
            );
            return Ok(failed);
        };
        let ours = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        if let Some(theirs) = &before.spec_dir {
            if *theirs != ours {
                eprintln!(
                    "The running Switchyard at {addr} serves `{}`, not `{}`: it does not see this change.",
                    theirs.display(),
                    ours.display()
                );
                return Ok(failed);
            }
        }
        // Read as the server reads it (by its absolute path: the fingerprint covers where each resource is).
        let expected = match read_mesh(&[ours]) {
            Ok(resolved) => fingerprint(&resolved.mesh),
            Err(_) => anyhow::bail!(
                "`{}` changed while this command ran and is not valid now",
                dir.display()
            ),
        };
        let deadline = Instant::now() + args.timeout;
        let accepted = loop {
            let now = self.admin.config().await?;
            if now.accepted_fingerprint.as_deref() == Some(expected.as_str()) {
                break now;
            }
            if now.revision > before.revision && now.rejected() {
                eprint!(
                    "The running Switchyard at {addr} rejected the change.\n{}",
                    now.rejection()
                );
                return Ok(ExitCode::FAILURE);
            }
            if Instant::now() >= deadline {
                eprintln!(
                    "The running Switchyard at {addr} has not served the change after {:?}; does it watch `{}`? \
                     (`switchyard proxy-status` shows what it serves)",
                    args.timeout,
                    dir.display()
                );
                return Ok(failed);
            }
            tokio::time::sleep(POLL).await;
        };
        eprintln!(
            "Accepted by the running Switchyard at {addr}: revision {} is served.",
            accepted.accepted_revision.unwrap_or(accepted.revision)
        );
        if !args.wait {
            return Ok(ExitCode::SUCCESS);
        }
        self.wait_for_proxies(deadline).await
    }

    async fn wait_for_proxies(&self, deadline: Instant) -> anyhow::Result<ExitCode> {
        // Which proxies, and which of their types, the change affects.
        let mut pending: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut unaffected = 0;
        for proxy in proxies(&self.admin).await? {
            let now = served(&self.admin, &proxy.node_id).await?;
            let was = self.served.get(&proxy.node_id);
            let changed: Vec<String> = now
                .iter()
                .filter(|(t, resources)| was.and_then(|w| w.get(*t)) != Some(*resources))
                .map(|(t, _)| t.clone())
                .collect();
            if changed.is_empty() {
                unaffected += 1;
            } else {
                pending.insert(proxy.node_id, changed);
            }
        }
        let affected = pending.len();
        let mut rejected: BTreeMap<String, Vec<String>> = BTreeMap::new();
        loop {
            let now: BTreeMap<String, ProxyView> = proxies(&self.admin)
                .await?
                .into_iter()
                .map(|p| (p.node_id.clone(), p))
                .collect();
            pending.retain(|id, types| {
                let Some(proxy) = now.get(id) else {
                    // Gone: it gets the new configuration when it reconnects.
                    return false;
                };
                let sent_before = self.sent.get(id);
                types.retain(|t| {
                    let status = proxy.types.get(t).cloned().unwrap_or_default();
                    let old = sent_before
                        .and_then(|s| s.get(t))
                        .and_then(|s| s.sent_version.as_ref());
                    let new_sent =
                        status.sent_version.is_some() && status.sent_version.as_ref() != old;
                    if new_sent && status.rejected {
                        let message = status.last_nack.map(|n| n.message).unwrap_or_default();
                        rejected
                            .entry(id.clone())
                            .or_default()
                            .push(format!("{t}: {}", message.trim()));
                        return false;
                    }
                    !(new_sent && status.acked_version == status.sent_version)
                });
                !types.is_empty()
            });
            if pending.is_empty() || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        for (id, errors) in &rejected {
            eprintln!("{} REJECTED the change:", short_name(id));
            for e in errors {
                eprintln!("    {e}");
            }
        }
        for (id, types) in &pending {
            eprintln!(
                "{} has not acknowledged the change (STALE: {})",
                short_name(id),
                types.join(", ")
            );
        }
        if rejected.is_empty() && pending.is_empty() {
            eprintln!(
                "All {affected} affected prox{} acknowledged the change ({unaffected} not affected).",
                if affected == 1 { "y" } else { "ies" }
            );
            Ok(ExitCode::SUCCESS)
        } else {
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Every connected proxy once, as its newest stream.
async fn proxies(admin: &ServerAdmin) -> anyhow::Result<Vec<ProxyView>> {
    let all: Vec<ProxyView> = admin.get("/debug/proxies").await?;
    Ok(latest_per_node(all, |p| (&p.node_id, p.stream))
        .into_values()
        .collect())
}

/// What a proxy is served, per type, by name and version (a proxy that cannot be served has nothing).
async fn served(admin: &ServerAdmin, node_id: &str) -> anyhow::Result<BTreeMap<String, Value>> {
    // The versions tell every change; the resources themselves would only weigh on the comparison.
    let path = format!(
        "/debug/snapshot?proxy={}&resources=false",
        query_escape(node_id)
    );
    match admin.get(&path).await {
        Ok(served) => Ok(served),
        Err(AskError::Failed(_)) => Ok(BTreeMap::new()),
        Err(e) => Err(e.into()),
    }
}

/// Node ids hold `~`, `.` and `|`-free text; escape what a query string cannot carry as is.
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_istioctl() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3h").is_err());
    }
}
