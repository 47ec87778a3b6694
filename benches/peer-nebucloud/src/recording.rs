//! The `xds-load` recording, read back: what each simulated proxy held at the end of the connect phase.
//!
//! The format is `xds-load`'s (`benches/xds-load/floor.rs`, `write_recording`), all integers u64 little-endian:
//! proxies, then per proxy its node id, its phases, and per phase its responses, each as (requests the proxy had
//! sent before it, encoded `DiscoveryResponse` or `DeltaDiscoveryResponse`). Only phase 0, the connect storm, is
//! kept: nebucloud serves one snapshot per node and never pushes a later one (see the crate's main.rs).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::{bail, Context};
use prost::Message;
use prost_types::Any;
use xds_server::services::ads::{DeltaDiscoveryResponse, DiscoveryResponse};

/// How the recorded responses were encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Sotw,
    Delta,
}

/// Per type URL, resource name -> the resource as the proxy received it.
pub type Held = BTreeMap<String, BTreeMap<String, Any>>;

/// Calls `proxy` with each recorded node id and what that proxy held at the end of the connect phase, one
/// proxy at a time (a 1,000-proxy recording holds gigabytes; only one proxy's worth is decoded at once).
pub fn for_each_proxy(
    path: &Path,
    mode: Mode,
    mut proxy: impl FnMut(String, Held) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut input = BufReader::new(file);
    for _ in 0..read_u64(&mut input)? {
        let id = String::from_utf8(read_bytes(&mut input)?).context("a node id is not UTF-8")?;
        let mut held = Held::new();
        for phase in 0..read_u64(&mut input)? {
            for _ in 0..read_u64(&mut input)? {
                let _requests_before = read_u64(&mut input)?;
                let bytes = read_bytes(&mut input)?;
                if phase == 0 {
                    apply(&mut held, mode, &bytes)
                        .with_context(|| format!("a connect-phase response to {id}"))?;
                }
            }
        }
        proxy(id, held)?;
    }
    Ok(())
}

/// One response, applied as the proxy applied it.
fn apply(held: &mut Held, mode: Mode, bytes: &[u8]) -> anyhow::Result<()> {
    match mode {
        // SotW: a response is the whole state of its type (wildcard CDS/LDS) or of the names asked (EDS/RDS,
        // whose latest request named everything the proxy wanted).
        Mode::Sotw => {
            let response = DiscoveryResponse::decode(bytes).context("decode DiscoveryResponse")?;
            let mut resources = BTreeMap::new();
            for any in response.resources {
                let any = any_of(any);
                resources.insert(resource_name(&response.type_url, &any)?, any);
            }
            held.insert(response.type_url, resources);
        }
        Mode::Delta => {
            let response =
                DeltaDiscoveryResponse::decode(bytes).context("decode DeltaDiscoveryResponse")?;
            let resources = held.entry(response.type_url).or_default();
            for resource in response.resources {
                if let Some(any) = resource.resource {
                    resources.insert(resource.name, any_of(any));
                }
            }
            for name in response.removed_resources {
                resources.remove(&name);
            }
        }
    }
    Ok(())
}

/// nebucloud's generated messages carry their own `Any`; its `Resource` trait encodes to prost-types' one.
fn any_of(any: xds_types::google::protobuf::Any) -> Any {
    Any {
        type_url: any.type_url,
        value: any.value,
    }
}

/// The four types a sidecar is sent all carry their name in field 1 (`Cluster.name`,
/// `ClusterLoadAssignment.cluster_name`, `Listener.name`, `RouteConfiguration.name`); prost skips the rest.
#[derive(Clone, PartialEq, prost::Message)]
struct Named {
    #[prost(string, tag = "1")]
    name: String,
}

const NAMED_IN_FIELD_1: [&str; 4] = [
    "type.googleapis.com/envoy.config.cluster.v3.Cluster",
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
    "type.googleapis.com/envoy.config.listener.v3.Listener",
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
];

fn resource_name(type_url: &str, any: &Any) -> anyhow::Result<String> {
    if !NAMED_IN_FIELD_1.contains(&type_url) {
        bail!("no resource name known for type {type_url}");
    }
    let named = Named::decode(any.value.as_slice())
        .with_context(|| format!("decode the name of a {type_url}"))?;
    Ok(named.name)
}

fn read_u64(input: &mut impl Read) -> anyhow::Result<u64> {
    let mut b = [0u8; 8];
    input.read_exact(&mut b).context("recording truncated")?;
    Ok(u64::from_le_bytes(b))
}

fn read_bytes(input: &mut impl Read) -> anyhow::Result<Vec<u8>> {
    let n = usize::try_from(read_u64(input)?)?;
    let mut v = vec![0u8; n];
    input.read_exact(&mut v).context("recording truncated")?;
    Ok(v)
}
