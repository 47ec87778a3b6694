//! `switchyard proxy-config`: what one Envoy actually runs, read from its own admin endpoint, in the tables
//! `istioctl proxy-config` prints. Names follow Istio's, so the columns mean the same thing.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use anyhow::{bail, Context};
use serde_json::Value;

use super::output::Output;
use crate::envoy::AdminClient;
use crate::mesh::names::{ClusterName, Direction};
use crate::node_id::parse_node_id;
use crate::topology::{self, ADMIN_PORT};

/// istioctl's names for each: plural, singular, and its short form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    #[value(alias = "cluster", alias = "c")]
    Clusters,
    #[value(alias = "listener", alias = "l")]
    Listeners,
    #[value(alias = "route", alias = "r")]
    Routes,
    #[value(alias = "endpoint", alias = "ep")]
    Endpoints,
}

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  \
    switchyard proxy-config routes productpage-v1\n  \
    switchyard proxy-config cluster reviews-v2 -o json\n  \
    switchyard proxy-config listeners 127.0.4.1:15000")]
pub struct Args {
    /// What to show.
    #[arg(value_enum)]
    pub kind: Kind,
    /// The proxy: a workload name (its sidecar, found through the spec directory; `reviews-v2`,
    /// `reviews-v2.default` or its node id), `istio-ingressgateway`, or an Envoy admin address (`127.0.4.1:15000`).
    pub proxy: String,
    /// The spec directory that defines the workloads.
    #[arg(long, default_value = "config")]
    pub config: PathBuf,
    /// `-o json|yaml`: Envoy's own configuration for that part of the config dump instead of a table.
    #[command(flatten)]
    pub output: Output,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let admin = admin_address(&args)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let dump = runtime.block_on(async {
        AdminClient::new(admin)?
            .config_dump(args.kind == Kind::Endpoints)
            .await
            .with_context(|| format!("cannot read the config dump of the Envoy at {admin}"))
    })?;
    let section = section(&dump, args.kind);
    if args.output.structured() {
        args.output.print(&section)?;
    } else {
        print!("{}", table(args.kind, &section));
    }
    Ok(ExitCode::SUCCESS)
}

fn admin_address(args: &Args) -> anyhow::Result<SocketAddr> {
    if let Ok(addr) = SocketAddr::from_str(&args.proxy) {
        return Ok(addr);
    }
    if args.proxy == "istio-ingressgateway" {
        return Ok(SocketAddr::new(IpAddr::from([127, 0, 0, 1]), ADMIN_PORT));
    }
    let mesh = super::bootstrap::load_mesh(&args.config)?;
    let (name, namespace) = match parse_node_id(&args.proxy) {
        Ok(node) => (node.name, node.namespace),
        Err(_) => args
            .proxy
            .rsplit_once('.')
            .unwrap_or((&args.proxy, "default")),
    };
    if name == "istio-ingressgateway" {
        return Ok(SocketAddr::new(IpAddr::from([127, 0, 0, 1]), ADMIN_PORT));
    }
    match topology::sidecar(&mesh, namespace, name, None, None) {
        Ok((_, addresses)) => Ok(addresses.admin()),
        Err(e) => bail!("{e}; give a workload name, `istio-ingressgateway` or an admin address"),
    }
}

