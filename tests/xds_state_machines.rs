//! Table-driven tests of the pure per-stream protocol state machines, `SotwStream` and `DeltaStream`, after
//! go-control-plane's server tests: each case is a script of requests and snapshot changes, and each step
//! states the responses and events it must produce. No sockets, no tasks; the tonic tests (`xds_sotw.rs`,
//! `xds_delta.rs`) cover transport, shutdown and flow control.
//!
//! Steps are written as short strings so a table reads like the exchange: a response is
//! `"<type> #<nonce> +<resources> -<removed>"`, an event is `subscribed <type>`, `sent <type> #<nonce>`,
//! `acked <type> #<nonce>`, `nacked <type> #<nonce>` or `ignored: <reason>`.

mod support;

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status;
use support::fixtures::{self, Fixture};
use switchyard::xds::delta::DeltaStream;
use switchyard::xds::event::Event;
use switchyard::xds::sotw::SotwStream;
use switchyard::xds::{Outgoing, ResourceType, Snapshot};

use ResourceType::{Cluster as CDS, Endpoint as EDS, Listener as LDS};

/// The snapshots a script switches between: the fixture, cluster `a` changed (its endpoints not), and cluster
/// `b` gone.
fn snapshots() -> Vec<Snapshot> {
    let base = Fixture::default();
    let a_changed = Fixture {
        a_timeout_ms: 2000,
        ..Fixture::default()
    };
    let without_b = Snapshot::builder()
        .cluster(&fixtures::eds_cluster("a", 1000))
        .endpoint(&fixtures::assignment("a", &[("127.0.0.1", 9000)]))
        .build();
    vec![base.snapshot(), a_changed.snapshot(), without_b]
}

/// What goes into the stream at one step.
#[derive(Clone, Copy)]
enum In {
    /// A request: type, resource names (SotW: the full list; Delta: subscribe), the nonce it answers and
    /// which version it reports.
    Request {
        t: ResourceType,
        names: &'static [&'static str],
        nonce: &'static str,
        version: Version,
        nack: bool,
    },
    /// Delta only: unsubscribe from names, answering `nonce`.
    Unsubscribe {
        t: ResourceType,
        names: &'static [&'static str],
        nonce: &'static str,
    },
    /// Delta only: a reconnect subscribing to `names`, holding the versions the named snapshot has for `holds`.
    Reconnect {
        t: ResourceType,
        names: &'static [&'static str],
        holds: &'static [&'static str],
        of_snapshot: usize,
    },
    /// The proxy's snapshot becomes `snapshots()[i]`; `None` while it cannot be served.
    Snapshot(Option<usize>),
}

/// The version a request reports.
#[derive(Clone, Copy)]
enum Version {
    None,
    /// The version of the response sent with this nonce.
    Of(&'static str),
}

fn req(t: ResourceType, nonce: &'static str, version: Version) -> In {
    In::Request {
        t,
        names: &[],
        nonce,
        version,
        nack: false,
    }
}

fn initial(t: ResourceType) -> In {
    req(t, "", Version::None)
}

fn ack(t: ResourceType, nonce: &'static str) -> In {
    req(t, nonce, Version::Of(nonce))
}

fn nack(t: ResourceType, nonce: &'static str, runs: Version) -> In {
    In::Request {
        t,
        names: &[],
        nonce,
        version: runs,
        nack: true,
    }
}

fn named(t: ResourceType, names: &'static [&'static str], nonce: &'static str) -> In {
    In::Request {
        t,
        names,
        nonce,
        version: if nonce.is_empty() {
            Version::None
        } else {
            Version::Of(nonce)
        },
        nack: false,
    }
}

struct Step {
    input: In,
    responses: &'static [&'static str],
    events: &'static [&'static str],
}

fn step(input: In, responses: &'static [&'static str], events: &'static [&'static str]) -> Step {
    Step {
        input,
        responses,
        events,
    }
}

fn short(t: ResourceType) -> &'static str {
    match t {
        CDS => "CDS",
        EDS => "EDS",
        LDS => "LDS",
        ResourceType::Route => "RDS",
    }
}

fn short_url(type_url: &str) -> &'static str {
    ResourceType::from_type_url(type_url).map_or("?", short)
}

fn event(e: &Event) -> String {
    match e {
        Event::Subscribed { type_ } => format!("subscribed {}", short(*type_)),
        Event::Sent { type_, nonce, .. } => format!("sent {} #{nonce}", short(*type_)),
        Event::Acked { type_, nonce, .. } => format!("acked {} #{nonce}", short(*type_)),
        Event::Nacked { type_, nack } => format!("nacked {} #{}", short(*type_), nack.nonce),
        Event::Ignored { reason, .. } => format!("ignored: {reason}"),
    }
}

