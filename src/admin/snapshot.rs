//! `/debug/snapshot?proxy=NAME`: what one connected proxy is being served, per type and resource, the resource
//! as Envoy's config dump shows it ([`super::render`]):
//!
//! ```json
//! { "Route": { "9080": { "version": "4f0c…", "resource": { "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration", "name": "9080", … } } }, … }
//! ```
//!
//! `&resources=false` leaves the resources out, `{"Route": {"9080": "4f0c…"}}`: what `apply --wait` compares
//! before and after a change.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::render::Rendered;
use super::{pretty, AdminState};
use crate::node_id::names_proxy;
use crate::xds::{ProxyStatus, ResourceType, Snapshot};

#[derive(Deserialize)]
pub struct SnapshotQuery {
    /// Node id, `name.namespace` or `name`.
    proxy: String,
    #[serde(default = "resources_by_default")]
    resources: bool,
}

fn resources_by_default() -> bool {
    true
}

/// One resource a proxy is served.
#[derive(Serialize)]
struct Served {
    version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<Rendered>,
    /// Why the resource cannot be shown (it is served all the same).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub async fn snapshot(State(state): State<AdminState>, Query(q): Query<SnapshotQuery>) -> Response {
    // While a reconnect overlaps the old stream, the newest one is the proxy as it is now.
    let named: Vec<ProxyStatus> = state
        .registry
        .latest_per_node()
        .into_values()
        .filter(|p| names_proxy(&p.node_id, &q.proxy))
        .collect();
    let proxy = match <[ProxyStatus; 1]>::try_from(named) {
        Ok([proxy]) => proxy,
        Err(named) if named.is_empty() => {
            return (
                StatusCode::NOT_FOUND,
                format!("no connected proxy is named {:?}\n", q.proxy),
            )
                .into_response()
        }
        Err(named) => {
            let ids: Vec<&str> = named.iter().map(|p| p.node_id.as_str()).collect();
            return (
                StatusCode::CONFLICT,
                format!(
                    "{:?} names {} proxies: {}\n",
                    q.proxy,
                    ids.len(),
                    ids.join(", ")
                ),
            )
                .into_response();
        }
    };
    let node = proxy.node();
    match state.cache.current().snapshot_for(&node) {
        Ok(snapshot) if q.resources => pretty(&resources(&snapshot)),
        Ok(snapshot) => pretty(&snapshot.listing()),
        Err(e) => (StatusCode::CONFLICT, format!("{e}\n")).into_response(),
    }
}

fn resources(snapshot: &Snapshot) -> BTreeMap<ResourceType, BTreeMap<String, Served>> {
    ResourceType::ALL
        .into_iter()
        .map(|t| {
            let served = snapshot
                .all(t)
                .into_iter()
                .map(|r| {
                    let (resource, error) = match Rendered::new(&r.any) {
                        Ok(rendered) => (Some(rendered), None),
                        Err(e) => (None, Some(e.to_string())),
                    };
                    let served = Served {
                        version: r.version.clone(),
                        resource,
                        error,
                    };
                    (r.name.clone(), served)
                })
                .collect();
            (t, served)
        })
        .collect()
}
