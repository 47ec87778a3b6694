//! The resolved mesh: plain, immutable data with every name resolved and every value parsed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

/// The names of user objects, carried unchanged for provenance (`Meta`, diagnostics). Re-exported so that
/// `translate` names them through the mesh and depends on nothing before it.
pub use crate::spec::{Kind, Origin, ResourceKey};

pub type Labels = BTreeMap<String, String>;

/// A match on a string, as resolution leaves it: one of `exact`, `prefix` or a validated `regex`, or `Present`
/// ("the value is there"; Istio's empty `{}` and regex `*`). The mesh's own type, so that a change to how Istio's
/// YAML spells a match stops at resolution.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Regex(String),
    Present,
}

/// Which user object a model node came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Meta {
    pub resource: ResourceKey,
    pub origin: Origin,
}

impl Meta {
    /// Istio's `/apis/networking.istio.io/v1/namespaces/<ns>/<kind>/<name>`, stamped on routes and clusters.
    pub fn istio_config_path(&self) -> String {
        super::names::istio_config_path(
            self.resource.kind.istio_path_segment(),
            &self.resource.namespace,
            &self.resource.name,
        )
    }
}

/// A resolved configuration. Each part is shared: a reading that did not change a part shares it with the mesh
/// before it (`Resolver`), and comparing two meshes' parts then costs a pointer comparison (`Arc`'s equality
/// looks at the address first).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Mesh {
    /// By FQDN (ServiceEntry hosts, verbatim).
    pub services: Arc<BTreeMap<String, Arc<Service>>>,
    /// By `namespace/name`.
    pub workloads: Arc<BTreeMap<String, Arc<Workload>>>,
    /// By the FQDN of their host.
    pub destination_rules: Arc<BTreeMap<String, DestinationRule>>,
    /// Sorted by namespace, then name.
    pub virtual_services: Vec<VirtualService>,
    /// By `namespace/name`.
    pub gateways: Arc<BTreeMap<String, Gateway>>,
    /// `Sidecar` resources, by `namespace/name`.
    pub sidecars: Arc<BTreeMap<String, EgressScope>>,
}

/// The keys whose entries differ between two maps of shared values (added, removed, or another value), in key
/// order: one walk through both, each value compared by address first. What a change to a few of 10,000
/// workloads touches, without looking each of them up.
pub fn changed_keys<'m, V: PartialEq>(
    before: &'m BTreeMap<String, Arc<V>>,
    now: &'m BTreeMap<String, Arc<V>>,
) -> Vec<&'m str> {
    use std::cmp::Ordering;
    let mut changed = Vec::new();
    if std::ptr::eq(before, now) {
        return changed;
    }
    let (mut before, mut now) = (before.iter().peekable(), now.iter().peekable());
    loop {
        let order = match (before.peek(), now.peek()) {
            (None, None) => return changed,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((old_key, _)), Some((new_key, _))) => old_key.cmp(new_key),
        };
        match order {
            Ordering::Less => changed.extend(before.next().map(|(key, _)| key.as_str())),
            Ordering::Greater => changed.extend(now.next().map(|(key, _)| key.as_str())),
            Ordering::Equal => {
                if let (Some((key, was)), Some((_, is))) = (before.next(), now.next()) {
                    if was != is {
                        changed.push(key.as_str());
                    }
                }
            }
        }
    }
}

/// A `Sidecar` resource: the services the sidecars it applies to may reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EgressScope {
    pub meta: Meta,
    pub namespace: String,
    /// `None`: every workload of the namespace that no Sidecar with a selector claims.
    pub selector: Option<Labels>,
    /// From `egress[].hosts`; `None` (no `egress`) admits every service, an empty list none.
    pub hosts: Option<Vec<EgressHost>>,
    /// Services admitted because a VirtualService the egress hosts admit routes or mirrors to them, as Istio
    /// infers them: the sidecar can then reach every destination of the routes it is given.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub inferred: BTreeSet<String>,
}

/// One `namespace/dnsName` of a Sidecar's egress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EgressHost {
    /// `None` for `*` (any namespace); `.` is already the Sidecar's own namespace. `~` is never stored: it
    /// admits nothing.
    pub namespace: Option<String>,
    /// `*`, `*.suffix`, or a host name.
    pub host: String,
}

