//! RDS: route configurations per outbound port (sidecars) or per server port (gateways), and the inline inbound
//! route. Per-feature helpers follow Istio's `Translate*` granularity.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::core::v3::{
    data_source, header_value_option::HeaderAppendAction, DataSource, HeaderValueOption,
    RuntimeFractionalPercent,
};
use envoy_types::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier,
    query_parameter_matcher::QueryParameterMatchSpecifier,
    redirect_action::{PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier},
    retry_policy::{RetryBackOff, RetryPriority},
    route,
    route_action::{self, hash_policy, HashPolicy, RequestMirrorPolicy},
    route_match::PathSpecifier,
    weighted_cluster::ClusterWeight,
    DirectResponseAction, HeaderMatcher, QueryParameterMatcher, RedirectAction,
    RetryPolicy as EnvoyRetryPolicy, Route, RouteAction, RouteConfiguration,
    RouteMatch as EnvoyRouteMatch, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{
    fault_delay, FaultDelay as EnvoyFaultDelay,
};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    fault_abort, FaultAbort as EnvoyFaultAbort, HttpFault,
};
use envoy_types::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;

use super::build;
use crate::mesh::names::{
    gateway_route_config_name, sidecar_route_config_name, virtual_host_name, ClusterName,
};
use crate::mesh::{
    labels_match, AbortStatus, Cors, Destination, Fault, GatewayRef, HashKey, HeaderOperations,
    HttpRoute, Labels, LoadBalancer, Mesh, Mirror, Redirect, ResourceKey, Retries, RetryPolicy,
    RouteAction as MeshAction, RouteDestination, RouteMatch, RouteScope, Router, Service,
    StringMatch, VirtualService,
};

/// Which proxy and listener routes are being built for: decides `sourceLabels`, `sourceNamespace`, `port` and
/// `gateways` match conditions, which Istio evaluates at translation time, not at request time.
struct Scope<'a> {
    port: u32,
    gateway: &'a GatewayRef,
    labels: &'a Labels,
    namespace: &'a str,
}

// === sidecar ===

/// The outbound route configuration for `port` of every sidecar in `route_scope`.
pub(super) fn sidecar(mesh: &Mesh, route_scope: &RouteScope, port: u32) -> RouteConfiguration {
    let scope = Scope {
        port,
        gateway: &GatewayRef::Mesh,
        labels: &route_scope.labels,
        namespace: &route_scope.namespace,
    };
    // Envoy rejects a route configuration that lists one domain in two virtual hosts; short forms can
    // collide (a ServiceEntry host `reviews.default` and `reviews.default.svc.cluster.local`), so the
    // first service by host name keeps a contested domain.
    let mut used: BTreeSet<String> = BTreeSet::new();
    let egress = route_scope.egress.as_deref();
    let vhosts = mesh
        .services
        .values()
        .filter(|s| s.port(port).is_some() && mesh.reaches(egress, s))
        .map(|service| {
            let vs = mesh.virtual_services.iter().find(|vs| {
                vs.gateways.contains(&GatewayRef::Mesh) && vs.hosts.contains(&service.hostname)
            });
            // A VirtualService none of whose routes apply to this proxy (sourceLabels etc.) is skipped
            // entirely, so the service falls back to its default route, as in Istio.
            let routes = vs
                .map(|vs| vs_routes(mesh, vs, &scope))
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| vec![default_route(mesh, service, port)]);
            let name = virtual_host_name(&service.hostname, port);
            let domains = domains(service, &route_scope.namespace)
                .into_iter()
                .filter(|d| used.insert(d.to_ascii_lowercase()))
                .collect();
            build::virtual_host(&name, domains, routes)
        })
        .filter(|vh| !vh.domains.is_empty())
        .collect();
    // Istio ends the list with an `allow_any` vhost (`*` → PassthroughCluster). Without iptables there is
    // no original destination to pass through to, so unknown hosts get Envoy's 404 instead.
    build::route_configuration(&sidecar_route_config_name(port), vhosts)
}

