//! `spec::Config` → `Mesh`, one file per kind, in dependency order: workloads, services, destination rules,
//! gateways, virtual services. Each step reads what the earlier ones built and reports into one [`Diags`].

mod destination_rule;
mod gateway;
mod resolver;
mod service_entry;
mod sidecar;
mod validate;
mod virtual_service;
mod vouched;
mod workload_entry;
mod workload_index;

pub use resolver::Resolver;
use vouched::Vouched;

use crate::mesh::Code;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{Diagnostic, Mesh, Meta, Resolved, Severity};
use std::path::Path;

use crate::spec::{Config, Kind, Source, Sourced};

/// Resolves and validates a whole configuration. Errors make the result `Err` with every diagnostic found
/// (warnings included); otherwise the mesh comes with the warnings.
pub fn resolve(config: &Config) -> Result<Resolved, Vec<Diagnostic>> {
    Resolver::default().resolve(config)
}

/// Collects diagnostics for the whole resolution, each placed on the line of its field when the document's
/// text shows it (otherwise on the document's first line).
pub(crate) struct Diags<'a> {
    list: Vec<Diagnostic>,
    config: &'a Config,
    /// Each document's text by file and position, built at the first diagnostic: most readings have none, and
    /// at 10,000 resources building it took a fifth of the resolution.
    sources: Option<BTreeMap<(&'a Path, usize), &'a Source>>,
}

