//! `switchyard proxy-status`: every connected proxy and whether it runs what it was sent, like
//! `istioctl proxy-status`. Reads a running server's admin endpoint.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context;

use super::output::Output;
use super::server_admin::{self, AdminArgs, ConfigView, ServerAdmin};
use crate::node_id::{names_proxy, short_name};
use crate::xds::status::{latest_per_node, TypeStatus};
use crate::xds::ResourceType;

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  \
    switchyard proxy-status\n  \
    switchyard proxy-status reviews-v2        # one proxy: workload name, name.namespace or node id")]
pub struct Args {
    /// Only this proxy: its workload name (`reviews-v2`), `name.namespace` or its whole node id.
    pub proxy: Option<String>,
    #[command(flatten)]
    pub admin: AdminArgs,
    #[command(flatten)]
    pub output: Output,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let admin = ServerAdmin::new(&args.admin)?;
    let (config, mut proxies) = server_admin::runtime()?.block_on(async {
        let hint = |e| {
            anyhow::Error::new(e).context(format!(
                "cannot read Switchyard's admin endpoint at {}; is `switchyard serve` running?",
                admin.addr()
            ))
        };
        let config: serde_json::Value = admin.get("/debug/config").await.map_err(hint)?;
        let proxies: Vec<serde_json::Value> = admin.get("/debug/proxies").await.map_err(hint)?;
        anyhow::Ok((config, proxies))
    })?;
    if let Some(query) = &args.proxy {
        proxies.retain(|p| {
            p["node_id"]
                .as_str()
                .is_some_and(|id| names_proxy(id, query))
        });
        anyhow::ensure!(
            !proxies.is_empty(),
            "no connected proxy is named `{query}` (see `switchyard proxy-status` for the list)"
        );
    }
    if args.output.structured() {
        args.output
            .print(&serde_json::json!({ "config": config, "proxies": proxies }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let config: ConfigView =
        serde_json::from_value(config).context("unexpected answer from the admin endpoint")?;
    if config.rejected() {
        println!("{}", config.rejection());
    }
    print!("{}", render(&proxies)?);
    Ok(ExitCode::SUCCESS)
}

/// One line per proxy: its name (`reviews-v2.default`, as istioctl names pods) and, per type, SYNCED / NOT SENT / STALE (sent, not yet acknowledged) /
/// REJECTED (NACK), with the error of the last rejection underneath. A proxy that reconnected while its old
/// stream lingers is shown once, as its newest stream. Fails on an entry it cannot read, rather than
/// leaving a proxy out of the table.
pub fn render(proxies: &[serde_json::Value]) -> anyhow::Result<String> {
    let mut views = Vec::new();
    for (i, value) in proxies.iter().enumerate() {
        let view: ProxyView = serde_json::from_value(value.clone()).with_context(|| {
            format!(
                "unexpected answer from the admin endpoint: proxy entry {i} ({}) cannot be read",
                value.get("node_id").unwrap_or(&serde_json::Value::Null)
            )
        })?;
        views.push(view);
    }
    let latest = latest_per_node(views, |v| (&v.node_id, v.stream));
    let names: BTreeMap<&str, String> = latest
        .keys()
        .map(|id| (id.as_str(), short_name(id)))
        .collect();
    let width = names.values().map(String::len).max().unwrap_or(0).max(4);
    let mut out = format!(
        "{:<width$} {:<6} {:<9} {:<9} {:<9} {:<9}\n",
        "NAME", "MODE", "CDS", "EDS", "LDS", "RDS"
    );
    for p in latest.values() {
        let state = |t: ResourceType| p.types.get(&t).map(TypeStatus::state).unwrap_or("NOT SENT");
        out.push_str(&format!(
            "{:<width$} {:<6} {:<9} {:<9} {:<9} {:<9}\n",
            names[p.node_id.as_str()],
            p.mode.to_lowercase(),
            state(ResourceType::Cluster),
            state(ResourceType::Endpoint),
            state(ResourceType::Listener),
            state(ResourceType::Route),
        ));
        if let Some(e) = &p.identity_error {
            out.push_str(&format!("    not served: {}\n", one_line(e)));
        }
        for (t, s) in &p.types {
            if let (true, Some(nack)) = (s.rejected, &s.last_nack) {
                out.push_str(&format!(
                    "    {t} rejected: {}\n",
                    one_line(nack.message.trim())
                ));
            }
        }
    }
    Ok(out)
}

/// The admin endpoint's JSON for one proxy, as far as this view needs it.
#[derive(serde::Deserialize)]
struct ProxyView {
    /// Increases with every stream the server accepts: the larger, the newer.
    stream: u64,
    node_id: String,
    mode: String,
    identity_error: Option<String>,
    types: BTreeMap<ResourceType, TypeStatus>,
}

/// A proxy's text (Envoy's rejection message, a reason naming its node) on one line of the table: control
/// characters are shown escaped, so a message cannot add lines that look like other proxies.
fn one_line(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(stream: u64, node_id: &str, cds: serde_json::Value) -> serde_json::Value {
        json!({
            "stream": stream,
            "node_id": node_id,
            "cluster": "c",
            "metadata": null,
            "mode": "Sotw",
            "connected_at": "Thu, 01 Jan 1970 00:00:00 GMT",
            "identity_error": null,
            "types": {"Cluster": cds},
        })
    }

    fn type_status(sent: Option<&str>, acked: Option<&str>) -> serde_json::Value {
        json!({
            "sent_version": sent,
            "sent_nonce": sent.map(|_| "1"),
            "acked_version": acked,
            "last_nack": null,
            "rejected": false,
        })
    }

    #[test]
    fn one_line_per_node_id_from_its_newest_stream() {
        let proxies = [
            // The old stream of `a` (synced) lingers while its reconnect (not yet acknowledged) runs.
            entry(1, "sidecar~a", type_status(Some("v1"), Some("v1"))),
            entry(2, "router~b", type_status(Some("v1"), Some("v1"))),
            entry(3, "sidecar~a", type_status(Some("v2"), None)),
        ];
        let out = render(&proxies).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].starts_with("NAME"), "{out}");
        assert!(
            lines[1].starts_with("router~b ") && lines[1].contains("SYNCED"),
            "{out}"
        );
        assert!(
            lines[2].starts_with("sidecar~a ") && lines[2].contains("STALE"),
            "{out}"
        );
        assert!(!lines[2].contains("SYNCED"), "{out}");
    }

    #[test]
    fn an_entry_that_does_not_read_is_an_error_not_a_missing_line() {
        let mut broken = entry(1, "sidecar~a", type_status(None, None));
        broken["types"] = json!({"NOPE": {}});
        let error = render(&[broken]).unwrap_err();
        assert!(format!("{error:#}").contains("sidecar~a"), "{error:#}");
    }
}