fn check(case: &str, i: usize, step: &Step, responses: Vec<String>, events: Vec<String>) {
    assert_eq!(
        (responses, events),
        (
            step.responses.iter().map(|s| s.to_string()).collect(),
            step.events.iter().map(|s| s.to_string()).collect()
        ),
        "{case}, step {i}"
    );
}

fn nack_status() -> Option<Status> {
    Some(Status {
        code: 3,
        message: "rejected".into(),
        ..Default::default()
    })
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

// === SotW ===

fn run_sotw(case: &str, script: &[Step]) -> SotwStream {
    let snaps = snapshots();
    let mut stream = SotwStream::default();
    let mut current = Some(0);
    let mut versions: BTreeMap<String, String> = BTreeMap::new();
    for (i, step) in script.iter().enumerate() {
        let out = match step.input {
            In::Request {
                t,
                names,
                nonce,
                version,
                nack,
            } => {
                let req = DiscoveryRequest {
                    node: Some(Node::default()),
                    type_url: t.type_url().to_string(),
                    resource_names: strings(names),
                    response_nonce: nonce.to_string(),
                    version_info: match version {
                        Version::None => String::new(),
                        Version::Of(n) => versions[n].clone(),
                    },
                    error_detail: if nack { nack_status() } else { None },
                    ..Default::default()
                };
                stream.on_request(&req, current.map(|c| &snaps[c]))
            }
            In::Snapshot(s) => {
                current = s;
                match s {
                    Some(s) => stream.on_snapshot(&snaps[s]),
                    None => Default::default(),
                }
            }
            In::Unsubscribe { .. } | In::Reconnect { .. } => panic!("{case}: not a SotW step"),
        };
        let responses = out
            .responses
            .iter()
            .map(|r: &Outgoing<DiscoveryResponse>| {
                versions.insert(r.nonce.clone(), r.version_info.clone());
                format!(
                    "{} #{} +{}",
                    short_url(&r.type_url),
                    r.nonce,
                    r.resources.len()
                )
            })
            .collect();
        check(
            case,
            i,
            step,
            responses,
            out.events.iter().map(event).collect(),
        );
    }
    stream
}

#[test]
fn sotw_scripts() {
    let cases: Vec<(&str, Vec<Step>)> = vec![
        (
            "first request, ACK, unchanged snapshot",
            vec![
                step(
                    initial(CDS),
                    &["CDS #1 +2"],
                    &["subscribed CDS", "sent CDS #1"],
                ),
                step(ack(CDS, "1"), &[], &["acked CDS #1"]),
                step(In::Snapshot(Some(0)), &[], &[]),
            ],
        ),
        (
            "a change is pushed in push order, only for the types that changed",
            vec![
                step(
                    initial(LDS),
                    &["LDS #1 +1"],
                    &["subscribed LDS", "sent LDS #1"],
                ),
                step(
                    initial(CDS),
                    &["CDS #2 +2"],
                    &["subscribed CDS", "sent CDS #2"],
                ),
                step(ack(LDS, "1"), &[], &["acked LDS #1"]),
                step(ack(CDS, "2"), &[], &["acked CDS #2"]),
                step(In::Snapshot(Some(1)), &["CDS #3 +2"], &["sent CDS #3"]),
            ],
        ),
        (
            "a stale nonce is ignored",
            vec![
                step(
                    initial(CDS),
                    &["CDS #1 +2"],
                    &["subscribed CDS", "sent CDS #1"],
                ),
                step(In::Snapshot(Some(1)), &["CDS #2 +2"], &["sent CDS #2"]),
                step(ack(CDS, "1"), &[], &["ignored: stale nonce"]),
                step(ack(CDS, "2"), &[], &["acked CDS #2"]),
            ],
        ),
        (
            "a NACK keeps the last good version and is not answered with the same one",
            vec![
                step(
                    initial(CDS),
                    &["CDS #1 +2"],
                    &["subscribed CDS", "sent CDS #1"],
                ),
                step(ack(CDS, "1"), &[], &["acked CDS #1"]),
                step(In::Snapshot(Some(1)), &["CDS #2 +2"], &["sent CDS #2"]),
                step(nack(CDS, "2", Version::Of("1")), &[], &["nacked CDS #2"]),
                // Envoy repeats the rejected nonce with the version it still runs: nothing to do.
                step(
                    req(CDS, "2", Version::Of("1")),
                    &[],
                    &["ignored: repeats a rejected response"],
                ),
                // The next change is pushed as usual.
                step(In::Snapshot(Some(0)), &["CDS #3 +2"], &["sent CDS #3"]),
            ],
        ),
        (
            "the same-nonce re-request after a cluster change is answered",
            vec![
                step(
                    initial(CDS),
                    &["CDS #1 +2"],
                    &["subscribed CDS", "sent CDS #1"],
                ),
                step(
                    named(EDS, &["a", "b"], ""),
                    &["EDS #2 +2"],
                    &["subscribed EDS", "sent EDS #2"],
                ),
                step(ack(CDS, "1"), &[], &["acked CDS #1"]),
                step(named(EDS, &["a", "b"], "2"), &[], &["acked EDS #2"]),
                step(In::Snapshot(Some(1)), &["CDS #3 +2"], &["sent CDS #3"]),
                // Envoy re-creates cluster `a` and asks for its endpoints with the nonce it already acked.
                step(
                    named(EDS, &["a", "b"], "2"),
                    &["EDS #4 +2"],
                    &["sent EDS #4"],
                ),
            ],
        ),
        (
            "new names in an ACK are answered with the selected resources",
            vec![
                step(
                    named(EDS, &["a"], ""),
                    &["EDS #1 +1"],
                    &["subscribed EDS", "sent EDS #1"],
                ),
                step(
                    named(EDS, &["a", "b"], "1"),
                    &["EDS #2 +2"],
                    &["acked EDS #1", "sent EDS #2"],
                ),
            ],
        ),
        (
            "a reconnect is answered even when it runs the current version",
            vec![
                step(
                    initial(CDS),
                    &["CDS #1 +2"],
                    &["subscribed CDS", "sent CDS #1"],
                ),
                step(
                    req(CDS, "", Version::Of("1")),
                    &["CDS #2 +2"],
                    &["subscribed CDS", "sent CDS #2"],
                ),
            ],
        ),
        (
            "a proxy that cannot be served yet is answered once it can",
            vec![
                step(In::Snapshot(None), &[], &[]),
                step(initial(CDS), &[], &["subscribed CDS"]),
                step(In::Snapshot(Some(0)), &["CDS #1 +2"], &["sent CDS #1"]),
            ],
        ),
    ];
    for (case, script) in &cases {
        run_sotw(case, script);
    }
}

#[test]
fn sotw_ignores_types_it_does_not_serve_and_records_nacks() {
    let snaps = snapshots();
    let mut stream = SotwStream::default();
    let secret = DiscoveryRequest {
        type_url: "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret".into(),
        ..Default::default()
    };
    let out = stream.on_request(&secret, Some(&snaps[0]));
    assert!(out.responses.is_empty());
    assert_eq!(
        out.events.iter().map(event).collect::<Vec<_>>(),
        ["ignored: type not served"]
    );

    let script = [
        step(
            initial(CDS),
            &["CDS #1 +2"],
            &["subscribed CDS", "sent CDS #1"],
        ),
        step(nack(CDS, "1", Version::None), &[], &["nacked CDS #1"]),
    ];
    let stream = run_sotw("nack recorded", &script);
    let sub = stream.subscription(CDS).expect("subscribed");
    let nack = sub.last_nack.as_ref().expect("nack recorded");
    assert_eq!(
        (nack.nonce.as_str(), nack.message.as_str()),
        ("1", "rejected")
    );
    assert!(sub.acked.is_none());
}

// === Delta ===

fn run_delta(case: &str, script: &[Step]) -> DeltaStream {
    let snaps = snapshots();
    let mut stream = DeltaStream::default();
    let mut current = Some(0);
    for (i, step) in script.iter().enumerate() {
        let request = |t: ResourceType| DeltaDiscoveryRequest {
            node: Some(Node::default()),
            type_url: t.type_url().to_string(),
            ..Default::default()
        };
        let out = match step.input {
            In::Request {
                t,
                names,
                nonce,
                nack,
                version: _,
            } => {
                let req = DeltaDiscoveryRequest {
                    resource_names_subscribe: strings(names),
                    response_nonce: nonce.to_string(),
                    error_detail: if nack { nack_status() } else { None },
                    ..request(t)
                };
                stream.on_request(&req, current.map(|c| &snaps[c]))
            }
            In::Unsubscribe { t, names, nonce } => {
                let req = DeltaDiscoveryRequest {
                    resource_names_unsubscribe: strings(names),
                    response_nonce: nonce.to_string(),
                    ..request(t)
                };
                stream.on_request(&req, current.map(|c| &snaps[c]))
            }
            In::Reconnect {
                t,
                names,
                holds,
                of_snapshot,
            } => {
                let req = DeltaDiscoveryRequest {
                    resource_names_subscribe: strings(names),
                    initial_resource_versions: holds
                        .iter()
                        .map(|n| {
                            let version =
                                snaps[of_snapshot].get(t, n).expect("held").version.clone();
                            (n.to_string(), version)
                        })
                        .collect(),
                    ..request(t)
                };
                stream.on_request(&req, current.map(|c| &snaps[c]))
            }
            In::Snapshot(s) => {
                current = s;
                match s {
                    Some(s) => stream.on_snapshot(&snaps[s]),
                    None => Default::default(),
                }
            }
        };
        let responses = out
            .responses
            .iter()
            .map(|r: &Outgoing<DeltaDiscoveryResponse>| {
                format!(
                    "{} #{} +{} -{}",
                    short_url(&r.type_url),
                    r.nonce,
                    r.resources.len(),
                    r.removed_resources.len()
                )
            })
            .collect();
        check(
            case,
            i,
            step,
            responses,
            out.events.iter().map(event).collect(),
        );
    }
    stream
}

#[test]
fn delta_scripts() {
    let cases: Vec<(&str, Vec<Step>)> = vec![
        (
            "first request, ACK, unchanged snapshot",
            vec![
                step(initial(CDS), &["CDS #1 +2 -0"], &["subscribed CDS", "sent CDS #1"]),
                step(ack(CDS, "1"), &[], &["acked CDS #1"]),
                step(In::Snapshot(Some(0)), &[], &[]),
            ],
        ),
        (
            "only the changed resource is sent, and a changed cluster's endpoints follow it",
            vec![
                step(initial(CDS), &["CDS #1 +2 -0"], &["subscribed CDS", "sent CDS #1"]),
                step(named(EDS, &["a", "b"], ""), &["EDS #2 +2 -0"], &["subscribed EDS", "sent EDS #2"]),
                step(ack(CDS, "1"), &[], &["acked CDS #1"]),
                step(ack(EDS, "2"), &[], &["acked EDS #2"]),
                step(
                    In::Snapshot(Some(1)),
                    &["CDS #3 +1 -0", "EDS #4 +1 -0"],
                    &["sent CDS #3", "sent EDS #4"],
                ),
            ],
        ),
        (
            "a resource gone from the snapshot is removed",
            vec![
                step(initial(CDS), &["CDS #1 +2 -0"], &["subscribed CDS", "sent CDS #1"]),
                step(In::Snapshot(Some(2)), &["CDS #2 +0 -1"], &["sent CDS #2"]),
            ],
        ),
        (
            "a reconnect skips what the proxy already holds, and is still answered",
            vec![
                step(
                    In::Reconnect {
                        t: CDS,
                        names: &[],
                        holds: &["a", "b"],
                        of_snapshot: 0,
                    },
                    &["CDS #1 +0 -0"],
                    &["subscribed CDS", "sent CDS #1"],
                ),
                step(
                    In::Reconnect {
                        t: EDS,
                        names: &["a", "b"],
                        holds: &["a"],
                        of_snapshot: 1,
                    },
                    &["EDS #2 +1 -0"],
                    &["subscribed EDS", "sent EDS #2"],
                ),
            ],
        ),
        (
            "a subscribed name that does not exist is reported removed; unsubscribing is not answered",
            vec![
                step(
                    named(EDS, &["a", "zzz"], ""),
                    &["EDS #1 +1 -1"],
                    &["subscribed EDS", "sent EDS #1"],
                ),
                step(
                    In::Unsubscribe {
                        t: EDS,
                        names: &["a"],
                        nonce: "1",
                    },
                    &[],
                    &["acked EDS #1"],
                ),
                step(In::Snapshot(Some(1)), &[], &[]),
            ],
        ),
        (
            "a NACK is recorded and not answered; a stale nonce is ignored",
            vec![
                step(initial(CDS), &["CDS #1 +2 -0"], &["subscribed CDS", "sent CDS #1"]),
                step(In::Snapshot(Some(1)), &["CDS #2 +1 -0"], &["sent CDS #2"]),
                step(ack(CDS, "1"), &[], &["ignored: stale nonce"]),
                step(nack(CDS, "2", Version::None), &[], &["nacked CDS #2"]),
                // The rejected version is not sent again; the next change is.
                step(In::Snapshot(Some(1)), &[], &[]),
                step(In::Snapshot(Some(0)), &["CDS #3 +1 -0"], &["sent CDS #3"]),
            ],
        ),
    ];
    for (case, script) in &cases {
        run_delta(case, script);
    }
}
