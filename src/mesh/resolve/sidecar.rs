//! Sidecar → `EgressScope`: which services the sidecars a Sidecar resource applies to may reach.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::workload_index::WorkloadIndex;
use super::{meta_of, Diags};
use crate::mesh::{
    labels_match, Code, EgressHost, EgressScope, GatewayRef, Mesh, ResourceKey, VirtualService,
    Workload,
};
use crate::spec::{self, Kind, Sourced};

pub(super) fn resolve(
    items: &[Arc<Sourced<spec::Sidecar>>],
    workloads: &WorkloadIndex<'_>,
    diags: &mut Diags<'_>,
) -> BTreeMap<String, EgressScope> {
    let mut out = BTreeMap::new();
    for item in items {
        let meta = meta_of(item, Kind::Sidecar);
        let spec::Sidecar {
            workload_selector,
            egress,
            ingress: _,
            outbound_traffic_policy: _,
            inbound_connection_pool: _,
        } = &item.value;
        let namespace = item.namespace().to_owned();
        let mut hosts = Vec::new();
        for (i, listener) in egress.iter().enumerate() {
            let spec::EgressListener {
                hosts: patterns,
                port: _,
                bind: _,
                capture_mode: _,
            } = listener;
            if patterns.is_empty() {
                diags.error(
                    &meta,
                    Code::InvalidEgressHost,
                    format!("spec.egress[{i}].hosts"),
                    "an egress listener needs at least one host (`namespace/dnsName`, for example `./*`)",
                );
            }
            for (j, pattern) in patterns.iter().enumerate() {
                match egress_host(pattern, &namespace) {
                    Ok(Some(host)) => hosts.push(host),
                    Ok(None) => {}
                    Err(why) => diags.error(
                        &meta,
                        Code::InvalidEgressHost,
                        format!("spec.egress[{i}].hosts[{j}]"),
                        format!("`{pattern}`: {why}"),
                    ),
                }
            }
        }
        out.insert(
            format!("{namespace}/{}", item.name()),
            EgressScope {
                meta,
                namespace,
                selector: workload_selector.as_ref().map(|s| s.labels.clone()),
                // No `egress` admits everything; egress listeners that admit nothing (`~/*`) admit nothing.
                hosts: (!egress.is_empty()).then_some(hosts),
                inferred: BTreeSet::new(),
            },
        );
    }
    check_conflicts(&out, workloads, diags);
    out
}

