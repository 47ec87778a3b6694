//! The xDS port under clumsy and hostile clients: what any client can make the server hold is bounded, and
//! every refusal is a gRPC status the client sees and a counter `/metrics` shows.

mod support;

use std::path::Path;

use support::xds::{sotw_client, DEADLINE};
use switchyard::control_plane::{ControlPlane, ControlPlaneOptions};
use switchyard::envoy::{NodeIdentity, SidecarNode};
use switchyard::xds::ResourceType::Cluster;
use tokio::time::Instant;

/// A control plane over Bookinfo's `config/` on ephemeral loopback ports.
async fn plane_with(configure: impl FnOnce(&mut ControlPlaneOptions)) -> ControlPlane {
    let mut options =
        ControlPlaneOptions::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("config"));
    options.xds = "127.0.0.1:0".parse().unwrap();
    options.admin = Some("127.0.0.1:0".parse().unwrap());
    configure(&mut options);
    ControlPlane::start(options).await.unwrap()
}

async fn plane() -> ControlPlane {
    plane_with(|_| {}).await
}

/// productpage-v1's sidecar claiming pod IP `ip`: each IP is a proxy identity of its own.
fn productpage_at(ip: std::net::Ipv4Addr) -> envoy_types::pb::envoy::config::core::v3::Node {
    NodeIdentity::sidecar(&SidecarNode {
        workload_name: "productpage-v1".into(),
        namespace: "default".into(),
        labels: [("app", "productpage"), ("version", "v1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        pod_ip: ip.into(),
        app_ip: "127.0.1.2".parse().unwrap(),
        outbound_ip: "127.0.1.3".parse().unwrap(),
    })
    .to_proto()
}

/// Polls `check` until it holds, at most `DEADLINE`.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_disconnected_identity_leaves_no_translation_behind() {
    let plane = plane().await;
    // One proxy stays connected: its translation must stay.
    let mut stays = sotw_client(plane.xds_addr(), productpage_at([10, 0, 0, 1].into())).await;
    stays.subscribe(Cluster, &[]).await;
    stays.recv_type(Cluster).await;

    for i in 0..200u32 {
        let ip = std::net::Ipv4Addr::from(0x0a01_0000 + i);
        let mut c = sotw_client(plane.xds_addr(), productpage_at(ip)).await;
        c.subscribe(Cluster, &[]).await;
        c.recv_type(Cluster).await;
        // Dropping the client ends its stream and its connection.
    }
    eventually("only the connected proxy's translation is held", || {
        plane.cache().current().translations_held() == 1
    })
    .await;
    eventually("the registry forgot the closed streams", || {
        plane.registry().list().len() == 1
    })
    .await;
    // The proxy still connected keeps being served from the same translation.
    drop(stays);
    eventually("no translation is held once nobody is connected", || {
        plane.cache().current().translations_held() == 0
    })
    .await;
}