/// Istio's `generateVirtualHostDomains` with ports ignored: the FQDN, its absolute form, and the shorter
/// Kubernetes forms (the bare name only for proxies in the service's namespace), then the VIPs.
fn domains(service: &Service, proxy_namespace: &str) -> Vec<String> {
    let host = &service.hostname;
    let mut out = vec![host.clone(), format!("{host}.")];
    if let Some((name, namespace)) = host
        .strip_suffix(&format!(".svc.{}", crate::mesh::names::CLUSTER_DOMAIN))
        .and_then(|prefix| prefix.split_once('.'))
        .filter(|(_, ns)| !ns.contains('.'))
    {
        if namespace == proxy_namespace {
            out.push(name.to_owned());
        }
        out.push(format!("{name}.{namespace}.svc"));
        out.push(format!("{name}.{namespace}"));
    }
    out.extend(service.addresses.iter().cloned());
    out
}

/// Istio's route for a service without a VirtualService (`buildSidecarVirtualHostForService`).
fn default_route(mesh: &Mesh, service: &Service, port: u32) -> Route {
    let cluster = ClusterName::outbound(port, None, &service.hostname).to_string();
    let mut action = build::route_action_cluster(&cluster, build::zero_timeout());
    action.retry_policy = Some(build::default_retry_policy());
    // Istio's `hashByService`: the default route hashes too when the DestinationRule asks for it.
    let target = RouteDestination {
        destination: Destination {
            host: service.hostname.clone(),
            subset: None,
            port: Some(port),
        },
        weight: 100,
        headers: Default::default(),
    };
    set_hash_policy(&mut action, hash_policy(mesh, &[target], port));
    let mut r = build::route(
        "default",
        build::prefix_match("/"),
        route::Action::Route(action),
    );
    r.decorator = Some(build::decorator(&format!("{}:{port}/*", service.hostname)));
    // Istio leaves the default route without `istio.config`; Switchyard names the ServiceEntry so that every
    // route traces back to a file.
    r.metadata = Some(build::istio_metadata(&service.meta.istio_config_path()));
    r
}

/// The inline route of an inbound listener: everything to the local app.
pub(super) fn inbound(port: u32, service: &Service) -> RouteConfiguration {
    let cluster = ClusterName::inbound(port).to_string();
    let mut action = build::route_action_cluster(&cluster, build::zero_timeout());
    action.retry_policy = Some(build::inbound_retry_policy());
    let mut r = build::route(
        "default",
        build::prefix_match("/"),
        route::Action::Route(action),
    );
    r.decorator = Some(build::decorator(&format!("{}:{port}/*", service.hostname)));
    let vhost = build::virtual_host(
        &format!("inbound|http|{port}"),
        vec!["*".to_owned()],
        vec![r],
    );
    build::route_configuration(&cluster, vec![vhost])
}

// === gateway ===

pub(super) fn router(mesh: &Mesh, router: &Router) -> Vec<RouteConfiguration> {
    let mut by_port: BTreeMap<u32, Vec<(GatewayRef, &[String])>> = BTreeMap::new();
    for key in &router.gateways {
        if let Some(gateway) = mesh.gateways.get(key) {
            for server in &gateway.servers {
                by_port
                    .entry(server.port)
                    .or_default()
                    .push((GatewayRef::Gateway(key.clone()), &server.hosts));
            }
        }
    }
    by_port
        .into_iter()
        .map(|(port, servers)| {
            // One virtual host per domain. VirtualServices whose hosts meet on a domain are merged into it in
            // namespace/name order (Istio's creation-time order), each contributing once, and catch-all routes
            // move behind the others as Istio's `SortVHostRoutes` does, so a later VirtualService is not shadowed.
            let mut vhosts: BTreeMap<String, (VirtualHost, BTreeSet<&ResourceKey>)> =
                BTreeMap::new();
            for (gateway, server_hosts) in &servers {
                let scope = Scope {
                    port,
                    gateway,
                    labels: &router.labels,
                    namespace: &router.namespace,
                };
                for vs in mesh
                    .virtual_services
                    .iter()
                    .filter(|vs| vs.gateways.contains(gateway))
                {
                    let domains = host_intersections(&vs.hosts, server_hosts);
                    if domains.is_empty() {
                        continue;
                    }
                    let routes = vs_routes(mesh, vs, &scope);
                    if routes.is_empty() {
                        continue;
                    }
                    for domain in domains {
                        let name = virtual_host_name(&domain, port);
                        let (vhost, contributors) =
                            vhosts.entry(name.clone()).or_insert_with(|| {
                                (
                                    build::virtual_host(&name, vec![domain], Vec::new()),
                                    BTreeSet::new(),
                                )
                            });
                        if contributors.insert(&vs.meta.resource) {
                            vhost.routes.extend(routes.iter().cloned());
                        }
                    }
                }
            }
            build::route_configuration(
                &gateway_route_config_name(port),
                vhosts
                    .into_values()
                    .map(|(mut vhost, _)| {
                        vhost.routes = catch_alls_last(std::mem::take(&mut vhost.routes));
                        vhost
                    })
                    .collect(),
            )
        })
        .collect()
}