/// The part of `/config_dump` for `kind`: the dynamic resources Switchyard sent, each as Envoy reports it.
pub fn section(dump: &Value, kind: Kind) -> Value {
    let (list, item) = match kind {
        Kind::Clusters => ("dynamic_active_clusters", "cluster"),
        Kind::Listeners => ("dynamic_listeners", "active_state"),
        Kind::Routes => ("dynamic_route_configs", "route_config"),
        Kind::Endpoints => ("dynamic_endpoint_configs", "endpoint_config"),
    };
    let items = dump["configs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|config| config[list].as_array().into_iter().flatten())
        .map(|entry| {
            let inner = &entry[item];
            // A listener's active state wraps the listener itself.
            if kind == Kind::Listeners {
                inner["listener"].clone()
            } else {
                inner.clone()
            }
        })
        .collect();
    Value::Array(items)
}

/// The table for `kind`, one row per resource (per virtual host, per endpoint), columns aligned.
pub fn table(kind: Kind, section: &Value) -> String {
    let items = section.as_array().map(Vec::as_slice).unwrap_or_default();
    let (header, rows): (&[&str], Vec<Vec<String>>) = match kind {
        Kind::Clusters => (
            &["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE"],
            sorted_clusters(items)
                .into_iter()
                .map(cluster_row)
                .collect(),
        ),
        Kind::Listeners => (
            &["NAME", "ADDRESS", "PORT", "DESTINATION"],
            items.iter().map(listener_row).collect(),
        ),
        Kind::Routes => (
            &[
                "NAME",
                "VHOST NAME",
                "DOMAINS",
                "MATCH",
                "DESTINATION",
                "VIRTUAL SERVICE",
            ],
            items.iter().flat_map(route_rows).collect(),
        ),
        Kind::Endpoints => (
            &["ENDPOINT", "STATUS", "CLUSTER"],
            items.iter().flat_map(endpoint_rows).collect(),
        ),
    };
    align(header, rows)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// istioctl's order: by service FQDN, then subset, then port (as a number), then direction; a name that is not
/// Istio's (`xds_cluster`) sorts as if it were the FQDN.
fn sorted_clusters(items: &[Value]) -> Vec<&Value> {
    let key = |c: &Value| {
        let name = text(&c["name"]);
        match ClusterName::from_str(&name) {
            Ok(parsed) => (
                parsed.host,
                parsed.subset.unwrap_or_default(),
                parsed.port,
                direction_name(parsed.direction),
            ),
            Err(_) => (name, String::new(), 0, ""),
        }
    };
    let mut sorted: Vec<&Value> = items.iter().collect();
    sorted.sort_by_cached_key(|c| key(c));
    sorted
}

fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
    }
}

fn cluster_row(c: &Value) -> Vec<String> {
    let name = text(&c["name"]);
    let kind = text(&c["type"]);
    match ClusterName::from_str(&name) {
        Ok(ClusterName {
            direction,
            port,
            subset,
            host,
        }) => vec![
            host,
            port.to_string(),
            subset.unwrap_or_else(|| "-".to_string()),
            direction_name(direction).to_string(),
            kind,
        ],
        Err(_) => vec![name, "-".into(), "-".into(), "-".into(), kind],
    }
}

fn listener_row(l: &Value) -> Vec<String> {
    let address = &l["address"]["socket_address"];
    let rds = l["filter_chains"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|chain| chain["filters"].as_array().into_iter().flatten())
        .find_map(|f| f["typed_config"]["rds"]["route_config_name"].as_str())
        .map(|name| format!("Route: {name}"))
        .unwrap_or_else(|| "-".to_string());
    vec![
        text(&l["name"]),
        text(&address["address"]),
        text(&address["port_value"]),
        rds,
    ]
}