/// Adds to each Sidecar's scope the services that the sidecar-bound VirtualServices it admits route or
/// mirror to, as Istio does: a route the sidecar is given should find its clusters there. Only services:
/// a destination the mesh does not know stays unknown.
///
/// Istio stops at the VirtualServices the egress hosts admit, and gives an inferred service whose own
/// VirtualService they do not admit a default route. Switchyard routes every service a sidecar sees by its
/// VirtualService, so it follows those too, until no new destination appears: every route a scoped sidecar
/// is given then finds its cluster.
///
/// `last`: the mesh of the last reading. When its services are the same hosts as `mesh`'s, a Sidecar that admits
/// the same hosts as it did then and sees none of the VirtualServices that differ between the two keeps the
/// destinations inferred for it then. They are closed under the new VirtualServices (those it saw are all still
/// there, and it sees none of the others), and they are the least such set: the VirtualServices that led to them
/// are all still there.
pub(super) fn infer_destinations(mesh: &mut Mesh, last: Option<&Mesh>) {
    let bound: Vec<&VirtualService> = mesh
        .virtual_services
        .iter()
        .filter(|vs| vs.gateways.contains(&GatewayRef::Mesh))
        .collect();
    // Inference reads which services there are only for the hosts bound VirtualServices route or mirror to:
    // a service added or removed that none of them names (before or now) changes no inference. (A resolved
    // VirtualService names only services, so a new service is never one of them; checking costs little,
    // and keeps inference sound if that ever changes.)
    let same_destinations = |l: &Mesh| {
        if Arc::ptr_eq(&l.services, &mesh.services) {
            return true;
        }
        let named: BTreeSet<&str> = l
            .virtual_services
            .iter()
            .chain(&mesh.virtual_services)
            .filter(|vs| vs.gateways.contains(&GatewayRef::Mesh))
            .flat_map(|vs| vs.referenced_hosts())
            .collect();
        let (before, now) = (&l.services, &mesh.services);
        before
            .keys()
            .filter(|host| !now.contains_key(*host))
            .chain(now.keys().filter(|host| !before.contains_key(*host)))
            .all(|host| !named.contains(host.as_str()))
    };
    let reusable = last.filter(|l| same_destinations(l)).map(|l| {
        let differing = differing_virtual_services(&l.virtual_services, &mesh.virtual_services);
        (l, differing)
    });
    // What the last reading inferred for a Sidecar, if it stands.
    let kept = |key: &String, scope: &EgressScope| -> Option<&EgressScope> {
        let (last, differing) = reusable.as_ref()?;
        let before = last.sidecars.get(key)?;
        let same_scope = before.namespace == scope.namespace && before.hosts == scope.hosts;
        let sees_a_change = differing.iter().any(|vs| {
            vs.hosts.iter().any(|h| {
                before.admits(&vs.meta.resource.namespace, h) || before.inferred.contains(h)
            })
        });
        (same_scope && !sees_a_change).then_some(before)
    };
    let changed: Vec<(String, BTreeSet<String>)> =
        mesh.sidecars
            .iter()
            .filter(|(_, scope)| scope.hosts.is_some())
            .filter_map(|(key, scope)| match kept(key, scope) {
                // The very scope of the last reading (its Sidecars were reused): nothing to copy.
                Some(before) if std::ptr::eq(before, scope) => None,
                Some(before) => (before.inferred != scope.inferred)
                    .then(|| (key.clone(), before.inferred.clone())),
                None => infer(mesh, &bound, scope).map(|inferred| (key.clone(), inferred)),
            })
            .collect();
    // The Sidecars are often the very ones of the last reading, shared with its mesh: copied only if an
    // inference differs, so that an unchanged set stays the same allocation.
    if changed.is_empty() {
        return;
    }
    let sidecars = Arc::make_mut(&mut mesh.sidecars);
    for (key, inferred) in changed {
        if let Some(scope) = sidecars.get_mut(&key) {
            scope.inferred = inferred;
        }
    }
}

/// The destinations inferred for `scope` from the sidecar-bound VirtualServices, if they are not the ones it has.
fn infer(mesh: &Mesh, bound: &[&VirtualService], scope: &EgressScope) -> Option<BTreeSet<String>> {
    let mut inferred: BTreeSet<String> = BTreeSet::new();
    loop {
        let seen = |vs: &VirtualService| {
            vs.hosts
                .iter()
                .any(|h| scope.admits(&vs.meta.resource.namespace, h) || inferred.contains(h))
        };
        let more: Vec<String> = bound
            .iter()
            .filter(|vs| seen(vs))
            .flat_map(|vs| vs.referenced_hosts())
            .filter(|host| mesh.services.contains_key(*host) && !inferred.contains(*host))
            .map(str::to_owned)
            .collect();
        if more.is_empty() {
            break;
        }
        inferred.extend(more);
    }
    (inferred != scope.inferred).then_some(inferred)
}

/// The VirtualServices of `old` and of `new` that are not in the other one as they are (both versions of a
/// changed one).
fn differing_virtual_services<'a>(
    old: &'a [VirtualService],
    new: &'a [VirtualService],
) -> Vec<&'a VirtualService> {
    let mut before: BTreeMap<&ResourceKey, &VirtualService> =
        old.iter().map(|vs| (&vs.meta.resource, vs)).collect();
    let mut differing = Vec::new();
    for vs in new {
        match before.remove(&vs.meta.resource) {
            Some(was) if was == vs => {}
            Some(was) => differing.extend([was, vs]),
            None => differing.push(vs),
        }
    }
    differing.extend(before.into_values());
    differing
}

