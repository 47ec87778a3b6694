//! Resolution of one reading after another, reusing what the previous reading resolved.
//!
//! A reading shares every resource of the files that did not change with the reading before it (the loader
//! hands out the same `Arc`s), so a step whose inputs are the very same resources, and whose earlier steps were
//! reused too, would produce exactly what it produced last time: its result and its diagnostics are taken as
//! they were. A VirtualService edit at 10,000 workloads then resolves only VirtualServices and what depends on
//! them, rather than every workload, ServiceEntry, DestinationRule, Gateway and Sidecar again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::vouched::Vouched;
use super::workload_index::WorkloadIndex;
use super::{
    check_names, destination_rule, gateway, same, service_entry, sidecar, virtual_service,
    workload_entry, Diags,
};
use crate::mesh::{
    labels_match, DestinationRule, Diagnostic, Labels, Mesh, Resolved, ResourceKey, Workload,
};
use crate::spec::{Config, ServiceEntry, Sourced};

/// Whether a Gateway selector selects the same application workloads (those a ServiceEntry selects) as in
/// the last reading, for workloads that did not change: no ServiceEntry added or removed selects a workload a
/// Gateway selector selects.
fn app_workloads_stand(
    before: &[Arc<Sourced<ServiceEntry>>],
    now: &[Arc<Sourced<ServiceEntry>>],
    workloads: &BTreeMap<String, Arc<Workload>>,
    gateway_selectors: &[&Labels],
) -> bool {
    if same(before, now) {
        return true;
    }
    let (was, is) = (Vouched::of(before), Vouched::of(now));
    let differing = now
        .iter()
        .filter(|se| !was.contains(se))
        .chain(before.iter().filter(|se| !is.contains(se)));
    differing
        .filter_map(|se| Some((se.namespace(), &se.value.workload_selector.as_ref()?.labels)))
        .all(|(namespace, selector)| {
            !workloads.values().any(|w| {
                w.namespace == namespace
                    && labels_match(selector, &w.labels)
                    && gateway_selectors.iter().any(|g| labels_match(g, &w.labels))
            })
        })
}

/// Resolves readings in turn. [`super::resolve`] is one reading with nothing before it.
#[derive(Debug, Default)]
pub struct Resolver {
    last: Option<Last>,
}

/// The last valid reading: its resources, its mesh, and each reusable step's diagnostics.
#[derive(Debug)]
struct Last {
    config: Config,
    mesh: Arc<Mesh>,
    diagnostics: Steps,
}

/// Per reusable step, the diagnostics it reported.
#[derive(Debug, Default)]
struct Steps {
    workloads: Vec<Diagnostic>,
    services: Vec<Diagnostic>,
    destination_rules: Vec<Diagnostic>,
    gateways: Vec<Diagnostic>,
    sidecars: Vec<Diagnostic>,
}