fn route_rows(r: &Value) -> Vec<Vec<String>> {
    let name = text(&r["name"]);
    let mut rows = Vec::new();
    for vhost in r["virtual_hosts"].as_array().into_iter().flatten() {
        let domains: Vec<&str> = vhost["domains"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let domains = match domains.as_slice() {
            [] => "-".to_string(),
            [one] => one.to_string(),
            [first, rest @ ..] => format!("{first} + {} more", rest.len()),
        };
        for route in vhost["routes"].as_array().into_iter().flatten() {
            let m = &route["match"];
            // Istio's notation: `/api*` for a prefix, the path itself when exact, `~regex` for a regex.
            let matched = None
                .or_else(|| m["prefix"].as_str().map(|p| format!("{p}*")))
                .or_else(|| m["path"].as_str().map(str::to_string))
                .or_else(|| {
                    m["path_separated_prefix"]
                        .as_str()
                        .map(|p| format!("{p}/*"))
                })
                .or_else(|| m["safe_regex"]["regex"].as_str().map(|r| format!("~{r}")))
                .unwrap_or_else(|| "-".to_string());
            let headers = m["headers"].as_array().map(Vec::len).unwrap_or(0);
            let matched = if headers > 0 {
                format!(
                    "{matched} (+{headers} header{})",
                    if headers > 1 { "s" } else { "" }
                )
            } else {
                matched
            };
            let vs = route["metadata"]["filter_metadata"]["istio"]["config"]
                .as_str()
                .and_then(|path| {
                    path.rsplit_once("/virtual-service/").map(|(ns, name)| {
                        let namespace = ns.rsplit('/').next().unwrap_or_default();
                        format!("{name}.{namespace}")
                    })
                })
                .unwrap_or_else(|| "-".to_string());
            rows.push(vec![
                name.clone(),
                text(&vhost["name"]),
                domains.clone(),
                matched,
                destination(route),
                vs,
            ]);
        }
    }
    rows
}

/// Where a route sends requests: `reviews.default|v1`, `reviews.default|v1 50%, reviews.default|v3 50%` for a
/// split, `inbound|9080||` as is, or what it does instead (`redirect`, `direct response 404`).
fn destination(route: &Value) -> String {
    let cluster = |name: &str| match ClusterName::from_str(name) {
        Ok(c) if c.direction == Direction::Outbound => {
            let host = c.host.strip_suffix(".svc.cluster.local").unwrap_or(&c.host);
            match c.subset {
                Some(subset) => format!("{host}|{subset}"),
                None => host.to_string(),
            }
        }
        _ => name.to_string(),
    };
    let action = &route["route"];
    if let Some(name) = action["cluster"].as_str() {
        return cluster(name);
    }
    if let Some(weighted) = action["weighted_clusters"]["clusters"].as_array() {
        let total: f64 = weighted.iter().filter_map(|w| w["weight"].as_f64()).sum();
        return weighted
            .iter()
            .map(|w| {
                let weight = w["weight"].as_f64().unwrap_or(0.0);
                let share = if total > 0.0 {
                    weight * 100.0 / total
                } else {
                    0.0
                };
                format!("{} {}%", cluster(&text(&w["name"])), share.round())
            })
            .collect::<Vec<_>>()
            .join(", ");
    }
    if route["redirect"].is_object() {
        return "redirect".to_string();
    }
    if let Some(status) = route["direct_response"]["status"].as_u64() {
        return format!("direct response {status}");
    }
    "-".to_string()
}

fn endpoint_rows(e: &Value) -> Vec<Vec<String>> {
    let cluster = text(&e["cluster_name"]);
    e["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|locality| locality["lb_endpoints"].as_array().into_iter().flatten())
        .map(|lb| {
            let socket = &lb["endpoint"]["address"]["socket_address"];
            let status = lb["health_status"]
                .as_str()
                .unwrap_or("HEALTHY")
                .to_string();
            vec![
                format!(
                    "{}:{}",
                    text(&socket["address"]),
                    text(&socket["port_value"])
                ),
                status,
                cluster.clone(),
            ]
        })
        .collect()
}

fn align(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dump() -> Value {
        json!({"configs": [
            {"dynamic_active_clusters": [{"cluster": {"name": "outbound|9080|v2|reviews.default.svc.cluster.local", "type": "EDS"}},
                                         {"cluster": {"name": "inbound|9080||", "type": "STATIC"}}]},
            {"dynamic_listeners": [{"active_state": {"listener": {"name": "0.0.0.0_9080",
                "address": {"socket_address": {"address": "127.0.4.3", "port_value": 9080}},
                "filter_chains": [{"filters": [{"typed_config": {"rds": {"route_config_name": "9080"}}}]}]}}}]},
            {"dynamic_route_configs": [{"route_config": {"name": "9080", "virtual_hosts": [{
                "name": "reviews.default.svc.cluster.local:9080",
                "domains": ["reviews.default.svc.cluster.local", "reviews"],
                "routes": [
                  {"match": {"prefix": "/", "headers": [{"name": "end-user"}]},
                   "route": {"cluster": "outbound|9080|v2|reviews.default.svc.cluster.local"},
                   "metadata": {"filter_metadata": {"istio": {"config": "/apis/networking.istio.io/v1/namespaces/default/virtual-service/reviews"}}}},
                  {"match": {"prefix": "/"},
                   "route": {"weighted_clusters": {"clusters": [
                      {"name": "outbound|9080|v1|reviews.default.svc.cluster.local", "weight": 50},
                      {"name": "outbound|9080|v3|reviews.default.svc.cluster.local", "weight": 50}]}}}]}]}}]},
            {"dynamic_endpoint_configs": [{"endpoint_config": {"cluster_name": "outbound|9080|v2|reviews.default.svc.cluster.local",
                "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.4.1", "port_value": 9080}}}}]}]}}]}
        ]})
    }

    fn render(kind: Kind) -> String {
        table(kind, &section(&dump(), kind))
    }

    #[test]
    fn clusters_split_istio_names() {
        let out = render(Kind::Clusters);
        assert!(out.starts_with("SERVICE FQDN"));
        assert!(
            out.contains("reviews.default.svc.cluster.local  9080  v2      outbound   EDS"),
            "{out}"
        );
        assert!(out.contains("inbound"), "{out}");
    }

    /// istioctl's order (FQDN, subset, port, direction), not the config dump's or the names' order.
    #[test]
    fn clusters_sort_as_istioctl_sorts_them() {
        let clusters = json!([
            {"name": "outbound|9080|v2|reviews.default.svc.cluster.local"},
            {"name": "outbound|9080||reviews.default.svc.cluster.local"},
            {"name": "outbound|15010||ratings.default.svc.cluster.local"},
            {"name": "outbound|9080||ratings.default.svc.cluster.local"},
            {"name": "inbound|9080||"},
            {"name": "outbound|9080|v1|reviews.default.svc.cluster.local"},
            {"name": "xds_cluster"},
        ]);
        let out = table(Kind::Clusters, &clusters);
        let order: Vec<String> = out
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(
            order,
            [
                "9080 - inbound",
                "ratings.default.svc.cluster.local 9080 -",
                "ratings.default.svc.cluster.local 15010 -",
                "reviews.default.svc.cluster.local 9080 -",
                "reviews.default.svc.cluster.local 9080 v1",
                "reviews.default.svc.cluster.local 9080 v2",
                "xds_cluster - -",
            ],
            "{out}"
        );
    }

    #[test]
    fn listeners_name_their_route_configuration() {
        let out = render(Kind::Listeners);
        assert!(
            out.contains("0.0.0.0_9080  127.0.4.3  9080  Route: 9080"),
            "{out}"
        );
    }

    #[test]
    fn routes_show_match_and_virtual_service() {
        let out = render(Kind::Routes);
        assert!(
            out.lines().any(|l| l.starts_with("9080  reviews.default.svc.cluster.local:9080  reviews.default.svc.cluster.local + 1 more  /* (+1 header)  reviews.default|v2 ")
                && l.ends_with(" reviews.default")),
            "{out}"
        );
        assert!(
            out.lines().any(|l| l
                .ends_with(" /*              reviews.default|v1 50%, reviews.default|v3 50%  -")),
            "{out}"
        );
        assert_eq!(out.lines().count(), 3, "{out}");
    }

    #[test]
    fn endpoints_list_addresses_and_clusters() {
        let out = render(Kind::Endpoints);
        assert!(
            out.contains(
                "127.0.4.1:9080  HEALTHY  outbound|9080|v2|reviews.default.svc.cluster.local"
            ),
            "{out}"
        );
    }
}
