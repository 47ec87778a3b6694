//! Delta (incremental) ADS for one stream, without I/O.
//!
//! The stream remembers the version of every resource the proxy holds (`Subscription::known`, seeded from
//! `initial_resource_versions` on reconnect), so each response carries only what changed and the names
//! that disappeared.

use std::collections::BTreeSet;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};

use super::event::{Event, Step};
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
    ) -> Step<DeltaDiscoveryResponse> {
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

    pub fn on_snapshot(&mut self, snapshot: &Snapshot) -> Step<DeltaDiscoveryResponse> {
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
    ) -> Step<DeltaDiscoveryResponse> {
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
        let (changed, mut removed) = match held_layers_changes(sub, snapshot, t) {
            Some(delta) => delta,
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
        let version = if sub.names.is_wildcard() {
            snapshot.version(t)
        } else {
            sub.names
                .version_of(snapshot, t, &sub.names.select(snapshot, t))
        };
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
        step.responses.push(DeltaDiscoveryResponse {
            system_version_info: version,
            resources: changed
                .iter()
                .map(|r| Resource {
                    name: r.name.clone(),
                    version: r.version.clone(),
                    resource: Some(r.any.clone()),
                    ..Default::default()
                })
                .collect(),
            type_url: t.type_url().to_string(),
            removed_resources: removed.into_iter().collect(),
            nonce,
            ..Default::default()
        });

        // Envoy re-creates a changed cluster and keeps it warming until its endpoints arrive, but in Delta
        // it does not ask for them again: forget what it holds so they are re-sent right after.
        if t == ResourceType::Cluster {
            let eds_names: Vec<String> = changed
                .iter()
                .filter_map(|c| snapshot.eds_name_of_cluster(&c.name).map(str::to_string))
                .collect();
            if let Some(eds) = self.subs[ResourceType::Endpoint].as_mut() {
                for name in &eds_names {
                    eds.known.forget(name);
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

/// What to send when the proxy holds exactly the layers of the last answer and each current layer is that
/// layer or its direct successor: the successors' own record of what changed, without looking at the rest.
fn held_layers_changes(
    sub: &Subscription,
    snapshot: &Snapshot,
    t: ResourceType,
) -> Option<Changes> {
    let held = sub.known.exact_base(&sub.names)?;
    let current = snapshot.layers(t);
    if held.len() != current.len() {
        return None;
    }
    let mut changed = Vec::new();
    let mut removed = BTreeSet::new();
    for (old, new) in held.iter().zip(current) {
        if Arc::ptr_eq(old, new) {
            continue;
        }
        let change = new.change_since(old.id())?;
        changed.extend(
            change
                .changed
                .iter()
                .filter(|name| sub.names.covers(name))
                .filter_map(|name| new.get(name).cloned()),
        );
        removed.extend(
            change
                .removed
                .iter()
                .filter(|name| sub.names.covers(name) && !snapshot.contains(t, name))
                .cloned(),
        );
    }
    changed.sort_by(|a, b| a.name.cmp(&b.name));
    Some((changed, removed))
}

/// What to send, by comparing every covered resource with what the proxy holds.
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
