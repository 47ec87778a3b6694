//! Delta (incremental) ADS for one stream, without I/O.
//!
//! The stream remembers the version of every resource the proxy holds (`Subscription::known`, seeded from
//! `initial_resource_versions` on reconnect), so each response carries only what changed and the names
//! that disappeared.

use std::collections::BTreeSet;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};

use super::event::{Event, Step};
use super::outgoing::Outgoing;
use super::resource_type::{PerType, ResourceType};
use super::snapshot::{Encoded, Snapshot};
use super::subscription::{
    layer_ids, nack_message, Known, Nack, ResourceNames, Sent, Subscription,
};

/// One Delta stream.
#[derive(Debug, Default)]
pub struct DeltaStream {
    subs: PerType<Option<Subscription>>,
    /// Explicitly subscribed names the proxy has not yet been told about (present or absent), per type.
    unanswered: PerType<BTreeSet<String>>,
    nonces: u64,
}

impl DeltaStream {
    pub fn subscription(&self, t: ResourceType) -> Option<&Subscription> {
        self.subs[t].as_ref()
    }

    pub fn on_request(
        &mut self,
        req: &DeltaDiscoveryRequest,
        snapshot: Option<&Snapshot>,
    ) -> Step<Outgoing<DeltaDiscoveryResponse>> {
        let Some(t) = ResourceType::from_type_url(&req.type_url) else {
            return Step::ignored(&req.type_url, "type not served");
        };
        let mut step = Step::default();

        let initial = self.subs[t].is_none();
        let sub = self.subs[t].get_or_insert_with(|| {
            let mut sub = Subscription::new(ResourceNames::delta_initial(
                t,
                &req.resource_names_subscribe,
            ));
            // What a reconnecting proxy already holds need not be sent again.
            sub.known = Known::from_versions(&req.initial_resource_versions);
            sub.owes_response = true;
            sub
        });
        if initial {
            step.events.push(Event::Subscribed { type_: t });
        }

        let added = sub.names.subscribe(&req.resource_names_subscribe);
        self.unanswered[t].extend(added);
        sub.names.unsubscribe(&req.resource_names_unsubscribe);
        for name in &req.resource_names_unsubscribe {
            sub.known.forget(name);
            self.unanswered[t].remove(name);
        }

        if !req.response_nonce.is_empty() {
            if !sub.is_current_nonce(&req.response_nonce) {
                step.events.push(Event::Ignored {
                    type_url: req.type_url.clone(),
                    reason: "stale nonce",
                });
            } else if let Some(status) = &req.error_detail {
                let nack = Nack {
                    nonce: req.response_nonce.clone(),
                    rejected_version: sub
                        .sent_version_of(&req.response_nonce)
                        .unwrap_or_default()
                        .to_string(),
                    kept_version: sub
                        .acked
                        .as_ref()
                        .map(|a| a.version.clone())
                        .unwrap_or_default(),
                    message: nack_message(&status.message),
                };
                // `known` keeps the rejected versions on purpose: the proxy has seen them, and sending
                // them again would only be rejected again. The next change to those resources is sent.
                sub.last_nack = Some(nack.clone());
                step.events.push(Event::Nacked { type_: t, nack });
            } else if let Some(sent) = sub.last_sent.clone() {
                let repeated = sub.acked.as_ref().is_some_and(|a| a.nonce == sent.nonce);
                if !repeated {
                    step.events.push(Event::Acked {
                        type_: t,
                        version: sent.version.clone(),
                        nonce: sent.nonce.clone(),
                    });
                    sub.acked = Some(sent);
                }
            }
        }

        if let Some(snapshot) = snapshot {
            step.merge(self.respond(t, snapshot, false));
        }
        step
    }

    pub fn on_snapshot(&mut self, snapshot: &Snapshot) -> Step<Outgoing<DeltaDiscoveryResponse>> {
        let mut step = Step::default();
        for t in ResourceType::ALL {
            step.merge(self.respond(t, snapshot, true));
        }
        step
    }