/// Runs a step, or takes its result and diagnostics from the last reading (`reuse`); either way records the
/// diagnostics it reported in `kept`.
fn step<T: Clone>(
    diags: &mut Diags<'_>,
    reuse: Option<(&T, &[Diagnostic])>,
    kept: &mut Vec<Diagnostic>,
    run: impl FnOnce(&mut Diags<'_>) -> T,
) -> T {
    match reuse {
        Some((output, diagnostics)) => {
            diags.list.extend_from_slice(diagnostics);
            kept.extend_from_slice(diagnostics);
            output.clone()
        }
        None => {
            let start = diags.list.len();
            let output = run(diags);
            kept.extend_from_slice(&diags.list[start..]);
            output
        }
    }
}

impl Resolver {
    /// Resolves and validates a whole configuration, as [`super::resolve`] does, with the same result.
    pub fn resolve(&mut self, config: &Config) -> Result<Resolved, Vec<Diagnostic>> {
        let last = self.last.as_ref();
        let mut diags = Diags::new(config);
        let mut steps = Steps::default();
        check_names(config, last.map(|l| &l.config), &mut diags);

        let reuse_workloads =
            last.filter(|l| same(&config.workload_entries, &l.config.workload_entries));
        let workloads = step(
            &mut diags,
            reuse_workloads.map(|l| (&l.mesh.workloads, &l.diagnostics.workloads[..])),
            &mut steps.workloads,
            |diags| {
                // The entries of the last valid reading keep their workloads (it had no diagnostics for them).
                let before = last.map(|l| workload_entry::Before {
                    entries: &l.config.workload_entries,
                    workloads: &l.mesh.workloads,
                });
                Arc::new(workload_entry::resolve(
                    &config.workload_entries,
                    before,
                    diags,
                ))
            },
        );
        // What a selector may now select differently: the workloads added, removed or changed since the last
        // valid reading (each as it was and as it is).
        let changed_workloads = last
            .filter(|l| !Arc::ptr_eq(&l.mesh.workloads, &workloads))
            .map(|l| workload_entry::changed(&l.mesh.workloads, &workloads));
        // Every step below that selects workloads depends on them.
        let last_with_same_workloads = reuse_workloads;
        // One index for every label selector below, built only if a step needs it.
        let index = std::cell::OnceCell::new();
        let index = || index.get_or_init(|| WorkloadIndex::new(&workloads));

        let reuse_services = last_with_same_workloads
            .filter(|l| same(&config.service_entries, &l.config.service_entries));
        let services = step(
            &mut diags,
            reuse_services.map(|l| (&l.mesh.services, &l.diagnostics.services[..])),
            &mut steps.services,
            |diags| {
                // The entries of the last valid reading that select none of the changed workloads keep their
                // services (it had no diagnostics for them).
                let kept = last.map(|l| service_entry::Kept {
                    entries: Vouched::of(&l.config.service_entries),
                    services: &l.mesh.services,
                    changed_workloads: changed_workloads.as_deref(),
                });
                Arc::new(service_entry::resolve(
                    &config.service_entries,
                    index,
                    kept.as_ref(),
                    diags,
                ))
            },
        );
        // The same DestinationRules resolve to the same rules: only their warnings read the services, and only
        // a rule whose host's service is another one (or is gone, or came) has other warnings than before.
        let destination_rules =
            match last.filter(|l| same(&config.destination_rules, &l.config.destination_rules)) {
                Some(l) => {
                    let other_service = |rule: &DestinationRule| match (
                        l.mesh.services.get(&rule.host),
                        services.get(&rule.host),
                    ) {
                        (Some(was), Some(is)) => !Arc::ptr_eq(was, is),
                        (was, is) => was.is_some() != is.is_some(),
                    };
                    let rewarned: BTreeSet<&ResourceKey> = l
                        .mesh
                        .destination_rules
                        .values()
                        .filter(|rule| other_service(rule))
                        .map(|rule| &rule.meta.resource)
                        .collect();
                    let kept = l.diagnostics.destination_rules.iter().filter(|d| {
                        !(destination_rule::SERVICE_WARNINGS.contains(&d.code)
                            && d.resource.as_ref().is_some_and(|r| rewarned.contains(r)))
                    });
                    steps.destination_rules.extend(kept.cloned());
                    let start = diags.list.len();
                    for rule in l
                        .mesh
                        .destination_rules
                        .values()
                        .filter(|r| other_service(r))
                    {
                        let service = services.get(&rule.host).map(|s| &**s);
                        destination_rule::warn_of_services(rule, service, &mut diags);
                    }
                    steps
                        .destination_rules
                        .extend_from_slice(&diags.list[start..]);
                    diags.list.truncate(start);
                    diags.list.extend_from_slice(&steps.destination_rules);
                    l.mesh.destination_rules.clone()
                }
                None => step(&mut diags, None, &mut steps.destination_rules, |diags| {
                    Arc::new(destination_rule::resolve(
                        &config.destination_rules,
                        &services,
                        diags,
                    ))
                }),
            };
        // What a selector of `namespace` (`None`: of any) selects is what it selected in the last reading.
        let selects_the_same = |namespace: Option<&str>, selector: &Labels| {
            changed_workloads
                .as_deref()
                .unwrap_or_default()
                .iter()
                .flat_map(|(was, is)| [was, is])
                .flatten()
                .all(|w| {
                    namespace.is_some_and(|n| n != w.namespace)
                        || !labels_match(selector, &w.labels)
                })
        };
        let gateways = step(
            &mut diags,
            // Gateways read the ServiceEntries as written, and the workloads (only to warn of a selector that
            // selects no gateway workload).
            last.filter(|l| {
                let gateway_selectors: Vec<&Labels> =
                    l.mesh.gateways.values().map(|g| &g.selector).collect();
                same(&config.gateways, &l.config.gateways)
                    && gateway_selectors.iter().all(|s| selects_the_same(None, s))
                    && app_workloads_stand(
                        &l.config.service_entries,
                        &config.service_entries,
                        &workloads,
                        &gateway_selectors,
                    )
            })
            .map(|l| (&l.mesh.gateways, &l.diagnostics.gateways[..])),
            &mut steps.gateways,
            |diags| {
                Arc::new(gateway::resolve(
                    &config.gateways,
                    index(),
                    &config.service_entries,
                    diags,
                ))
            },
        );
        // With the inferred destinations of the last reading: inference below replaces them all.
        // A Sidecar resolves from its resource alone; only which Sidecars select one workload reads the
        // workloads, and the last reading had no workload selected twice: only a changed one can be now.
        let reuse_sidecars = last.filter(|l| same(&config.sidecars, &l.config.sidecars));
        let sidecars = step(
            &mut diags,
            reuse_sidecars.map(|l| (&l.mesh.sidecars, &l.diagnostics.sidecars[..])),
            &mut steps.sidecars,
            |diags| Arc::new(sidecar::resolve(&config.sidecars, index(), diags)),
        );
        if let (Some(_), Some(changed)) = (reuse_sidecars, &changed_workloads) {
            let current = changed.iter().filter_map(|(_, is)| *is);
            sidecar::check_conflicts_of(&sidecars, current, &mut diags);
        }

        let mut mesh = Mesh {
            services,
            workloads,
            destination_rules,
            virtual_services: Vec::new(),
            gateways,
            sidecars,
        };
        // VirtualServices depend on everything above, and inference on them: always resolved (they are what
        // changes most, and cost little).
        mesh.virtual_services =
            virtual_service::resolve(&config.virtual_services, &mesh, &mut diags);
        sidecar::infer_destinations(&mut mesh, last.map(|l| &*l.mesh));

        let outcome = diags.finish(mesh, &config.skipped);
        if let Ok(resolved) = &outcome {
            self.last = Some(Last {
                config: config.clone(),
                mesh: resolved.mesh.clone(),
                diagnostics: steps,
            });
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::mesh::{resolve, Code};
    use crate::spec::{LoadOptions, Loader};

    const SIDECARS: &str = "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: by-app}
spec:
  workloadSelector: {labels: {app: shop}}
  egress: [{hosts: ['./*']}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: by-tier}
spec:
  workloadSelector: {labels: {tier: front}}
  egress: [{hosts: ['./*']}]
";

    const GATEWAY: &str = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  selector: {app: edge}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ['*']}]
";

    fn workload(name: &str, labels: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: {name}}}
spec: {{address: 127.0.0.9, labels: {{{labels}}}}}
"
        )
    }

    /// Reads `dir` as the server does, in turn after earlier readings, and from scratch: both must agree.
    fn read(
        loader: &mut Loader,
        resolver: &mut Resolver,
        dir: &Path,
    ) -> Result<Resolved, Vec<Diagnostic>> {
        let config = loader.load_paths(&[dir.to_path_buf()]).unwrap();
        let in_turn = resolver.resolve(&config);
        let scratch = resolve(&config);
        assert_eq!(
            in_turn.as_ref().map(|r| (&r.mesh, &r.warnings)),
            scratch.as_ref().map(|r| (&r.mesh, &r.warnings)),
            "a reading resolved in turn differs from one resolved from scratch"
        );
        in_turn
    }

    /// The Sidecars are the very ones of the last reading; a relabelled workload is now selected by two.
    #[test]
    fn a_workload_relabelled_into_two_kept_sidecars_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sidecars.yaml"), SIDECARS).unwrap();
        std::fs::write(dir.path().join("shop.yaml"), workload("shop", "app: shop")).unwrap();
        let (mut loader, mut resolver) = (Loader::new(LoadOptions::default()), Resolver::default());
        read(&mut loader, &mut resolver, dir.path()).expect("one Sidecar selects the workload");
        std::fs::write(
            dir.path().join("shop.yaml"),
            workload("shop", "app: shop, tier: front"),
        )
        .unwrap();
        let errors = read(&mut loader, &mut resolver, dir.path()).expect_err("selected twice");
        assert!(errors
            .iter()
            .any(|d| d.code == Code::ConflictingSidecarSelectors));
    }

    /// The Gateway and the ServiceEntries are the very ones of the last reading; a workload that its selector
    /// selects arrives, and the warning that it selects nothing goes.
    #[test]
    fn a_kept_gateway_sees_a_workload_arrive() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("gateway.yaml"), GATEWAY).unwrap();
        std::fs::write(dir.path().join("shop.yaml"), workload("shop", "app: shop")).unwrap();
        let (mut loader, mut resolver) = (Loader::new(LoadOptions::default()), Resolver::default());
        let warned = |r: &Resolved| {
            r.warnings
                .iter()
                .any(|d| d.code == Code::GatewaySelectsNothing)
        };
        let first = read(&mut loader, &mut resolver, dir.path()).unwrap();
        assert!(warned(&first));
        std::fs::write(dir.path().join("edge.yaml"), workload("edge", "app: edge")).unwrap();
        let second = read(&mut loader, &mut resolver, dir.path()).unwrap();
        assert!(!warned(&second));
    }

    /// A new file defines a workload the kept one defines too, and comes first: the kept one is the later
    /// definition, and is reported.
    #[test]
    fn a_new_resource_named_as_a_kept_one_is_reported_on_the_later() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.yaml"), workload("shop", "app: shop")).unwrap();
        let (mut loader, mut resolver) = (Loader::new(LoadOptions::default()), Resolver::default());
        read(&mut loader, &mut resolver, dir.path()).unwrap();
        std::fs::write(dir.path().join("a.yaml"), workload("shop", "app: shop")).unwrap();
        let errors = read(&mut loader, &mut resolver, dir.path()).expect_err("defined twice");
        let duplicate = errors
            .iter()
            .find(|d| d.code == Code::DuplicateResource)
            .expect("reported");
        assert!(duplicate.file.ends_with("m.yaml"), "{duplicate}");
        assert!(duplicate.message.contains("a.yaml"), "{duplicate}");
    }

    /// One WorkloadEntry file removed and another added, the rest kept; then one edited: the workloads follow.
    #[test]
    fn workloads_follow_entries_removed_added_and_edited() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a", "b", "c", "d"] {
            std::fs::write(
                dir.path().join(format!("{name}.yaml")),
                workload(name, "app: shop"),
            )
            .unwrap();
        }
        let (mut loader, mut resolver) = (Loader::new(LoadOptions::default()), Resolver::default());
        read(&mut loader, &mut resolver, dir.path()).unwrap();
        std::fs::remove_file(dir.path().join("b.yaml")).unwrap();
        std::fs::write(dir.path().join("e.yaml"), workload("e", "app: shop")).unwrap();
        let mesh = read(&mut loader, &mut resolver, dir.path()).unwrap().mesh;
        let names: Vec<&str> = mesh.workloads.keys().map(String::as_str).collect();
        assert_eq!(names, ["default/a", "default/c", "default/d", "default/e"]);
        std::fs::write(dir.path().join("c.yaml"), workload("c", "app: cart")).unwrap();
        let mesh = read(&mut loader, &mut resolver, dir.path()).unwrap().mesh;
        assert_eq!(
            mesh.workloads["default/c"]
                .labels
                .get("app")
                .map(String::as_str),
            Some("cart")
        );
    }

    /// Two new entries named alike beside a kept one: the first is the workload, as from scratch, and two
    /// Sidecars select it; the first without an address: the second is. Each error is reported once.
    #[test]
    fn of_new_entries_named_alike_the_first_is_the_workload() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sidecars.yaml"), SIDECARS).unwrap();
        std::fs::write(dir.path().join("a.yaml"), workload("a", "app: shop")).unwrap();
        let (mut loader, mut resolver) = (Loader::new(LoadOptions::default()), Resolver::default());
        read(&mut loader, &mut resolver, dir.path()).unwrap();
        std::fs::write(
            dir.path().join("b.yaml"),
            workload("shop", "app: shop, tier: front"),
        )
        .unwrap();
        std::fs::write(dir.path().join("c.yaml"), workload("shop", "app: shop")).unwrap();
        let errors = read(&mut loader, &mut resolver, dir.path()).expect_err("defined twice");
        let codes: Vec<Code> = errors.iter().map(|d| d.code).collect();
        assert!(
            codes.contains(&Code::ConflictingSidecarSelectors),
            "{codes:?}"
        );

        std::fs::remove_file(dir.path().join("b.yaml")).unwrap();
        std::fs::remove_file(dir.path().join("c.yaml")).unwrap();
        read(&mut loader, &mut resolver, dir.path()).unwrap();
        let no_address = "apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: shop}
