//! `SotwStream` fed any sequence of requests and snapshot changes: no panic, a nonce is never reused, every
//! response carries only resources of its type that the current snapshot has, each once, and only names the
//! proxy's subscription covers (a request the stream ignores, such as one with a stale nonce, changes none).
#![no_main]

use std::collections::BTreeSet;

use arbitrary::Arbitrary;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status;
use libfuzzer_sys::fuzz_target;
use switchyard::xds::sotw::SotwStream;
use switchyard::xds::{ResourceType, Snapshot};
use switchyard_fuzz::{names_of, resource_name, stream_snapshots, type_url_of, Pick, Sent};

#[derive(Arbitrary, Debug)]
enum Op {
    Request {
        type_: u8,
        names: Vec<u8>,
        nonce: Pick,
        version: Pick,
        nack: Option<String>,
    },
    /// The proxy's snapshot becomes one of the three, or none (it cannot be served).
    Snapshot(Option<u8>),
}

fuzz_target!(|ops: Vec<Op>| {
    let snapshots = stream_snapshots();
    let mut stream = SotwStream::default();
    let mut current: Option<&Snapshot> = Some(&snapshots[0]);
    let mut sent = Sent::default();
    for op in ops.iter().take(64) {
        let step = match op {
            Op::Request {
                type_,
                names,
                nonce,
                version,
                nack,
            } => {
                let type_url = type_url_of(*type_);
                let req = DiscoveryRequest {
                    type_url: type_url.clone(),
                    resource_names: names_of(names),
                    response_nonce: sent.nonce(&type_url, nonce),
                    version_info: sent.version(&type_url, version),
                    error_detail: nack.as_ref().map(|message| Status {
                        code: 3,
                        message: message.clone(),
                        details: Vec::new(),
                    }),
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
                &response.version_info,
            );
        }
    }
});

fn check(response: &DiscoveryResponse, snapshot: Option<&Snapshot>, stream: &SotwStream) {
    let t = ResourceType::from_type_url(&response.type_url).expect("a served type");
    let snapshot = snapshot.expect("no response without a snapshot");
    let names = &stream
        .subscription(t)
        .expect("a response only to a subscription")
        .names;
    let mut seen = BTreeSet::new();
    for any in &response.resources {
        assert_eq!(any.type_url, response.type_url);
        let name = resource_name(t, any);
        assert!(snapshot.contains(t, &name), "{name} is not in the snapshot");
        assert!(seen.insert(name.clone()), "{name} sent twice in one response");
        assert!(names.covers(&name), "{name} was not asked for ({names:?})");
    }
}