/// Every host a VirtualService's hosts and a server's hosts have in common (for each pair, the more specific
/// of the two), as Istio's `Intersection` of the two host sets.
fn host_intersections(vs_hosts: &[String], server_hosts: &[String]) -> BTreeSet<String> {
    let covers = |pattern: &str, host: &str| {
        pattern == "*"
            || pattern == host
            || pattern
                .strip_prefix('*')
                .is_some_and(|suffix| host.ends_with(suffix))
    };
    let mut out = BTreeSet::new();
    for vs_host in vs_hosts {
        for s in server_hosts {
            if covers(s, vs_host) {
                out.insert(vs_host.clone());
            } else if covers(vs_host, s) {
                out.insert(s.clone());
            }
        }
    }
    out
}

/// Istio's `SortVHostRoutes`: catch-all routes after all others, each group in its original order.
fn catch_alls_last(routes: Vec<Route>) -> Vec<Route> {
    let (catch_all, specific): (Vec<Route>, Vec<Route>) =
        routes.into_iter().partition(is_catch_all_route);
    specific.into_iter().chain(catch_all).collect()
}

/// Istio's `isCatchAllRoute`: path `/` prefix (or regex `*`) and no header or query parameter condition.
fn is_catch_all_route(r: &Route) -> bool {
    let Some(m) = &r.r#match else {
        return false;
    };
    let path_all = match &m.path_specifier {
        Some(PathSpecifier::Prefix(p)) | Some(PathSpecifier::PathSeparatedPrefix(p)) => p == "/",
        Some(PathSpecifier::SafeRegex(re)) => re.regex == "*",
        _ => false,
    };
    path_all
        && m.headers.is_empty()
        && m.query_parameters.is_empty()
        && m.dynamic_metadata.is_empty()
}

// === VirtualService routes ===

/// One Envoy route per `http[]` entry and per `match[]` within it, in order, stopping after the first catch-all
/// (Istio adds nothing after it, so unmatched requests get a 404).
fn vs_routes(mesh: &Mesh, vs: &VirtualService, scope: &Scope<'_>) -> Vec<Route> {
    let mut out = Vec::new();
    for http in &vs.http {
        let matches: Vec<Option<&RouteMatch>> = if http.matches.is_empty() {
            vec![None]
        } else {
            let applicable: Vec<_> = http
                .matches
                .iter()
                .filter(|m| applies(m, scope))
                .map(Some)
                .collect();
            if applicable.is_empty() {
                continue;
            }
            applicable
        };
        for m in matches {
            out.push(translate_route(mesh, vs, http, m, scope));
            if m.is_none_or(RouteMatch::is_catch_all) {
                return out;
            }
        }
    }
    out
}

/// Istio's `sourceMatchHTTP` plus the port and gateway conditions.
fn applies(m: &RouteMatch, scope: &Scope<'_>) -> bool {
    labels_match(&m.source_labels, scope.labels)
        && m.source_namespace
            .as_deref()
            .is_none_or(|ns| ns == scope.namespace)
        && m.port.is_none_or(|p| p == scope.port)
        && (m.gateways.is_empty() || m.gateways.contains(scope.gateway))
}