    /// Sends what changed for type `t`, or an empty answer to a first request that is still owed one.
    /// `may_skip`: nothing but the snapshot changed since the last answer, so the same layers mean nothing to
    /// send (a request, by contrast, may have changed the names or what the proxy holds).
    fn respond(
        &mut self,
        t: ResourceType,
        snapshot: &Snapshot,
        may_skip: bool,
    ) -> Step<Outgoing<DeltaDiscoveryResponse>> {
        let mut step = Step::default();
        let Some(sub) = self.subs[t].as_mut() else {
            return step;
        };
        let layers = layer_ids(snapshot, t);
        if may_skip
            && sub.answered_from == layers
            && !sub.owes_response
            && self.unanswered[t].is_empty()
        {
            return step;
        }
        sub.answered_from = layers;
        let (changed, mut removed) =
            match held_layers_changes(sub, snapshot, t, &self.unanswered[t]) {
                Some(delta) => {
                    // The shortcut must be exact; tests and fuzzing run with debug assertions.
                    debug_assert_eq!(delta, full_comparison(sub, snapshot, t));
                    delta
                }
                None => full_comparison(sub, snapshot, t),
            };
        // Newly subscribed names that do not exist are reported removed, so the proxy stops waiting.
        removed.extend(
            self.unanswered[t]
                .iter()
                .filter(|name| !snapshot.contains(t, name))
                .cloned(),
        );
        self.unanswered[t].clear();
        sub.known.answered(snapshot.layers(t), &sub.names);

        if changed.is_empty() && removed.is_empty() && !sub.owes_response {
            return step;
        }
        sub.owes_response = false;
        self.nonces += 1;
        let nonce = self.nonces.to_string();
        let version = sub.names.version(snapshot, t);
        step.events.push(Event::Sent {
            type_: t,
            version: version.clone(),
            nonce: nonce.clone(),
            resources: changed.len(),
            removed: removed.len(),
        });
        sub.last_sent = Some(Sent {
            nonce: nonce.clone(),
            version: version.clone(),
        });
        // (Worked out before the response takes the changed resources.)
        let eds_names: Vec<String> = if t == ResourceType::Cluster {
            changed
                .iter()
                .filter_map(|c| snapshot.eds_name_of_cluster(&c.name).map(str::to_string))
                .collect()
        } else {
            Vec::new()
        };
        step.responses.push(Outgoing {
            message: DeltaDiscoveryResponse {
                system_version_info: version,
                type_url: t.type_url().to_string(),
                removed_resources: removed.into_iter().collect(),
                nonce,
                ..Default::default()
            },
            resources: changed,
        });

        // Envoy re-creates a changed cluster and keeps it warming until its endpoints arrive, but in Delta
        // it does not ask for them again: they are sent again right after (or their removal, if gone).
        if t == ResourceType::Cluster {
            if let Some(eds) = self.subs[ResourceType::Endpoint].as_mut() {
                for name in &eds_names {
                    eds.known.resend(name);
                }
            }
            if !eds_names.is_empty() {
                step.merge(self.respond(ResourceType::Endpoint, snapshot, false));
            }
        }
        step
    }
}

type Changes = (Vec<Arc<Encoded>>, BTreeSet<String>);

/// What to send when the proxy holds the layers of the last answer (but for a few exceptions and newly
/// subscribed names) and each current layer is that layer or its direct successor: only the names the
/// successors record as changed or removed, the exceptions and the new names are looked at, not the rest.
/// Gives what [`full_comparison`] gives.
fn held_layers_changes(
    sub: &Subscription,
    snapshot: &Snapshot,
    t: ResourceType,
    unanswered: &BTreeSet<String>,
) -> Option<Changes> {
    let (held, then) = sub.known.base()?;
    if !only_tracked_changes(then, &sub.names, &sub.known, unanswered) {
        return None;
    }
    let current = snapshot.layers(t);
    if held.len() != current.len() {
        return None;
    }
    let mut candidates: BTreeSet<&str> = BTreeSet::new();
    for (old, new) in held.iter().zip(current) {
        if Arc::ptr_eq(old, new) {
            continue;
        }
        let change = new.change_since(old.id())?;
        candidates.extend(change.changed.iter().map(String::as_str));
        candidates.extend(change.removed.iter().map(String::as_str));
    }
    candidates.extend(sub.known.exceptions().map(String::as_str));
    candidates.extend(unanswered.iter().map(String::as_str));

    let mut changed = Vec::new();
    let mut removed = BTreeSet::new();
    for name in candidates {
        match snapshot.get(t, name).filter(|_| sub.names.covers(name)) {
            Some(now) if sub.known.version(name) == Some(now.version.as_str()) => {}
            Some(now) => changed.push(now.clone()),
            None if sub.known.holds(name) => {
                removed.insert(name.to_owned());
            }
            None => {}
        }
    }
    Some((changed, removed))
}