impl EgressScope {
    /// Istio's egress host matching: the service's namespace against the namespace part, its host name
    /// against the host part.
    pub fn sees(&self, service: &Service) -> bool {
        self.admits(&service.namespace, &service.hostname)
            || self.inferred.contains(&service.hostname)
    }

    /// Whether the egress hosts admit `host` of a resource in `namespace`.
    pub fn admits(&self, namespace: &str, host: &str) -> bool {
        self.hosts.as_ref().is_none_or(|hosts| {
            hosts.iter().any(|h| {
                h.namespace.as_deref().is_none_or(|ns| ns == namespace)
                    && host_matches(&h.host, host)
            })
        })
    }
}

/// `*` matches every host, `*.suffix` every host ending in `.suffix`, anything else only itself.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some("") => true,
        Some(suffix) => host.ends_with(suffix),
        None => pattern.eq_ignore_ascii_case(host),
    }
}

/// Where Istio looks for the mesh-wide default Sidecar (`meshConfig.rootNamespace`).
pub const ROOT_NAMESPACE: &str = "istio-system";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    pub meta: Meta,
    pub hostname: String,
    pub namespace: String,
    pub addresses: Vec<String>,
    pub ports: Vec<ServicePort>,
    pub resolution: Resolution,
    pub endpoints: Vec<Endpoint>,
}

impl Service {
    pub fn port(&self, number: u32) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.number == number)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Resolution {
    /// Endpoints are IP addresses, delivered over EDS.
    Static,
    /// Endpoints are host names Envoy resolves itself (STRICT_DNS).
    Dns,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServicePort {
    pub number: u32,
    pub name: String,
    pub target_port: Option<u32>,
}

/// One instance of a service, from a ServiceEntry's `endpoints` or a WorkloadEntry it selects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub address: String,
    pub ports: BTreeMap<String, u32>,
    pub labels: Labels,
    pub weight: Option<u32>,
    pub locality: Option<String>,
    /// `namespace/name` of the WorkloadEntry, when the endpoint is one.
    pub workload: Option<String>,
}

