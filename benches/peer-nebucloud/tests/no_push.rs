//! What the bench says of nebucloud-xds 0.1.0, shown on the real server: it answers a request from the node's
//! current snapshot, but a snapshot set while a stream is connected is not pushed to it; the stream sees it only
//! when it next sends a request.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peer_nebucloud::snapshots::Recorded;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use xds_cache::{Cache, ShardedCache, Snapshot};
use xds_core::{NodeHash, TypeUrl};
use xds_types::envoy::config::core::v3::Node;
use xds_types::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use xds_types::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

/// A Cluster or a Listener with only its name (field 1 of both), encoded.
#[derive(Clone, PartialEq, prost::Message)]
struct Named {
    #[prost(string, tag = "1")]
    name: String,
}

/// A snapshot of one cluster and one listener, both named `name`.
fn snapshot(version: &str, name: &str) -> Snapshot {
    let resource = |type_url: &str| {
        let any = prost_types::Any {
            type_url: type_url.to_string(),
            value: Named {
                name: name.to_string(),
            }
            .encode_to_vec(),
        };
        vec![Arc::new(Recorded::new(name.to_string(), any)) as _]
    };
    Snapshot::builder()
        .version(version)
        .resources(TypeUrl::CLUSTER.into(), resource(TypeUrl::CLUSTER))
        .resources(TypeUrl::LISTENER.into(), resource(TypeUrl::LISTENER))
        .build()
}

fn names(response: &DiscoveryResponse) -> Vec<String> {
    response
        .resources
        .iter()
        .map(|a| Named::decode(a.value.as_slice()).map(|c| c.name))
        .collect::<Result<_, _>>()
        .expect("a cluster")
}

fn request(type_url: &str, node: Option<Node>, version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        node,
        type_url: type_url.to_string(),
        version_info: version.to_string(),
        response_nonce: nonce.to_string(),
        ..DiscoveryRequest::default()
    }
}

#[tokio::test]
async fn a_later_snapshot_is_not_pushed_to_a_connected_stream() {
    let node = "sidecar~127.0.0.1~a.default~default.svc.cluster.local";
    let cache = Arc::new(ShardedCache::new());
    cache.set_snapshot(NodeHash::from_id(node), snapshot("1", "first"));
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let (_stop, shutdown) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(peer_nebucloud::serve(cache.clone(), addr, shutdown));

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut client = loop {
        match AggregatedDiscoveryServiceClient::connect(format!("http://{addr}")).await {
            Ok(client) => break client,
            Err(e) if Instant::now() > deadline => panic!("the peer does not listen: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let first = Node {
        id: node.to_string(),
        ..Node::default()
    };
    tx.send(request(TypeUrl::CLUSTER, Some(first), "", ""))
        .expect("queued");
    let mut inbound = client
        .stream_aggregated_resources(UnboundedReceiverStream::new(rx))
        .await
        .expect("a stream")
        .into_inner();
    let v1 = inbound.message().await.expect("a response").expect("open");
    assert_eq!(
        (v1.version_info.as_str(), names(&v1)),
        ("1", vec!["first".to_string()])
    );
    tx.send(request(TypeUrl::CLUSTER, None, "1", &v1.nonce))
        .expect("ACK queued");
    // The stream handles requests in order: once LDS is answered, the CDS ACK has been handled, and the
    // stream waits for its next request.
    tx.send(request(TypeUrl::LISTENER, None, "", ""))
        .expect("queued");
    let lds = inbound.message().await.expect("a response").expect("open");
    assert_eq!(
        (lds.version_info.as_str(), names(&lds)),
        ("1", vec!["first".to_string()])
    );

    // The control plane's new configuration for this node.
    cache.set_snapshot(NodeHash::from_id(node), snapshot("2", "second"));
    // Showing that something does not arrive needs a wait: two seconds is far beyond a push on loopback.
    let pushed = tokio::time::timeout(Duration::from_secs(2), inbound.message()).await;
    assert!(
        pushed.is_err(),
        "nebucloud pushed a later snapshot: {pushed:?}"
    );

    // It is served as soon as the stream asks again (here: the CDS ACK once more).
    tx.send(request(TypeUrl::CLUSTER, None, "1", &v1.nonce))
        .expect("request queued");
    let v2 = inbound.message().await.expect("a response").expect("open");
    assert_eq!(
        (v2.version_info.as_str(), names(&v2)),
        ("2", vec!["second".to_string()])
    );
    server.abort();
}