impl<'a> Diags<'a> {
    fn new(config: &'a Config) -> Diags<'a> {
        Diags {
            list: Vec::new(),
            config,
            sources: None,
        }
    }

    fn sources(&mut self) -> &BTreeMap<(&'a Path, usize), &'a Source> {
        fn add<'a, T>(
            items: &'a [Arc<Sourced<T>>],
            out: &mut BTreeMap<(&'a Path, usize), &'a Source>,
        ) {
            for i in items {
                out.insert((i.origin.file.as_path(), i.origin.doc_index), &i.source);
            }
        }
        let config = self.config;
        self.sources.get_or_insert_with(|| {
            let mut sources = BTreeMap::new();
            add(&config.virtual_services, &mut sources);
            add(&config.destination_rules, &mut sources);
            add(&config.gateways, &mut sources);
            add(&config.service_entries, &mut sources);
            add(&config.workload_entries, &mut sources);
            add(&config.sidecars, &mut sources);
            sources
        })
    }

    pub(crate) fn error(
        &mut self,
        at: &Meta,
        code: Code,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.push(Severity::Error, at, code, field, message);
    }

    pub(crate) fn warn(
        &mut self,
        at: &Meta,
        code: Code,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.push(Severity::Warning, at, code, field, message);
    }

    fn push(
        &mut self,
        severity: Severity,
        at: &Meta,
        code: Code,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        let field = field.into();
        let mut d = Diagnostic::new(
            severity,
            code,
            &at.origin,
            &at.resource,
            field.as_str(),
            message,
        );
        if let Some(line) = self
            .sources()
            .get(&(at.origin.file.as_path(), at.origin.doc_index))
            .and_then(|s| s.line_of(&field))
        {
            d.line = line;
        }
        self.list.push(d);
    }

    /// The outcome of a resolution that built `mesh`: every diagnostic (with the paths the loader skipped) in file
    /// and line order, and the mesh only if none is an error.
    fn finish(
        self,
        mesh: Mesh,
        skipped: &[crate::spec::LoadError],
    ) -> Result<Resolved, Vec<Diagnostic>> {
        let mut list = self.list;
        list.extend(skipped.iter().cloned().map(Diagnostic::from));
        list.sort_by(|a, b| {
            (&a.file, a.line, &a.field, a.code.as_str()).cmp(&(
                &b.file,
                b.line,
                &b.field,
                b.code.as_str(),
            ))
        });
        if list.iter().any(Diagnostic::is_error) {
            Err(list)
        } else {
            Ok(Resolved {
                mesh: Arc::new(mesh),
                warnings: list,
            })
        }
    }

    /// Number of errors so far; callers compare before/after to know whether a resource was clean.
    pub(crate) fn error_count(&self) -> usize {
        self.list.iter().filter(|d| d.is_error()).count()
    }
}

pub(crate) fn meta_of<T>(item: &Sourced<T>, kind: Kind) -> Meta {
    Meta {
        resource: item.key(kind),
        origin: item.origin.clone(),
    }
}

/// SY0128 on a name or namespace that is empty or holds a `/`, which Kubernetes refuses (a name is a path
/// segment): `a/b` + `c` and `a` + `b/c` would be one `namespace/name` key, and one of the two resources would
/// silently be left out wherever resources are keyed so.
fn check_name<T>(item: &Sourced<T>, kind: Kind, diags: &mut Diags<'_>) {
    for (field, value) in [
        ("metadata.name", item.metadata.name.as_str()),
        ("metadata.namespace", item.namespace()),
    ] {
        if value.is_empty() || value.contains('/') {
            diags.error(
                &meta_of(item, kind),
                Code::InvalidName,
                field,
                format!(
                    "{value:?} is not a valid {field}: it must be a non-empty name without '/'"
                ),
            );
        }
    }
}

/// Every resource's name: SY0128 for one that is not a name ([`check_name`]), and SY0104 for the same
/// kind/namespace/name twice, reported on the later definition, naming the earlier one.
/// A kind whose resources are the very ones of `last`, the last valid reading, has none: that reading had
/// none. Nor do two resources both of that reading: a duplicate has one that is not (a new one). When only a
/// few are new, only their names are looked for, in one walk through the kind each. Each name is checked
/// first ([`check_name`]), only the new ones' when only a few are new (the last valid reading's were valid).
fn check_names(config: &Config, last: Option<&Config>, diags: &mut Diags<'_>) {
    /// New resources beyond this many: every name is put in a map instead.
    const FEW: usize = 32;
    fn name_of<T>(item: &Sourced<T>) -> (&str, &str) {
        (item.namespace(), item.metadata.name.as_str())
    }
    fn check<T>(
        items: &[Arc<Sourced<T>>],
        last: Option<&[Arc<Sourced<T>>]>,
        kind: Kind,
        diags: &mut Diags<'_>,
    ) {
        let report = |item: &Sourced<T>, first: &Sourced<T>, diags: &mut Diags<'_>| {
            diags.error(
                &meta_of(item, kind),
                Code::DuplicateResource,
                "metadata.name",
                format!(
                    "{} is defined twice: here and at {} (delete one of them)",
                    item.key(kind),
                    first.origin
                ),
            );
        };
        if let Some(last) = last {
            if same(items, last) {
                return;
            }
            let vouched = Vouched::of(last);
            let new: Vec<&Sourced<T>> = items
                .iter()
                .filter(|item| !vouched.contains(item))
                .map(|item| &**item)
                .take(FEW + 1)
                .collect();
            if new.len() <= FEW {
                for item in &new {
                    check_name(item, kind, diags);
                }
                let names: BTreeSet<(&str, &str)> = new.iter().map(|item| name_of(item)).collect();
                let mut first: BTreeMap<(&str, &str), &Sourced<T>> = BTreeMap::new();
                for item in items.iter().filter(|item| names.contains(&name_of(item))) {
                    match first.get(&name_of(item)) {
                        Some(earlier) => report(item, earlier, diags),
                        None => {
                            first.insert(name_of(item), item);
                        }
                    }
                }
                return;
            }
        }
        for item in items {
            check_name(item, kind, diags);
        }
        let mut seen: BTreeMap<(&str, &str), &Sourced<T>> = BTreeMap::new();
        for item in items {
            match seen.get(&name_of(item)) {
                Some(first) => report(item, first, diags),
                None => {
                    seen.insert(name_of(item), item);
                }
            }
        }
    }
    // Each kind against the same kind of the last valid reading.
    macro_rules! check_kind {
        ($($field:ident: $kind:ident),*) => {
            $(check(&config.$field, last.map(|l| &l.$field[..]), Kind::$kind, diags);)*
        };
    }
    check_kind!(
        virtual_services: VirtualService,
        destination_rules: DestinationRule,
        gateways: Gateway,
        service_entries: ServiceEntry,
        workload_entries: WorkloadEntry,
        sidecars: Sidecar
    );
}

/// The same resources in the same order: the same allocations, not merely equal values.
fn same<T>(a: &[Arc<Sourced<T>>], b: &[Arc<Sourced<T>>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y))
}