/// Parses `namespace/dnsName`. `Ok(None)`: the host admits nothing (`~/...`).
fn egress_host(pattern: &str, own_namespace: &str) -> Result<Option<EgressHost>, String> {
    let Some((namespace, host)) = pattern.split_once('/') else {
        return Err(
            "expected `namespace/dnsName` (`.` is this namespace, `*` any namespace)".into(),
        );
    };
    if host.is_empty() || host.contains('/') {
        return Err("the host part must be a DNS name, `*` or `*.suffix`".into());
    }
    if host.contains('*') && !(host == "*" || (host.starts_with("*.") && !host[1..].contains('*')))
    {
        return Err("a wildcard host is `*` or `*.suffix`".into());
    }
    let namespace = match namespace {
        "~" => return Ok(None),
        "*" => None,
        "." => Some(own_namespace.to_owned()),
        "" => return Err("the namespace part is empty (use `.` for this namespace)".into()),
        ns => Some(ns.to_owned()),
    };
    Ok(Some(EgressHost {
        namespace,
        host: host.to_owned(),
    }))
}

/// Istio's analyzers: IST0111, two Sidecars without a selector in one namespace; IST0110, two Sidecars whose
/// selectors both match one workload. Either way which one applies would be arbitrary.
fn check_conflicts(
    scopes: &BTreeMap<String, EgressScope>,
    index: &WorkloadIndex<'_>,
    diags: &mut Diags<'_>,
) {
    let mut catch_all: BTreeMap<&str, &str> = BTreeMap::new();
    for (key, scope) in scopes.iter().filter(|(_, s)| s.selector.is_none()) {
        if let Some(first) = catch_all.insert(&scope.namespace, key) {
            diags.error(
                &scope.meta,
                Code::MultipleDefaultSidecars,
                "spec",
                format!(
                    "namespace `{}` has two Sidecars without a workloadSelector ({first} and {key}); give all but one a workloadSelector",
                    scope.namespace
                ),
            );
        }
    }
    // Per workload (by key), the Sidecars with a selector that select it, in key order.
    let mut selecting: BTreeMap<String, Vec<(&String, &EgressScope)>> = BTreeMap::new();
    for (key, scope) in scopes {
        let Some(selector) = &scope.selector else {
            continue;
        };
        for workload in index.select(&scope.namespace, selector) {
            selecting
                .entry(format!("{}/{}", workload.namespace, workload.name))
                .or_default()
                .push((key, scope));
        }
    }
    for (workload, matching) in &selecting {
        report_conflict(workload, matching, diags);
    }
}

/// [`check_conflicts`] for some workloads only, when every other one is known to be selected by one Sidecar
/// at most.
pub(super) fn check_conflicts_of<'w>(
    scopes: &BTreeMap<String, EgressScope>,
    workloads: impl Iterator<Item = &'w Workload>,
    diags: &mut Diags<'_>,
) {
    for workload in workloads {
        let matching: Vec<(&String, &EgressScope)> = scopes
            .iter()
            .filter(|(_, scope)| {
                scope.namespace == workload.namespace
                    && scope
                        .selector
                        .as_ref()
                        .is_some_and(|selector| labels_match(selector, &workload.labels))
            })
            .collect();
        let key = format!("{}/{}", workload.namespace, workload.name);
        report_conflict(&key, &matching, diags);
    }
}

/// A workload selected by more than one Sidecar: an error on the second (in key order), naming the first.
fn report_conflict(workload: &str, matching: &[(&String, &EgressScope)], diags: &mut Diags<'_>) {
    if let [(first, _), (_, second), ..] = matching {
        diags.error(
            &second.meta,
            Code::ConflictingSidecarSelectors,
            "spec.workloadSelector",
            format!(
                "WorkloadEntry {workload} is selected by this Sidecar and by {first}; a workload may be selected by one Sidecar only"
            ),
        );
    }
}