spec: {labels: {app: shop}}
";
        std::fs::write(dir.path().join("b.yaml"), no_address).unwrap();
        std::fs::write(
            dir.path().join("c.yaml"),
            workload("shop", "app: shop, tier: front"),
        )
        .unwrap();
        let errors = read(&mut loader, &mut resolver, dir.path()).expect_err("invalid");
        let codes: Vec<Code> = errors.iter().map(|d| d.code).collect();
        assert!(codes.contains(&Code::MissingField), "{codes:?}");
        assert!(
            codes.contains(&Code::ConflictingSidecarSelectors),
            "{codes:?}"
        );

        // A new entry without an address, and another named as the kept one: each reported once.
        std::fs::remove_file(dir.path().join("c.yaml")).unwrap();
        std::fs::write(dir.path().join("d.yaml"), workload("a", "app: shop")).unwrap();
        let errors = read(&mut loader, &mut resolver, dir.path()).expect_err("invalid");
        let missing = errors
            .iter()
            .filter(|d| d.code == Code::MissingField)
            .count();
        assert_eq!(missing, 1, "{errors:?}");
    }

    /// Two new entries whose namespace and name would join into one key (`a/b` + `c`, `a` + `b/c`) beside a
    /// kept one: both are reported, as from scratch, and neither is silently left out.
    #[test]
    fn names_with_a_slash_are_reported_in_turn_as_from_scratch() {
        let entry = |namespace: &str, name: &str| {
            format!(
                "apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: '{name}', namespace: '{namespace}'}}
spec: {{address: 127.0.0.9, labels: {{app: shop}}}}
"
            )
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k.yaml"), workload("kept", "app: shop")).unwrap();
        let (mut loader, mut resolver) = (Loader::new(LoadOptions::default()), Resolver::default());
        read(&mut loader, &mut resolver, dir.path()).unwrap();
        std::fs::write(dir.path().join("a.yaml"), entry("a/b", "c")).unwrap();
        std::fs::write(dir.path().join("b.yaml"), entry("a", "b/c")).unwrap();
        let errors = read(&mut loader, &mut resolver, dir.path()).expect_err("invalid names");
        let fields: Vec<&str> = errors
            .iter()
            .filter(|d| d.code == Code::InvalidName)
            .map(|d| d.field.as_str())
            .collect();
        assert_eq!(
            fields,
            ["metadata.namespace", "metadata.name"],
            "{errors:?}"
        );
    }

    /// A new file, read first, defines the kept workload again with other labels: from scratch its definition
    /// is the workload (the later one is the duplicate), and two Sidecars select it.
    #[test]
    fn a_new_entry_named_as_a_kept_one_comes_first() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sidecars.yaml"), SIDECARS).unwrap();
        std::fs::write(dir.path().join("m.yaml"), workload("shop", "app: shop")).unwrap();
        let (mut loader, mut resolver) = (Loader::new(LoadOptions::default()), Resolver::default());
        read(&mut loader, &mut resolver, dir.path()).unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            workload("shop", "app: shop, tier: front"),
        )
        .unwrap();
        let errors = read(&mut loader, &mut resolver, dir.path()).expect_err("defined twice");
        assert!(errors
            .iter()
            .any(|d| d.code == Code::ConflictingSidecarSelectors));
    }

    /// The Gateway and the workloads are the very ones of the last reading; a new ServiceEntry selects the
    /// workload the Gateway selected, which is then an application's, and the warning comes.
    #[test]
    fn a_kept_gateway_loses_its_workload_to_a_new_service() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("gateway.yaml"), GATEWAY).unwrap();
        std::fs::write(dir.path().join("edge.yaml"), workload("edge", "app: edge")).unwrap();
        let (mut loader, mut resolver) = (Loader::new(LoadOptions::default()), Resolver::default());
        let warned = |r: &Resolved| {
            r.warnings
                .iter()
                .any(|d| d.code == Code::GatewaySelectsNothing)
        };
        assert!(!warned(
            &read(&mut loader, &mut resolver, dir.path()).unwrap()
        ));
        let service = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: edge}
spec:
  hosts: [edge.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: edge}}
";
        std::fs::write(dir.path().join("service.yaml"), service).unwrap();
        assert!(warned(
            &read(&mut loader, &mut resolver, dir.path()).unwrap()
        ));
    }
}