/// Whether the subscription of the last answer (`then`) and the one `now` differ only in names the stream
/// tracks: explicit names added since are newly subscribed (`unanswered`) and names dropped are exceptions. A
/// change between wildcard and explicit, or any other, is left to [`full_comparison`].
fn only_tracked_changes(
    then: &ResourceNames,
    now: &ResourceNames,
    known: &Known,
    unanswered: &BTreeSet<String>,
) -> bool {
    match (then, now) {
        (then, now) if then == now => true,
        (ResourceNames::Explicit(then), ResourceNames::Explicit(now)) => {
            then.iter()
                .all(|n| now.contains(n) || known.is_exception(n))
                && now
                    .iter()
                    .all(|n| then.contains(n) || unanswered.contains(n) || known.is_exception(n))
        }
        _ => false,
    }
}

fn full_comparison(sub: &Subscription, snapshot: &Snapshot, t: ResourceType) -> Changes {
    let changed = sub
        .names
        .select(snapshot, t)
        .into_iter()
        .filter(|r| sub.known.version(&r.name) != Some(r.version.as_str()))
        .cloned()
        .collect();
    let removed = sub
        .known
        .names()
        .filter(|name| !snapshot.contains(t, name) || !sub.names.covers(name))
        .cloned()
        .collect();
    (changed, removed)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use envoy_types::pb::google::protobuf::Any;
    use proptest::prelude::*;

    use super::*;
    use crate::xds::snapshot::Layer;

    /// A step of a random run: a new generation (per name of a small universe: absent, or a version), or
    /// a request from the proxy.
    #[derive(Debug, Clone)]
    enum Op {
        /// Endpoints, and the version of each one's cluster.
        Publish(Vec<Option<u8>>, Vec<u8>),
        Subscribe(Vec<u8>),
        Unsubscribe(Vec<u8>),
    }

    const NAMES: u8 = 6;

    fn op() -> impl Strategy<Value = Op> {
        let names = || proptest::collection::vec(0..=NAMES, 0..4);
        prop_oneof![
            (
                proptest::collection::vec(proptest::option::of(0u8..3), NAMES as usize),
                proptest::collection::vec(0u8..2, NAMES as usize)
            )
                .prop_map(|(endpoints, clusters)| Op::Publish(endpoints, clusters)),
            names().prop_map(Op::Subscribe),
            names().prop_map(Op::Unsubscribe),
        ]
    }

    /// A resource name, or (the last index) the wildcard, which a Delta client may subscribe and unsubscribe.
    fn name(i: u8) -> String {
        if i == NAMES {
            "*".to_owned()
        } else {
            format!("r{i}")
        }
    }

    /// Splits a generation over two layers (even names in the first), each the successor of the last.
    fn publish(previous: &[Arc<Layer>], versions: &[Option<u8>]) -> Vec<Arc<Layer>> {
        (0..2)
            .map(|l| {
                let resources = versions.iter().enumerate().filter_map(|(i, v)| {
                    let v = (*v)?;
                    (i % 2 == l).then(|| {
                        Arc::new(Encoded {
                            name: name(i as u8),
                            version: format!("v{v}"),
                            any: Any::default(),
                            eds_service: None,
                            shared_entries: Default::default(),
                        })
                    })
                });
                Layer::succeed(previous.get(l), resources)
            })
            .collect()
    }

    /// Every name also has an EDS cluster (one layer), whose change makes Envoy wait for its endpoints again.
    fn clusters(previous: Option<&Arc<Layer>>, versions: &[u8]) -> Arc<Layer> {
        let resources = versions.iter().enumerate().map(|(i, v)| {
            Arc::new(Encoded {
                name: name(i as u8),
                version: format!("c{v}"),
                any: Any::default(),
                eds_service: Some(name(i as u8)),
                shared_entries: Default::default(),
            })
        });
        Layer::succeed(previous, resources)
    }

    fn snapshot_of(clusters: &Arc<Layer>, endpoints: &[Arc<Layer>]) -> Snapshot {
        let mut per_type: PerType<Vec<Arc<Layer>>> = PerType::default();
        per_type[ResourceType::Cluster] = vec![clusters.clone()];
        per_type[ResourceType::Endpoint] = endpoints.to_vec();
        Snapshot::from_layers(per_type)
    }

    fn request(subscribe: &[u8], unsubscribe: &[u8], nonce: &str) -> DeltaDiscoveryRequest {
        DeltaDiscoveryRequest {
            type_url: ResourceType::Endpoint.type_url().to_string(),
            resource_names_subscribe: subscribe.iter().map(|i| name(*i)).collect(),
            resource_names_unsubscribe: unsubscribe.iter().map(|i| name(*i)).collect(),
            response_nonce: nonce.to_string(),
            ..Default::default()
        }
    }

    /// What the proxy holds after applying `step`'s responses; the last nonce.
    fn apply(
        step: &Step<Outgoing<DeltaDiscoveryResponse>>,
        held: &mut BTreeMap<String, String>,
        nonce: &mut String,
    ) {
        let endpoints = ResourceType::Endpoint.type_url();
        for response in step.responses.iter().filter(|r| r.type_url == endpoints) {
            for r in &response.resources {
                held.insert(r.name.clone(), r.version.clone());
            }
            for gone in &response.removed_resources {
                held.remove(gone);
            }
            nonce.clone_from(&response.nonce);
        }
    }

    proptest! {
        /// Whatever the order of generations, subscriptions and unsubscriptions, the proxy ends up holding
        /// exactly what it subscribes to of the current generation. (That the shortcut through the layers'
        /// own change records gives what a full comparison gives is the debug assertion in `respond`.)
        #[test]
        fn a_delta_proxy_holds_exactly_what_it_subscribes_to(ops in proptest::collection::vec(op(), 1..40)) {
            let t = ResourceType::Endpoint;
            let mut stream = DeltaStream::default();
            let mut layers = publish(&[], &[None; NAMES as usize]);
            let mut cluster_layer = clusters(None, &[0; NAMES as usize]);
            let mut held = BTreeMap::new();
            let mut subscribed = BTreeSet::from([name(0)]);
            let mut nonce = String::new();
            let wildcard = DeltaDiscoveryRequest {
                type_url: ResourceType::Cluster.type_url().to_string(),
                ..Default::default()
            };
            let _ = stream.on_request(&wildcard, Some(&snapshot_of(&cluster_layer, &layers)));
            let mut step =
                stream.on_request(&request(&[0], &[], ""), Some(&snapshot_of(&cluster_layer, &layers)));
            for op in ops {
                apply(&step, &mut held, &mut nonce);
                let snapshot = snapshot_of(&cluster_layer, &layers);
                step = match op {
                    Op::Publish(versions, cluster_versions) => {
                        layers = publish(&layers, &versions);
                        cluster_layer = clusters(Some(&cluster_layer), &cluster_versions);
                        stream.on_snapshot(&snapshot_of(&cluster_layer, &layers))
                    }
                    Op::Subscribe(names) => {
                        subscribed.extend(names.iter().map(|i| name(*i)));
                        stream.on_request(&request(&names, &[], &nonce), Some(&snapshot))
                    }
                    Op::Unsubscribe(names) => {
                        for i in &names {
                            subscribed.remove(&name(*i));
                            held.remove(&name(*i));
                        }
                        stream.on_request(&request(&[], &names, &nonce), Some(&snapshot))
                    }
                };
            }
            apply(&step, &mut held, &mut nonce);
            let snapshot = snapshot_of(&cluster_layer, &layers);
            let expected: BTreeMap<String, String> = snapshot
                .all(t)
                .into_iter()
                .filter(|r| subscribed.contains("*") || subscribed.contains(&r.name))
                .map(|r| (r.name.clone(), r.version.clone()))
                .collect();
            prop_assert_eq!(held, expected);
        }
    }
}
