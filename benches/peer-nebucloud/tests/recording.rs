//! The recording read back as each proxy held it after the connect phase, and set as one snapshot per node.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use peer_nebucloud::recording::{self, Held, Mode};
use peer_nebucloud::snapshots::Snapshots;
use prost::Message;
use xds_cache::Cache;
use xds_core::{NodeHash, TypeUrl};
use xds_types::envoy::service::discovery::v3::{
    DeltaDiscoveryResponse, DiscoveryResponse, Resource,
};
use xds_types::google::protobuf::Any;

/// A resource with only its name (field 1) and a payload.
#[derive(Clone, PartialEq, prost::Message)]
struct Named {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    payload: String,
}

fn any(type_url: &str, name: &str, payload: &str) -> Any {
    Any {
        type_url: type_url.to_string(),
        value: Named {
            name: name.to_string(),
            payload: payload.to_string(),
        }
        .encode_to_vec(),
    }
}

fn sotw(type_url: &str, resources: &[(&str, &str)]) -> Vec<u8> {
    DiscoveryResponse {
        type_url: type_url.to_string(),
        version_info: "v".into(),
        resources: resources.iter().map(|(n, p)| any(type_url, n, p)).collect(),
        ..DiscoveryResponse::default()
    }
    .encode_to_vec()
}

/// `xds-load`'s format (`benches/xds-load/floor.rs`, `write_recording`).
fn write(path: &Path, proxies: &[(&str, Vec<Vec<Vec<u8>>>)]) {
    let mut out = Vec::new();
    let len = |n: usize| (n as u64).to_le_bytes();
    out.extend(len(proxies.len()));
    for (id, phases) in proxies {
        out.extend(len(id.len()));
        out.extend(id.as_bytes());
        out.extend(len(phases.len()));
        for phase in phases {
            out.extend(len(phase.len()));
            for (requests, bytes) in phase.iter().enumerate() {
                out.extend((requests as u64).to_le_bytes());
                out.extend(len(bytes.len()));
                out.extend(bytes);
            }
        }
    }
    std::fs::File::create(path)
        .and_then(|mut f| f.write_all(&out))
        .expect("recording written");
}

fn read(path: &Path, mode: Mode) -> Vec<(String, Held)> {
    let mut proxies = Vec::new();
    recording::for_each_proxy(path, mode, |id, held| {
        proxies.push((id, held));
        Ok(())
    })
    .expect("recording read");
    proxies
}

fn names(held: &Held, type_url: &str) -> Vec<String> {
    held.get(type_url)
        .map(|r| r.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn sotw_keeps_the_last_response_of_each_type_from_the_connect_phase_only() {
    let dir = std::env::temp_dir().join(format!("peer-recording-sotw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("recording.bin");
    let connect = vec![
        sotw(TypeUrl::CLUSTER, &[("a", "1"), ("b", "1")]),
        sotw(TypeUrl::ENDPOINT, &[("a", "1")]),
        sotw(TypeUrl::CLUSTER, &[("b", "2")]),
    ];
    let change = vec![sotw(TypeUrl::CLUSTER, &[("c", "1")])];
    write(
        &path,
        &[
            ("one", vec![connect.clone(), change]),
            ("two", vec![connect]),
        ],
    );
    let proxies = read(&path, Mode::Sotw);
    std::fs::remove_dir_all(&dir).expect("temp dir removed");

    assert_eq!(proxies.len(), 2);
    let (id, held) = &proxies[0];
    assert_eq!(id, "one");
    assert_eq!(names(held, TypeUrl::CLUSTER), ["b"]);
    assert_eq!(names(held, TypeUrl::ENDPOINT), ["a"]);
    assert_eq!(
        held[TypeUrl::CLUSTER]["b"],
        any(TypeUrl::CLUSTER, "b", "2").into_prost()
    );

    // One snapshot per node id, the equal resources of both one allocation.
    let mut snapshots = Snapshots::new();
    for (id, held) in proxies {
        snapshots.add(id, held).expect("added");
    }
    assert_eq!(
        snapshots.distinct().0,
        2,
        "cluster b and endpoints a, once for both nodes"
    );
    let cache = snapshots.into_cache();
    let b = |node: &str| {
        let snapshot = cache
            .get_snapshot(NodeHash::from_id(node))
            .expect("a snapshot");
        let clusters = snapshot
            .get_resources(TypeUrl::CLUSTER.into())
            .expect("clusters")
            .clone();
        clusters.get("b").expect("cluster b").clone()
    };
    assert!(Arc::ptr_eq(&b("one"), &b("two")));
    assert!(cache.get_snapshot(NodeHash::from_id("three")).is_none());
}

#[test]
fn delta_applies_updates_and_removals_in_order() {
    let dir = std::env::temp_dir().join(format!("peer-recording-delta-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("recording.bin");
    let delta = |resources: &[(&str, &str)], removed: &[&str]| {
        DeltaDiscoveryResponse {
            type_url: TypeUrl::CLUSTER.to_string(),
            resources: resources
                .iter()
                .map(|(n, p)| Resource {
                    name: n.to_string(),
                    resource: Some(any(TypeUrl::CLUSTER, n, p)),
                    ..Resource::default()
                })
                .collect(),
            removed_resources: removed.iter().map(|n| n.to_string()).collect(),
            ..DeltaDiscoveryResponse::default()
        }
        .encode_to_vec()
    };
    let connect = vec![
        delta(&[("a", "1"), ("b", "1")], &[]),
        delta(&[("b", "2")], &["a"]),
    ];
    write(&path, &[("one", vec![connect])]);
    let proxies = read(&path, Mode::Delta);
    std::fs::remove_dir_all(&dir).expect("temp dir removed");

    let (_, held) = &proxies[0];
    assert_eq!(names(held, TypeUrl::CLUSTER), ["b"]);
    assert_eq!(
        held[TypeUrl::CLUSTER]["b"],
        any(TypeUrl::CLUSTER, "b", "2").into_prost()
    );
}

trait IntoProst {
    fn into_prost(self) -> prost_types::Any;
}

impl IntoProst for Any {
    fn into_prost(self) -> prost_types::Any {
        prost_types::Any {
            type_url: self.type_url,
            value: self.value,
        }
    }
}