fn translate_route(
    mesh: &Mesh,
    vs: &VirtualService,
    http: &HttpRoute,
    m: Option<&RouteMatch>,
    scope: &Scope<'_>,
) -> Route {
    let name = match (http.name.as_deref(), m.and_then(|m| m.name.as_deref())) {
        (Some(h), Some(n)) => format!("{h}.{n}"),
        (None, Some(n)) => format!(".{n}"),
        (Some(h), None) => h.to_owned(),
        (None, None) => String::new(),
    };
    let (action, operation) = match &http.action {
        MeshAction::Route(destinations) => {
            let first = destinations.first().map(|d| {
                format!(
                    "{}:{}/*",
                    d.destination.host,
                    mesh.destination_port(&d.destination, scope.port)
                )
            });
            (
                route::Action::Route(route_action(mesh, http, destinations, scope.port)),
                first,
            )
        }
        MeshAction::Redirect(r) => (route::Action::Redirect(redirect(r)), None),
        MeshAction::DirectResponse { status, body } => (
            route::Action::DirectResponse(DirectResponseAction {
                status: *status,
                body: body.as_ref().map(|b| DataSource {
                    specifier: Some(data_source::Specifier::InlineString(b.clone())),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            None,
        ),
    };
    let mut r = build::route(&name, route_match(m), action);
    r.decorator = Some(build::decorator(&operation.unwrap_or_else(|| {
        format!(
            "{}:{}/*",
            vs.hosts.first().unwrap_or(&vs.meta.resource.name),
            scope.port
        )
    })));
    r.metadata = Some(build::istio_metadata(&vs.meta.istio_config_path()));
    // At most one of the two (mesh rejects both on one route); see build::route's note on maps.
    if let Some(f) = &http.fault {
        r.typed_per_filter_config =
            build::per_filter_config(build::FAULT_FILTER, pack_any(fault(f)));
    } else if let Some(c) = &http.cors {
        r.typed_per_filter_config = build::per_filter_config(build::CORS_FILTER, pack_any(cors(c)));
    }
    add_header_operations(&mut r, &http.headers);
    // A lone destination is a plain `cluster`, which has no header fields of its own, so its per-destination
    // headers go on the route (as in Istio).
    if let MeshAction::Route(destinations) = &http.action {
        if let [single] = destinations.as_slice() {
            add_header_operations(&mut r, &single.headers);
        }
    }
    r
}

/// Istio's `TranslateRouteMatch`.
fn route_match(m: Option<&RouteMatch>) -> EnvoyRouteMatch {
    let Some(m) = m else {
        return build::prefix_match("/");
    };
    let path = match &m.uri {
        None => PathSpecifier::Prefix("/".to_owned()),
        Some(StringMatch::Exact(p)) => PathSpecifier::Path(p.clone()),
        Some(StringMatch::Prefix(p)) => PathSpecifier::Prefix(p.clone()),
        Some(StringMatch::Present) => PathSpecifier::Prefix("/".to_owned()),
        // Envoy ignores `case_sensitive` for regexes, so case-insensitivity goes into the pattern itself.
        Some(StringMatch::Regex(r)) if m.ignore_uri_case => {
            PathSpecifier::SafeRegex(build::regex_matcher(&format!("(?i){r}")))
        }
        Some(StringMatch::Regex(r)) => PathSpecifier::SafeRegex(build::regex_matcher(r)),
    };
    let mut headers: Vec<HeaderMatcher> = Vec::new();
    for (name, value) in [
        (":method", &m.method),
        (":authority", &m.authority),
        (":scheme", &m.scheme),
    ] {
        if let Some(v) = value {
            headers.push(build::header_matcher(name, header_spec(v)));
        }
    }
    headers.extend(
        m.headers
            .iter()
            .map(|(k, v)| build::header_matcher(k, header_spec(v))),
    );
    headers.extend(m.without_headers.iter().map(|(k, v)| {
        let mut h = build::header_matcher(k, header_spec(v));
        h.invert_match = true;
        // A missing header does not "match" a value, so it must count as satisfying `withoutHeaders`.
        h.treat_missing_header_as_empty = !is_presence(v);
        h
    }));
    headers.sort_by(|a, b| a.name.cmp(&b.name));
    EnvoyRouteMatch {
        path_specifier: Some(path),
        case_sensitive: m.ignore_uri_case.then_some(BoolValue { value: false }),
        headers,
        query_parameters: m
            .query_params
            .iter()
            .map(|(k, v)| QueryParameterMatcher {
                name: k.clone(),
                query_parameter_match_specifier: Some(if is_presence(v) {
                    QueryParameterMatchSpecifier::PresentMatch(true)
                } else {
                    QueryParameterMatchSpecifier::StringMatch(string_matcher(v))
                }),
            })
            .collect(),
        ..Default::default()
    }
}

/// `{}` and `prefix: ""` both mean "present"; Envoy rejects an empty prefix matcher.
fn is_presence(v: &StringMatch) -> bool {
    matches!(v, StringMatch::Present) || matches!(v, StringMatch::Prefix(p) if p.is_empty())
}

fn header_spec(v: &StringMatch) -> HeaderMatchSpecifier {
    if is_presence(v) {
        HeaderMatchSpecifier::PresentMatch(true)
    } else {
        HeaderMatchSpecifier::StringMatch(string_matcher(v))
    }
}

fn string_matcher(v: &StringMatch) -> envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher {
    match v {
        StringMatch::Exact(s) => build::string_matcher_exact(s, false),
        // Envoy requires a non-empty prefix; an empty one matches everything.
        // Presence is rejected in mesh where a value is always there (CORS origins); matching anything is the
        // only sound reading elsewhere.
        StringMatch::Prefix(s) if s.is_empty() => build::string_matcher_regex(".*"),
        StringMatch::Present => build::string_matcher_regex(".*"),
        StringMatch::Prefix(s) => build::string_matcher_prefix(s, false),
        StringMatch::Regex(r) => build::string_matcher_regex(r),
    }
}

fn route_action(
    mesh: &Mesh,
    http: &HttpRoute,
    destinations: &[RouteDestination],
    listener_port: u32,
) -> RouteAction {
    let cluster_of =
        |d: &RouteDestination| destination_cluster(mesh, &d.destination, listener_port);
    let timeout = http
        .timeout
        .map_or_else(build::zero_timeout, build::duration);
    let mut action = match destinations {
        [single] => build::route_action_cluster(&cluster_of(single), timeout),
        many => build::route_action_weighted(
            many.iter()
                .map(|d| {
                    let mut w = build::cluster_weight(&cluster_of(d), d.weight);
                    add_header_operations(&mut w, &d.headers);
                    w
                })
                .collect(),
            timeout,
        ),
    };
    action.retry_policy = match &http.retries {
        Retries::Default => Some(build::default_retry_policy()),
        Retries::Disabled => None,
        Retries::Policy(p) => Some(retry_policy(p)),
    };
    if let Some(rw) = &http.rewrite {
        if let Some(uri) = &rw.uri {
            action.prefix_rewrite = uri.clone();
        }
        if let Some((pattern, substitution)) = &rw.uri_regex {
            action.regex_rewrite = Some(RegexMatchAndSubstitute {
                pattern: Some(build::regex_matcher(pattern)),
                substitution: substitution.clone(),
            });
        }
        if let Some(authority) = &rw.authority {
            action.host_rewrite_specifier = Some(
                route_action::HostRewriteSpecifier::HostRewriteLiteral(authority.clone()),
            );
        }
    }
    action.request_mirror_policies = http
        .mirrors
        .iter()
        .map(|m| mirror(mesh, m, listener_port))
        .collect();
    set_hash_policy(&mut action, hash_policy(mesh, destinations, listener_port));
    action
}

fn set_hash_policy(action: &mut RouteAction, policy: Vec<HashPolicy>) {
    if !policy.is_empty() {
        // As Istio: retrying on another host would defeat the stickiness consistent hashing asks for.
        if let Some(r) = action.retry_policy.as_mut() {
            r.retry_host_predicate.clear();
        }
    }
    action.hash_policy = policy;
}

/// Istio's `retry.ConvertPolicy`.
fn retry_policy(p: &RetryPolicy) -> EnvoyRetryPolicy {
    let mut out = build::default_retry_policy();
    out.num_retries = Some(build::u32_value(p.attempts));
    if !p.retry_on.is_empty() || !p.retriable_status_codes.is_empty() {
        let mut on = p.retry_on.clone();
        if !p.retriable_status_codes.is_empty() && !on.iter().any(|c| c == "retriable-status-codes")
        {
            on.push("retriable-status-codes".to_owned());
        }
        out.retry_on = on.join(",");
        out.retriable_status_codes = p.retriable_status_codes.clone();
    }
    out.per_try_timeout = p.per_try_timeout.map(build::duration);
    if !p.ignore_previous_hosts {
        out.retry_host_predicate.clear();
    }
    if p.retry_remote_localities {
        out.retry_priority = Some(RetryPriority {
            name: "envoy.retry_priorities.previous_priorities".to_owned(),
            config_type: Some(envoy_types::pb::envoy::config::route::v3::retry_policy::retry_priority::ConfigType::TypedConfig(pack_any(
                PreviousPrioritiesConfig { update_frequency: 2 },
            ))),
        });
    }
    out.retry_back_off = p.backoff.map(|b| RetryBackOff {
        base_interval: Some(build::duration(b)),
        ..Default::default()
    });
    out
}

/// Istio's `TranslateFault`: fixed delay and/or abort, percentages in millionths.
fn fault(f: &Fault) -> HttpFault {
    HttpFault {
        delay: f.delay.as_ref().map(|d| EnvoyFaultDelay {
            percentage: Some(build::per_million(d.percentage)),
            fault_delay_secifier: Some(fault_delay::FaultDelaySecifier::FixedDelay(
                build::duration(d.fixed_delay),
            )),
        }),
        abort: f.abort.as_ref().map(|a| EnvoyFaultAbort {
            percentage: Some(build::per_million(a.percentage)),
            error_type: Some(match a.status {
                AbortStatus::Http(code) => fault_abort::ErrorType::HttpStatus(code),
                AbortStatus::Grpc(code) => fault_abort::ErrorType::GrpcStatus(code),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Istio's `TranslateCORSPolicy`.
fn cors(c: &Cors) -> CorsPolicy {
    CorsPolicy {
        allow_origin_string_match: c.allow_origins.iter().map(string_matcher).collect(),
        allow_methods: c.allow_methods.join(","),
        allow_headers: c.allow_headers.join(","),
        expose_headers: c.expose_headers.join(","),
        max_age: c
            .max_age
            .map(|d| d.as_secs().to_string())
            .unwrap_or_default(),
        allow_credentials: c.allow_credentials.map(|value| BoolValue { value }),
        ..Default::default()
    }
}

fn redirect(r: &Redirect) -> RedirectAction {
    RedirectAction {
        host_redirect: r.authority.clone().unwrap_or_default(),
        port_redirect: r.port.unwrap_or(0),
        response_code: match r.code {
            302 => RedirectResponseCode::Found,
            303 => RedirectResponseCode::SeeOther,
            307 => RedirectResponseCode::TemporaryRedirect,
            308 => RedirectResponseCode::PermanentRedirect,
            _ => RedirectResponseCode::MovedPermanently,
        } as i32,
        scheme_rewrite_specifier: r.scheme.clone().map(SchemeRewriteSpecifier::SchemeRedirect),
        path_rewrite_specifier: r.uri.clone().map(PathRewriteSpecifier::PathRedirect),
        ..Default::default()
    }
}

fn mirror(mesh: &Mesh, m: &Mirror, listener_port: u32) -> RequestMirrorPolicy {
    RequestMirrorPolicy {
        cluster: destination_cluster(mesh, &m.destination, listener_port),
        runtime_fraction: Some(RuntimeFractionalPercent {
            default_value: Some(build::per_million(m.percentage)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Consistent-hash routing needs a hash policy on the route; Istio takes it from the destination's
/// DestinationRule, and only when every destination agrees on it.
fn hash_policy(
    mesh: &Mesh,
    destinations: &[RouteDestination],
    listener_port: u32,
) -> Vec<HashPolicy> {
    let keys: Vec<Option<HashKey>> = destinations
        .iter()
        .map(|d| {
            let port = mesh.destination_port(&d.destination, listener_port);
            match mesh
                .policy_for(&d.destination.host, d.destination.subset.as_deref(), port)
                .load_balancer
            {
                Some(LoadBalancer::ConsistentHash(ch)) => Some(ch.key),
                _ => None,
            }
        })
        .collect();
    let Some(Some(first)) = keys.first() else {
        return Vec::new();
    };
    if keys.iter().any(|k| k.as_ref() != Some(first)) {
        return Vec::new();
    }
    let specifier =
        match first {
            HashKey::Header(h) => hash_policy::PolicySpecifier::Header(hash_policy::Header {
                header_name: h.clone(),
                ..Default::default()
            }),
            HashKey::Cookie { name, path, ttl } => {
                hash_policy::PolicySpecifier::Cookie(hash_policy::Cookie {
                    name: name.clone(),
                    path: path.clone().unwrap_or_default(),
                    ttl: ttl.map(build::duration),
                    ..Default::default()
                })
            }
            HashKey::SourceIp => hash_policy::PolicySpecifier::ConnectionProperties(
                hash_policy::ConnectionProperties { source_ip: true },
            ),
            HashKey::QueryParameter(q) => {
                hash_policy::PolicySpecifier::QueryParameter(hash_policy::QueryParameter {
                    name: q.clone(),
                })
            }
        };
    vec![HashPolicy {
        policy_specifier: Some(specifier),
        ..Default::default()
    }]
}

/// The cluster a destination names on a listener: `outbound|<port>|<subset>|<host>` with Istio's port choice.
fn destination_cluster(mesh: &Mesh, d: &Destination, listener_port: u32) -> String {
    let port = mesh.destination_port(d, listener_port);
    ClusterName::outbound(port, d.subset.as_deref(), &d.host).to_string()
}

/// The Envoy messages that carry header operations (routes and weighted-cluster entries), by their four fields.
trait HeaderFields {
    fn header_fields(
        &mut self,
    ) -> (
        &mut Vec<HeaderValueOption>,
        &mut Vec<String>,
        &mut Vec<HeaderValueOption>,
        &mut Vec<String>,
    );
}

impl HeaderFields for Route {
    fn header_fields(
        &mut self,
    ) -> (
        &mut Vec<HeaderValueOption>,
        &mut Vec<String>,
        &mut Vec<HeaderValueOption>,
        &mut Vec<String>,
    ) {
        (
            &mut self.request_headers_to_add,
            &mut self.request_headers_to_remove,
            &mut self.response_headers_to_add,
            &mut self.response_headers_to_remove,
        )
    }
}

impl HeaderFields for ClusterWeight {
    fn header_fields(
        &mut self,
    ) -> (
        &mut Vec<HeaderValueOption>,
        &mut Vec<String>,
        &mut Vec<HeaderValueOption>,
        &mut Vec<String>,
    ) {
        (
            &mut self.request_headers_to_add,
            &mut self.request_headers_to_remove,
            &mut self.response_headers_to_add,
            &mut self.response_headers_to_remove,
        )
    }
}

/// Istio's `TranslateHeadersOperations`, appended to `target`: `set` overwrites, `add` appends.
fn add_header_operations(target: &mut impl HeaderFields, h: &HeaderOperations) {
    let ops =
        |o: &crate::mesh::HeaderOps, add: &mut Vec<HeaderValueOption>, remove: &mut Vec<String>| {
            add.extend(o.set.iter().map(|(k, v)| {
                build::header_value_option(k, v, HeaderAppendAction::OverwriteIfExistsOrAdd as i32)
            }));
            add.extend(o.add.iter().map(|(k, v)| {
                build::header_value_option(k, v, HeaderAppendAction::AppendIfExistsOrAdd as i32)
            }));
            remove.extend(o.remove.iter().cloned());
        };
    let (req_add, req_remove, resp_add, resp_remove) = target.header_fields();
    ops(&h.request, req_add, req_remove);
    ops(&h.response, resp_add, resp_remove);
}