impl Endpoint {
    /// The port this endpoint serves `port` on: its named port, else the service's targetPort, else the port.
    pub fn port_for(&self, port: &ServicePort) -> u32 {
        self.ports
            .get(&port.name)
            .copied()
            .or(port.target_port)
            .unwrap_or(port.number)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workload {
    pub meta: Meta,
    pub namespace: String,
    pub name: String,
    pub address: String,
    pub ports: BTreeMap<String, u32>,
    pub labels: Labels,
    pub weight: Option<u32>,
    pub locality: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestinationRule {
    pub meta: Meta,
    pub host: String,
    pub traffic_policy: TrafficPolicy,
    pub subsets: Vec<Subset>,
}

impl DestinationRule {
    pub fn subset(&self, name: &str) -> Option<&Subset> {
        self.subsets.iter().find(|s| s.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subset {
    pub name: String,
    pub labels: Labels,
    pub traffic_policy: Option<TrafficPolicy>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TrafficPolicy {
    pub settings: PolicySettings,
    pub port_level: Vec<(u32, PolicySettings)>,
}

impl TrafficPolicy {
    /// Istio's `GetPortLevelTrafficPolicy`: the port-level settings for `port` (and `true`) if any, else the
    /// policy-wide settings.
    pub fn for_port(&self, port: u32) -> (&PolicySettings, bool) {
        match self.port_level.iter().find(|(n, _)| *n == port) {
            Some((_, p)) => (p, true),
            None => (&self.settings, false),
        }
    }
}

/// The parts of a traffic policy that merge field by field (Istio's `MergeTrafficPolicy`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicySettings {
    pub load_balancer: Option<LoadBalancer>,
    pub connection_pool: Option<ConnectionPool>,
    pub outlier_detection: Option<OutlierDetection>,
}

impl PolicySettings {
    /// `top` wins wherever it says something.
    pub fn overridden_by(&self, top: &PolicySettings) -> PolicySettings {
        PolicySettings {
            load_balancer: top
                .load_balancer
                .clone()
                .or_else(|| self.load_balancer.clone()),
            connection_pool: top
                .connection_pool
                .clone()
                .or_else(|| self.connection_pool.clone()),
            outlier_detection: top
                .outlier_detection
                .clone()
                .or_else(|| self.outlier_detection.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum LoadBalancer {
    RoundRobin,
    LeastRequest,
    Random,
    /// Istio's PASSTHROUGH: send to the address the client asked for.
    Passthrough,
    ConsistentHash(ConsistentHash),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsistentHash {
    pub key: HashKey,
    pub algorithm: HashAlgorithm,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum HashKey {
    Header(String),
    Cookie {
        name: String,
        path: Option<String>,
        ttl: Option<Duration>,
    },
    SourceIp,
    QueryParameter(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum HashAlgorithm {
    RingHash { minimum_ring_size: Option<u64> },
    Maglev { table_size: Option<u64> },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConnectionPool {
    pub max_connections: Option<u32>,
    pub connect_timeout: Option<Duration>,
    pub max_connection_duration: Option<Duration>,
    pub http1_max_pending_requests: Option<u32>,
    pub http2_max_requests: Option<u32>,
    pub max_requests_per_connection: Option<u32>,
    pub max_retries: Option<u32>,
    pub idle_timeout: Option<Duration>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutlierDetection {
    pub consecutive_5xx_errors: Option<u32>,
    pub consecutive_gateway_errors: Option<u32>,
    pub interval: Option<Duration>,
    pub base_ejection_time: Option<Duration>,
    pub max_ejection_percent: Option<u32>,
    pub min_health_percent: Option<u32>,
}

/// A reference from a VirtualService to where it applies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum GatewayRef {
    /// Istio's reserved `mesh`: every sidecar.
    Mesh,
    /// `namespace/name` of a Gateway.
    Gateway(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VirtualService {
    pub meta: Meta,
    /// FQDNs (short names expanded), or `*`-style wildcards for gateway-bound services.
    pub hosts: Vec<String>,
    pub gateways: Vec<GatewayRef>,
    pub http: Vec<HttpRoute>,
}

impl VirtualService {
    /// Every host its routes send or mirror traffic to.
    pub fn referenced_hosts(&self) -> impl Iterator<Item = &str> + '_ {
        self.http.iter().flat_map(|http| {
            let routed = match &http.action {
                RouteAction::Route(destinations) => destinations
                    .iter()
                    .map(|d| d.destination.host.as_str())
                    .collect(),
                RouteAction::Redirect(_) | RouteAction::DirectResponse { .. } => Vec::new(),
            };
            routed
                .into_iter()
                .chain(http.mirrors.iter().map(|m| m.destination.host.as_str()))
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpRoute {
    pub name: Option<String>,
    /// Empty means "match everything".
    pub matches: Vec<RouteMatch>,
    pub action: RouteAction,
    pub timeout: Option<Duration>,
    pub retries: Retries,
    pub fault: Option<Fault>,
    pub headers: HeaderOperations,
    pub rewrite: Option<Rewrite>,
    pub mirrors: Vec<Mirror>,
    pub cors: Option<Cors>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RouteMatch {
    pub name: Option<String>,
    pub uri: Option<StringMatch>,
    pub scheme: Option<StringMatch>,
    pub method: Option<StringMatch>,
    pub authority: Option<StringMatch>,
    /// Sorted by name.
    pub headers: Vec<(String, StringMatch)>,
    pub without_headers: Vec<(String, StringMatch)>,
    pub query_params: Vec<(String, StringMatch)>,
    pub port: Option<u32>,
    pub source_labels: Labels,
    pub source_namespace: Option<String>,
    pub gateways: Vec<GatewayRef>,
    pub ignore_uri_case: bool,
}

impl RouteMatch {
    /// Matches every request that reaches it (Istio's `isCatchAllMatch`): routes after it are unreachable.
    pub fn is_catch_all(&self) -> bool {
        let uri_all = match &self.uri {
            None => true,
            Some(StringMatch::Prefix(p)) => p == "/",
            Some(StringMatch::Regex(r)) => r == ".*",
            Some(StringMatch::Present) => true,
            Some(StringMatch::Exact(_)) => false,
        };
        uri_all
            && self.scheme.is_none()
            && self.method.is_none()
            && self.authority.is_none()
            && self.headers.is_empty()
            && self.without_headers.is_empty()
            && self.query_params.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum RouteAction {
    /// Weighted destinations; weight-0 entries already dropped, at least one left.
    Route(Vec<RouteDestination>),
    Redirect(Redirect),
    DirectResponse {
        status: u32,
        body: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Destination {
    /// FQDN of a service in the mesh.
    pub host: String,
    pub subset: Option<String>,
    /// Explicit port; when absent the service's only port, else the listener port.
    pub port: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteDestination {
    pub destination: Destination,
    pub weight: u32,
    pub headers: HeaderOperations,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HeaderOperations {
    pub request: HeaderOps,
    pub response: HeaderOps,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HeaderOps {
    pub set: BTreeMap<String, String>,
    pub add: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Redirect {
    pub uri: Option<String>,
    pub authority: Option<String>,
    pub port: Option<u32>,
    pub scheme: Option<String>,
    pub code: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rewrite {
    pub uri: Option<String>,
    pub authority: Option<String>,
    /// `(pattern, substitution)`.
    pub uri_regex: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Retries {
    /// Istio's mesh-wide default policy.
    Default,
    /// `attempts: 0`.
    Disabled,
    Policy(RetryPolicy),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub per_try_timeout: Option<Duration>,
    /// Envoy `retry_on` conditions (status codes split out).
    pub retry_on: Vec<String>,
    pub retriable_status_codes: Vec<u32>,
    pub retry_remote_localities: bool,
    pub ignore_previous_hosts: bool,
    pub backoff: Option<Duration>,
}

/// A fraction in millionths (Istio's `percentage.value * 10000` over Envoy's MILLION denominator).
pub type PerMillion = u32;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fault {
    pub delay: Option<FaultDelay>,
    pub abort: Option<FaultAbort>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultDelay {
    pub fixed_delay: Duration,
    pub percentage: PerMillion,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum AbortStatus {
    Http(u32),
    Grpc(u32),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultAbort {
    pub status: AbortStatus,
    pub percentage: PerMillion,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mirror {
    pub destination: Destination,
    pub percentage: PerMillion,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cors {
    pub allow_origins: Vec<StringMatch>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: Option<Duration>,
    pub allow_credentials: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gateway {
    pub meta: Meta,
    pub selector: Labels,
    pub servers: Vec<GatewayServer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayServer {
    pub port: u32,
    pub port_name: Option<String>,
    /// Host patterns with any `namespace/` prefix removed.
    pub hosts: Vec<String>,
}

/// `selector ⊆ labels`: Kubernetes label-selector semantics (an empty selector selects everything).
pub fn labels_match(selector: &Labels, labels: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The Sidecar resources indexed so that deciding which applies to a workload looks at the few that could,
/// not at every one: [`Mesh::egress_scope_for`] walks them all, which for every workload of a mesh with a Sidecar
/// per service is workloads x Sidecars (10,000 x 1,000 label matches when a Sidecar is added). Same answers.
#[derive(Debug)]
pub struct EgressIndex<'m> {
    /// Sidecars with a selector, each key with its selector: those with a non-empty one by namespace and the
    /// first label of the selector (a workload they match carries it), those with an empty one (it matches
    /// every workload) by namespace alone. Each list in key order.
    by_label: BTreeMap<(&'m str, &'m str, &'m str), Vec<Selecting<'m>>>,
    select_all: BTreeMap<&'m str, Vec<Selecting<'m>>>,
    /// Per namespace, the first Sidecar without a selector.
    namespace_default: BTreeMap<&'m str, &'m str>,
}

/// A Sidecar's key and its selector.
type Selecting<'m> = (&'m str, &'m Labels);

impl<'m> EgressIndex<'m> {
    fn new(mesh: &'m Mesh) -> EgressIndex<'m> {
        let mut index = EgressIndex {
            by_label: BTreeMap::new(),
            select_all: BTreeMap::new(),
            namespace_default: BTreeMap::new(),
        };
        for (key, sidecar) in mesh.sidecars.iter() {
            let namespace = sidecar.namespace.as_str();
            match &sidecar.selector {
                None => {
                    index.namespace_default.entry(namespace).or_insert(key);
                }
                Some(selector) => {
                    let list = match selector.iter().next() {
                        Some((label, value)) => {
                            index.by_label.entry((namespace, label, value)).or_default()
                        }
                        None => index.select_all.entry(namespace).or_default(),
                    };
                    list.push((key, selector));
                }
            }
        }
        index
    }

    /// What [`Mesh::egress_scope_for`] answers.
    pub fn scope_for(&self, namespace: &str, labels: &Labels) -> Option<&'m str> {
        let selecting = labels
            .iter()
            .filter_map(|(label, value)| {
                self.by_label
                    .get(&(namespace, label.as_str(), value.as_str()))
            })
            .chain(self.select_all.get(namespace))
            .flatten()
            .filter(|(_, selector)| labels_match(selector, labels))
            .map(|(key, _)| *key)
            // The first in key order, as a walk of every Sidecar finds it.
            .min();
        selecting
            .or_else(|| self.namespace_default.get(namespace).copied())
            .or_else(|| self.namespace_default.get(ROOT_NAMESPACE).copied())
    }
}

/// One outbound cluster: a service port, narrowed to a DestinationRule subset or not.
#[derive(Debug, Clone, Copy)]
pub struct OutboundCluster<'a> {
    pub service: &'a Service,
    pub port: &'a ServicePort,
    pub subset: Option<&'a str>,
    /// The service's DestinationRule, if it has one.
    pub rule: Option<&'a DestinationRule>,
}

impl OutboundCluster<'_> {
    /// `outbound|<port>|<subset>|<host>`.
    pub fn name(&self) -> String {
        crate::mesh::names::ClusterName::outbound(
            self.port.number,
            self.subset,
            &self.service.hostname,
        )
        .to_string()
    }
}

impl Mesh {
    /// The key (`namespace/name`) of the Sidecar resource that applies to a workload in `namespace` with
    /// `labels`, as Istio picks it: one of the namespace's Sidecars whose selector matches, else the
    /// namespace's Sidecar without a selector, else the root namespace's; `None` when none applies (the
    /// workload sees every service).
    pub fn egress_scope_for(&self, namespace: &str, labels: &Labels) -> Option<&str> {
        let find = |ns: &str, applies: &dyn Fn(&EgressScope) -> bool| {
            self.sidecars
                .iter()
                .find(|(_, s)| s.namespace == ns && applies(s))
                .map(|(key, _)| key.as_str())
        };
        find(namespace, &|s| {
            s.selector
                .as_ref()
                .is_some_and(|sel| labels_match(sel, labels))
        })
        .or_else(|| find(namespace, &|s| s.selector.is_none()))
        .or_else(|| find(ROOT_NAMESPACE, &|s| s.selector.is_none()))
    }

    /// [`Mesh::egress_scope_for`] for many workloads at once: see [`EgressIndex`].
    pub fn egress_index(&self) -> EgressIndex<'_> {
        EgressIndex::new(self)
    }

    /// Whether a sidecar under the Sidecar resource `egress` (see [`Mesh::egress_scope_for`]) reaches `service`.
    pub fn reaches(&self, egress: Option<&str>, service: &Service) -> bool {
        egress
            .and_then(|key| self.sidecars.get(key))
            .is_none_or(|scope| scope.sees(service))
    }

    /// Every outbound cluster Istio builds: per service (in host order) and port, the subset-less one and then
    /// one per DestinationRule subset, in the rule's order.
    pub fn outbound_clusters(&self) -> impl Iterator<Item = OutboundCluster<'_>> + '_ {
        self.services
            .values()
            .flat_map(move |service| self.outbound_clusters_of(service))
    }

    /// The outbound clusters of one service: per port, the subset-less one and then one per DestinationRule
    /// subset, in the rule's order. They depend on nothing but the service and its DestinationRule.
    pub fn outbound_clusters_of<'a>(
        &'a self,
        service: &'a Service,
    ) -> impl Iterator<Item = OutboundCluster<'a>> + 'a {
        let rule = self.destination_rules.get(&service.hostname);
        let subsets: Vec<Option<&str>> = std::iter::once(None)
            .chain(
                rule.iter()
                    .flat_map(|dr| dr.subsets.iter().map(|s| Some(s.name.as_str()))),
            )
            .collect();
        service.ports.iter().flat_map(move |port| {
            subsets
                .clone()
                .into_iter()
                .map(move |subset| OutboundCluster {
                    service,
                    port,
                    subset,
                    rule,
                })
        })
    }

    /// The traffic policy for one cluster, merged as Istio's `MergeSubsetTrafficPolicy` does. The base is the
    /// rule's port-level settings for `port` (replacing the rule's settings as a whole: omitted fields fall back
    /// to defaults, not to the rule's) else the rule's settings. A subset with port-level settings for `port`
    /// replaces the base's fields as a whole; otherwise the subset's settings override the base field by field.
    pub fn policy_for(&self, host: &str, subset: Option<&str>, port: u32) -> PolicySettings {
        let Some(dr) = self.destination_rules.get(host) else {
            return PolicySettings::default();
        };
        let (base, _) = dr.traffic_policy.for_port(port);
        let subset_policy = subset
            .and_then(|s| dr.subset(s))
            .and_then(|s| s.traffic_policy.as_ref());
        match subset_policy {
            None => base.clone(),
            Some(sp) => match sp.for_port(port) {
                (own, true) => own.clone(),
                (own, false) => base.overridden_by(own),
            },
        }
    }

    /// The port a destination resolves to on a listener: explicit, else the service's only port, else the
    /// listener's (Istio's `GetDestinationCluster`).
    pub fn destination_port(&self, destination: &Destination, listener_port: u32) -> u32 {
        destination
            .port
            .unwrap_or_else(|| match self.services.get(&destination.host) {
                Some(s) if s.ports.len() == 1 => s.ports[0].number,
                _ => listener_port,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NAMESPACES: [&str; 3] = ["a", "b", ROOT_NAMESPACE];
    const LABELS: [(&str, &str); 4] = [("app", "x"), ("app", "y"), ("tier", "web"), ("v", "1")];

    fn labels(bits: u8) -> Labels {
        // One value per key: the first pair of each key that `bits` picks.
        let mut out = Labels::new();
        for (i, (k, v)) in LABELS.iter().enumerate() {
            if bits & (1 << i) != 0 {
                out.entry((*k).to_owned())
                    .or_insert_with(|| (*v).to_owned());
            }
        }
        out
    }

    fn sidecar(namespace: &str, name: usize, selector: Option<Labels>) -> (String, EgressScope) {
        let key = format!("{namespace}/s{name:02}");
        let scope = EgressScope {
            meta: Meta {
                resource: ResourceKey {
                    kind: Kind::Sidecar,
                    namespace: namespace.to_owned(),
                    name: format!("s{name:02}"),
                },
                origin: Origin {
                    file: "sidecars.yaml".into(),
                    doc_index: name,
                    line: 1,
                },
            },
            namespace: namespace.to_owned(),
            selector,
            hosts: None,
            inferred: BTreeSet::new(),
        };
        (key, scope)
    }

    proptest! {
        /// Sidecars in three namespaces (the root one included), with no selector, an empty one or up to
        /// three labels; every workload label set in every namespace gets the answer of the walk.
        #[test]
        fn the_index_answers_as_the_walk_of_every_sidecar(
            sidecars in proptest::collection::vec((0..3usize, proptest::option::of(0u8..16)), 0..12)
        ) {
            let mesh = Mesh {
                sidecars: Arc::new(
                    sidecars
                        .iter()
                        .enumerate()
                        .map(|(i, (ns, selector))| sidecar(NAMESPACES[*ns], i, selector.map(labels)))
                        .collect(),
                ),
                ..Mesh::default()
            };
            let index = mesh.egress_index();
            for namespace in NAMESPACES {
                for bits in 0..16 {
                    let workload = labels(bits);
                    prop_assert_eq!(
                        index.scope_for(namespace, &workload),
                        mesh.egress_scope_for(namespace, &workload),
                        "namespace {}, labels {:?}", namespace, workload
                    );
                }
            }
        }
    }
}
