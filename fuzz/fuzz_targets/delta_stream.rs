//! `DeltaStream` fed any sequence of requests and snapshot changes: no panic, a nonce is never reused, a name
//! is never both sent and removed in one response, what is sent is what the current snapshot has (same
//! version) and covered by the subscription, and what is removed the snapshot does not have or the
//! subscription does not cover (a reconnecting proxy may claim resources it no longer asks for).
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status;
use libfuzzer_sys::fuzz_target;
use switchyard::xds::delta::DeltaStream;
use switchyard::xds::{ResourceType, Snapshot};
use switchyard_fuzz::{names_of, stream_snapshots, type_url_of, Pick, Sent};

#[derive(Arbitrary, Debug)]
enum Op {
    Request {
        type_: u8,
        subscribe: Vec<u8>,
        unsubscribe: Vec<u8>,
        nonce: Pick,
        nack: Option<String>,
    },
    /// A reconnect: the first request of a type, claiming to hold some names at some versions.
    Reconnect {
        type_: u8,
        subscribe: Vec<u8>,
        holds: Vec<(u8, Pick)>,
    },
    Snapshot(Option<u8>),
}

fuzz_target!(|ops: Vec<Op>| {
    let snapshots = stream_snapshots();
    let mut stream = DeltaStream::default();
    let mut current: Option<&Snapshot> = Some(&snapshots[0]);
    let mut sent = Sent::default();
    for op in ops.iter().take(64) {
        let step = match op {
            Op::Request {
                type_,
                subscribe,
                unsubscribe,
                nonce,
                nack,
            } => {
                let type_url = type_url_of(*type_);
                let req = DeltaDiscoveryRequest {
                    response_nonce: sent.nonce(&type_url, nonce),
                    type_url,
                    resource_names_subscribe: names_of(subscribe),
                    resource_names_unsubscribe: names_of(unsubscribe),
                    error_detail: nack.as_ref().map(|message| Status {
                        code: 3,
                        message: message.clone(),
                        details: Vec::new(),
                    }),
                    ..Default::default()
                };
                stream.on_request(&req, current)
            }
            Op::Reconnect {
                type_,
                subscribe,
                holds,
            } => {
                // A new stream, as after a reconnect; the proxy reports what it holds.
                stream = DeltaStream::default();
                sent = Sent::default();
                let type_url = type_url_of(*type_);
                let names = names_of(&holds.iter().map(|(n, _)| *n).collect::<Vec<_>>());
                let initial_resource_versions: std::collections::HashMap<String, String> = names
                    .into_iter()
                    .zip(holds.iter().map(|(_, v)| match v {
                        Pick::Garbage(s) => s.clone(),
                        _ => String::new(),
                    }))
                    .collect();
                let req = DeltaDiscoveryRequest {
                    type_url,
                    resource_names_subscribe: names_of(subscribe),
                    initial_resource_versions,
                    ..Default::default()
                };
                stream.on_request(&req, current)
            }
            Op::Snapshot(i) => {
                current = i.map(|i| &snapshots[usize::from(i) % snapshots.len()]);
                match current {
                    Some(s) => stream.on_snapshot(s),
                    None => continue,
                }
            }
        };
        for response in &step.responses {
            check(response, current, &stream);
            sent.record(
                &response.type_url,
                &response.nonce,
                &response.system_version_info,
            );
        }
    }
});

fn check(response: &DeltaDiscoveryResponse, snapshot: Option<&Snapshot>, stream: &DeltaStream) {
    let t = ResourceType::from_type_url(&response.type_url).expect("a served type");
    let snapshot = snapshot.expect("no response without a snapshot");
    let names = &stream
        .subscription(t)
        .expect("a response only to a subscription")
        .names;
    let mut sent: BTreeMap<&str, &str> = BTreeMap::new();
    for r in &response.resources {
        let held = snapshot
            .get(t, &r.name)
            .unwrap_or_else(|| panic!("{} is not in the snapshot", r.name));
        assert_eq!(r.version, held.version, "{} sent at another version", r.name);
        assert!(names.covers(&r.name), "{} sent but not subscribed", r.name);
        assert!(
            sent.insert(&r.name, &r.version).is_none(),
            "{} sent twice in one response",
            r.name
        );
    }
    for name in &response.removed_resources {
        assert!(!sent.contains_key(name.as_str()), "{name} both sent and removed");
        assert!(
            !snapshot.contains(t, name) || !names.covers(name),
            "{name} removed but present and subscribed"
        );
    }
}
