//! VirtualService → `VirtualService`: hosts expanded, destinations checked against services and subsets.

use crate::mesh::Code;
use std::collections::BTreeMap;

use super::validate::{self, to_mesh_match as string_match};
use super::{meta_of, Diags};
use crate::mesh::names::resolve_host;
use crate::mesh::{
    AbortStatus, Cors, Destination, Fault, FaultAbort, FaultDelay, GatewayRef, HeaderOperations,
    HeaderOps, HttpRoute, Mesh, Meta, Mirror, Redirect, Retries, RetryPolicy, Rewrite, RouteAction,
    RouteDestination, RouteMatch, StringMatch, VirtualService,
};
use crate::spec::{self, Kind, Sourced};

/// Envoy `retry_on` conditions Istio passes through (HTTP and gRPC).
const RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

pub(super) fn resolve(
    items: &[Sourced<spec::VirtualService>],
    mesh: &Mesh,
    diags: &mut Diags,
) -> Vec<VirtualService> {
    let mut out = Vec::new();
    // (gateway, host) → the VirtualService that claimed it first.
    let mut claimed: BTreeMap<(GatewayRef, String), Meta> = BTreeMap::new();
    for item in items {
        let meta = meta_of(item, Kind::VirtualService);
        let ns = item.namespace();
        let spec::VirtualService {
            hosts,
            gateways,
            http,
            tls: _,
            tcp: _,
            export_to: _,
        } = &item.value;
        let gateway_refs: Vec<GatewayRef> = if gateways.is_empty() {
            vec![GatewayRef::Mesh]
        } else {
            gateways
                .iter()
                .enumerate()
                .filter_map(|(i, g)| {
                    gateway_ref(mesh, ns, g, &meta, &format!("spec.gateways[{i}]"), diags)
                })
                .collect()
        };
        if hosts.is_empty() {
            diags.error(
                &meta,
                Code::MissingField,
                "spec.hosts",
                "a VirtualService needs at least one host",
            );
        }
        let mut fqdns = Vec::new();
        for (i, host) in hosts.iter().enumerate() {
            let fqdn = resolve_host(host, ns);
            let field = format!("spec.hosts[{i}]");
            if gateway_refs.contains(&GatewayRef::Mesh) && !mesh.services.contains_key(&fqdn) {
                diags.error(
                    &meta,
                    Code::NotSupportedYet,
                    &field,
                    format!("host `{fqdn}` is not defined by any ServiceEntry; routing sidecar traffic for hosts outside the registry is not supported yet"),
                );
            }
            // Gateways merge VirtualServices that share a host (in namespace/name order, as Istio); sidecars
            // cannot, so there a second claim is an error.
            for g in gateway_refs.iter().filter(|g| **g == GatewayRef::Mesh) {
                match claimed.get(&(g.clone(), fqdn.clone())) {
                    Some(first) => diags.error(
                        &meta,
                        Code::ConflictingMeshHosts,
                        &field,
                        format!("host `{fqdn}` is already routed by {} at {}; merging VirtualServices for sidecars is not supported yet (Istio merges them only on gateways)", first.resource, first.origin),
                    ),
                    None => {
                        claimed.insert((g.clone(), fqdn.clone()), meta.clone());
                    }
                }
            }
            fqdns.push(fqdn);
        }
        let mut routes = Vec::new();
        for (i, route) in http.iter().enumerate() {
            let ctx = Ctx {
                mesh,
                meta: &meta,
                namespace: ns,
                field: format!("spec.http[{i}]"),
            };
            if let Some(r) = ctx.http_route(route, diags) {
                routes.push(r);
            }
        }
        out.push(VirtualService {
            meta,
            hosts: fqdns,
            gateways: gateway_refs,
            http: routes,
        });
    }
    out.sort_by(|a, b| {
        (&a.meta.resource.namespace, &a.meta.resource.name)
            .cmp(&(&b.meta.resource.namespace, &b.meta.resource.name))
    });
    out
}

fn gateway_ref(
    mesh: &Mesh,
    ns: &str,
    name: &str,
    meta: &Meta,
    field: &str,
    diags: &mut Diags,
) -> Option<GatewayRef> {
    if name == "mesh" {
        return Some(GatewayRef::Mesh);
    }
    let key = match name.split_once('/') {
        Some((gns, gname)) => format!("{gns}/{gname}"),
        None => format!("{ns}/{name}"),
    };
    if mesh.gateways.contains_key(&key) {
        Some(GatewayRef::Gateway(key))
    } else {
        diags.error(
            meta,
            Code::UnknownGateway,
            field,
            format!("gateway `{key}` is not defined by any Gateway"),
        );
        None
    }
}

struct Ctx<'a> {
    mesh: &'a Mesh,
    meta: &'a Meta,
    namespace: &'a str,
    field: String,
}

impl Ctx<'_> {
    fn f(&self, tail: &str) -> String {
        format!("{}.{tail}", self.field)
    }

    fn http_route(&self, route: &spec::HttpRoute, diags: &mut Diags) -> Option<HttpRoute> {
        let errors_before = diags.error_count();
        let spec::HttpRoute {
            name,
            matches,
            route: destinations,
            redirect,
            direct_response,
            delegate: _,
            rewrite,
            timeout,
            retries,
            fault,
            mirror,
            mirrors,
            mirror_percentage,
            mirror_percent: _,
            cors_policy,
            headers,
        } = route;
        let matches: Vec<RouteMatch> = matches
            .iter()
            .enumerate()
            .filter_map(|(j, m)| self.route_match(m, &self.f(&format!("match[{j}]")), diags))
            .collect();
        let action = self.action(
            destinations,
            redirect.as_ref(),
            direct_response.as_ref(),
            diags,
        );
        let timeout =
            validate::opt_duration(diags, self.meta, &self.f("timeout"), timeout.as_ref());
        let retries = match retries {
            None => Retries::Default,
            Some(r) => self.retries(r, diags),
        };
        let fault = fault.as_ref().and_then(|f| self.fault(f, diags));
        let headers = headers
            .as_ref()
            .map(|h| self.headers(h, &self.f("headers"), diags))
            .unwrap_or_default();
        let rewrite = rewrite.as_ref().and_then(|r| self.rewrite(r, diags));
        let mut resolved_mirrors = Vec::new();
        if mirror.is_some() && !mirrors.is_empty() {
            // Istio's validation rejects the pair rather than picking one.
            diags.error(
                self.meta,
                Code::ConflictingFields,
                self.f("mirrors"),
                "set either `mirror` or `mirrors`, not both",
            );
        }
        if let Some(m) = mirror {
            resolved_mirrors.extend(self.mirror(
                m,
                &self.f("mirror"),
                mirror_percentage.as_ref(),
                &self.f("mirrorPercentage"),
                diags,
            ));
        } else if mirror_percentage.is_some() {
            diags.error(
                self.meta,
                Code::RequiresField,
                self.f("mirrorPercentage"),
                "mirrorPercentage needs `mirror`",
            );
        }
        for (k, m) in mirrors.iter().enumerate() {
            let field = self.f(&format!("mirrors[{k}]"));
            resolved_mirrors.extend(self.mirror(
                &m.destination,
                &format!("{field}.destination"),
                m.percentage.as_ref(),
                &format!("{field}.percentage"),
                diags,
            ));
        }
        let cors = cors_policy.as_ref().and_then(|c| self.cors(c, diags));
        if fault.is_some() && cors.is_some() {
            // Both live in the route's `typed_per_filter_config` map, and prost encodes a map with two entries in
            // nondeterministic order, which would defeat content-hash versions.
            diags.error(
                self.meta,
                Code::NotSupportedYet,
                self.f("corsPolicy"),
                "combining `fault` and `corsPolicy` in one route is not supported yet",
            );
        }
        if diags.error_count() != errors_before {
            return None;
        }
        Some(HttpRoute {
            name: name.clone(),
            matches,
            action: action?,
            timeout,
            retries,
            fault,
            headers,
            rewrite,
            mirrors: resolved_mirrors,
            cors,
        })
    }

    fn route_match(
        &self,
        m: &spec::HttpMatchRequest,
        field: &str,
        diags: &mut Diags,
    ) -> Option<RouteMatch> {
        let spec::HttpMatchRequest {
            name,
            uri,
            scheme,
            method,
            authority,
            headers,
            without_headers,
            query_params,
            port,
            source_labels,
            source_namespace,
            gateways,
            ignore_uri_case,
            stat_prefix: _,
        } = m;
        for (label, value) in [
            ("uri", uri),
            ("scheme", scheme),
            ("method", method),
            ("authority", authority),
        ] {
            if let Some(v) = value {
                validate::string_match(diags, self.meta, &format!("{field}.{label}"), v);
            }
        }
        let header_list = |label: &str,
                           map: &BTreeMap<String, spec::StringMatch>,
                           diags: &mut Diags|
         -> Vec<(String, StringMatch)> {
            map.iter()
                .filter(|(k, v)| {
                    let f = format!("{field}.{label}.{k}");
                    validate::header_name(diags, self.meta, &f, k)
                        & validate::string_match(diags, self.meta, &f, v)
                })
                .map(|(k, v)| (k.clone(), string_match(v)))
                .collect()
        };
        let headers = header_list("headers", headers, diags);
        let without_headers = header_list("withoutHeaders", without_headers, diags);
        let query_params: Vec<(String, StringMatch)> = query_params
            .iter()
            .filter(|(k, v)| {
                validate::string_match(diags, self.meta, &format!("{field}.queryParams.{k}"), v)
            })
            .map(|(k, v)| (k.clone(), string_match(v)))
            .collect();
        let gateways = gateways
            .iter()
            .enumerate()
            .filter_map(|(i, g)| {
                gateway_ref(
                    self.mesh,
                    self.namespace,
                    g,
                    self.meta,
                    &format!("{field}.gateways[{i}]"),
                    diags,
                )
            })
            .collect();
        Some(RouteMatch {
            name: name.clone(),
            uri: uri.as_ref().map(string_match),
            scheme: scheme.as_ref().map(string_match),
            method: method.as_ref().map(string_match),
            authority: authority.as_ref().map(string_match),
            headers,
            without_headers,
            query_params,
            port: *port,
            source_labels: source_labels.clone(),
            source_namespace: source_namespace.clone(),
            gateways,
            ignore_uri_case: *ignore_uri_case,
        })
    }

    fn action(
        &self,
        destinations: &[spec::HttpRouteDestination],
        redirect: Option<&spec::HttpRedirect>,
        direct: Option<&spec::HttpDirectResponse>,
        diags: &mut Diags,
    ) -> Option<RouteAction> {
        match (destinations.is_empty(), redirect, direct) {
            (false, None, None) => self
                .destinations(destinations, diags)
                .map(RouteAction::Route),
            (true, Some(r), None) => self.redirect(r, diags).map(RouteAction::Redirect),
            (true, None, Some(d)) => {
                if !(200..600).contains(&d.status) {
                    diags.error(
                        self.meta,
                        Code::OutOfRange,
                        self.f("directResponse.status"),
                        format!("status {} is outside 200..599", d.status),
                    );
                    return None;
                }
                Some(RouteAction::DirectResponse {
                    status: d.status,
                    body: d.body.as_ref().and_then(|b| b.string.clone()),
                })
            }
            (true, None, None) => {
                diags.error(
                    self.meta,
                    Code::MissingField,
                    self.field.clone(),
                    "an HTTP route needs `route`, `redirect` or `directResponse`",
                );
                None
            }
            _ => {
                diags.error(
                    self.meta,
                    Code::ConflictingFields,
                    self.field.clone(),
                    "`route`, `redirect` and `directResponse` are mutually exclusive",
                );
                None
            }
        }
    }

    /// One mirror (`mirror` with `mirrorPercentage`, or a `mirrors[]` entry); all traffic when no percentage.
    fn mirror(
        &self,
        destination: &spec::Destination,
        destination_field: &str,
        percentage: Option<&spec::Percent>,
        percentage_field: &str,
        diags: &mut Diags,
    ) -> Option<Mirror> {
        let percentage = match percentage {
            Some(p) => validate::percentage(diags, self.meta, percentage_field, p),
            None => Some(1_000_000),
        };
        let destination = self.destination(destination, destination_field, diags);
        Some(Mirror {
            destination: destination?,
            percentage: percentage?,
        })
    }

    fn destinations(
        &self,
        list: &[spec::HttpRouteDestination],
        diags: &mut Diags,
    ) -> Option<Vec<RouteDestination>> {
        let errors_before = diags.error_count();
        let mut out = Vec::new();
        for (k, d) in list.iter().enumerate() {
            let field = self.f(&format!("route[{k}]"));
            let weight = match d.weight {
                Some(w) if w < 0 => {
                    diags.error(
                        self.meta,
                        Code::InvalidWeights,
                        format!("{field}.weight"),
                        format!("weight {w} is negative"),
                    );
                    0
                }
                Some(w) if w > i64::from(i32::MAX) => {
                    // Istio's weight is an int32; a larger value is rejected there, never clamped.
                    diags.error(
                        self.meta,
                        Code::InvalidWeights,
                        format!("{field}.weight"),
                        format!("weight {w} is larger than {}", i32::MAX),
                    );
                    0
                }
                Some(w) => u32::try_from(w).unwrap_or(0),
                // A lone destination takes all traffic whatever its weight; Istio uses `route.cluster` for it.
                None if list.len() == 1 => 100,
                None => 0,
            };
            let headers = d
                .headers
                .as_ref()
                .map(|h| self.headers(h, &format!("{field}.headers"), diags))
                .unwrap_or_default();
            if let Some(destination) =
                self.destination(&d.destination, &format!("{field}.destination"), diags)
            {
                out.push(RouteDestination {
                    destination,
                    weight,
                    headers,
                });
            }
        }
        if diags.error_count() != errors_before {
            return None;
        }
        let total: u64 = out.iter().map(|d| u64::from(d.weight)).sum();
        if total > u64::from(u32::MAX) {
            // Envoy's weighted_clusters sum is a uint32.
            diags.error(
                self.meta,
                Code::InvalidWeights,
                self.f("route"),
                format!("destination weights sum to {total}, more than {}", u32::MAX),
            );
            return None;
        }
        if out.len() > 1 {
            // Istio drops weight-0 destinations; a lone destination keeps all traffic even at weight 0.
            out.retain(|d| d.weight > 0);
            if out.is_empty() {
                diags.error(
                    self.meta,
                    Code::InvalidWeights,
                    self.f("route"),
                    "all destination weights are zero, so no traffic could be routed",
                );
                return None;
            }
        }
        Some(out)
    }

    fn destination(
        &self,
        d: &spec::Destination,
        field: &str,
        diags: &mut Diags,
    ) -> Option<Destination> {
        let host = resolve_host(&d.host, self.namespace);
        let Some(service) = self.mesh.services.get(&host) else {
            diags.error(
                self.meta,
                Code::UnknownHost,
                format!("{field}.host"),
                format!("host `{host}` is not defined by any ServiceEntry"),
            );
            return None;
        };
        if let Some(port) = &d.port {
            if service.port(port.number).is_none() {
                let known: Vec<String> =
                    service.ports.iter().map(|p| p.number.to_string()).collect();
                diags.error(
                    self.meta,
                    Code::UnknownPort,
                    format!("{field}.port.number"),
                    format!(
                        "service `{host}` has no port {} (it has {})",
                        port.number,
                        known.join(", ")
                    ),
                );
                return None;
            }
        } else if service.ports.len() > 1 {
            // Without a port the cluster's port is the listener's; on a gateway (or a sidecar listener of another
            // service) that is none of this service's ports, so the route would name a cluster that does not exist.
            let known: Vec<String> = service.ports.iter().map(|p| p.number.to_string()).collect();
            diags.error(
                self.meta,
                Code::PortRequired,
                format!("{field}.port"),
                format!(
                    "service `{host}` has several ports ({}); the destination must name one with `port.number`",
                    known.join(", ")
                ),
            );
            return None;
        }
        if let Some(subset) = &d.subset {
            let found = self
                .mesh
                .destination_rules
                .get(&host)
                .is_some_and(|dr| dr.subset(subset).is_some());
            if !found {
                let message = match self.mesh.destination_rules.get(&host) {
                    Some(dr) => format!("subset `{subset}` is not defined by {} (subsets: {})", dr.meta.resource, dr.subsets.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")),
                    None => format!("subset `{subset}` is used but no DestinationRule defines subsets for host `{host}`"),
                };
                diags.error(
                    self.meta,
                    Code::UnknownSubset,
                    format!("{field}.subset"),
                    message,
                );
                return None;
            }
        }
        Some(Destination {
            host,
            subset: d.subset.clone(),
            port: d.port.map(|p| p.number),
        })
    }

    fn redirect(&self, r: &spec::HttpRedirect, diags: &mut Diags) -> Option<Redirect> {
        let spec::HttpRedirect {
            uri,
            authority,
            port,
            derive_port: _,
            scheme,
            redirect_code,
            prefix_rewrite: _,
        } = r;
        let code = redirect_code.unwrap_or(301);
        if ![301, 302, 303, 307, 308].contains(&code) {
            diags.error(
                self.meta,
                Code::OutOfRange,
                self.f("redirect.redirectCode"),
                format!("redirect code {code} is not one of 301, 302, 303, 307, 308"),
            );
            return None;
        }
        Some(Redirect {
            uri: uri.clone(),
            authority: authority.clone(),
            port: *port,
            scheme: scheme.clone(),
            code,
        })
    }

    fn rewrite(&self, r: &spec::HttpRewrite, diags: &mut Diags) -> Option<Rewrite> {
        let spec::HttpRewrite {
            uri,
            authority,
            uri_regex_rewrite,
        } = r;
        if uri.is_some() && uri_regex_rewrite.is_some() {
            diags.error(
                self.meta,
                Code::ConflictingFields,
                self.f("rewrite"),
                "set either `uri` or `uriRegexRewrite`, not both",
            );
            return None;
        }
        if let Some(rr) = uri_regex_rewrite {
            if !validate::regex(
                diags,
                self.meta,
                &self.f("rewrite.uriRegexRewrite.match"),
                &rr.pattern,
            ) {
                return None;
            }
        }
        Some(Rewrite {
            uri: uri.clone(),
            authority: authority.clone(),
            uri_regex: uri_regex_rewrite
                .as_ref()
                .map(|rr| (rr.pattern.clone(), rr.rewrite.clone())),
        })
    }

    fn retries(&self, r: &spec::HttpRetry, diags: &mut Diags) -> Retries {
        let spec::HttpRetry {
            attempts,
            per_try_timeout,
            retry_on,
            retry_remote_localities,
            retry_ignore_previous_hosts,
            backoff,
        } = r;
        if *attempts == 0 {
            return Retries::Disabled;
        }
        let mut conditions = Vec::new();
        let mut codes = Vec::new();
        if let Some(text) = retry_on {
            for (i, token) in text
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .enumerate()
            {
                if let Ok(code) = token.parse::<u32>() {
                    if (100..600).contains(&code) {
                        codes.push(code);
                    } else {
                        diags.error(
                            self.meta,
                            Code::OutOfRange,
                            self.f("retries.retryOn"),
                            format!("status code {code} (entry {i}) is outside 100..599"),
                        );
                    }
                } else if RETRY_ON.contains(&token) {
                    conditions.push(token.to_owned());
                } else {
                    diags.error(
                        self.meta,
                        Code::UnknownName,
                        self.f("retries.retryOn"),
                        format!("`{token}` is not a retry condition Envoy knows"),
                    );
                }
            }
        }
        Retries::Policy(RetryPolicy {
            attempts: *attempts,
            per_try_timeout: validate::opt_duration(
                diags,
                self.meta,
                &self.f("retries.perTryTimeout"),
                per_try_timeout.as_ref(),
            ),
            retry_on: conditions,
            retriable_status_codes: codes,
            retry_remote_localities: retry_remote_localities.unwrap_or(false),
            ignore_previous_hosts: retry_ignore_previous_hosts.unwrap_or(true),
            backoff: validate::opt_positive_duration(
                diags,
                self.meta,
                &self.f("retries.backoff"),
                backoff.as_ref(),
            ),
        })
    }

    fn fault(&self, f: &spec::HttpFaultInjection, diags: &mut Diags) -> Option<Fault> {
        let spec::HttpFaultInjection { delay, abort } = f;
        if delay.is_none() && abort.is_none() {
            diags.error(
                self.meta,
                Code::EmptyFault,
                self.f("fault"),
                "a fault needs `delay`, `abort` or both",
            );
            return None;
        }
        // Istio treats a missing percentage as 0% (its deprecated integer `percent` defaults to 0).
        let pct = |p: Option<&spec::Percent>, field: String, diags: &mut Diags| match p {
            Some(p) => validate::percentage(diags, self.meta, &field, p),
            None => Some(0),
        };
        let delay = match delay {
            None => None,
            Some(d) => {
                let fixed = match &d.fixed_delay {
                    Some(t) => validate::positive_duration(
                        diags,
                        self.meta,
                        &self.f("fault.delay.fixedDelay"),
                        t,
                    ),
                    None => {
                        diags.error(
                            self.meta,
                            Code::MissingField,
                            self.f("fault.delay.fixedDelay"),
                            "a delay needs `fixedDelay`",
                        );
                        None
                    }
                };
                let percentage = pct(
                    d.percentage.as_ref(),
                    self.f("fault.delay.percentage"),
                    diags,
                );
                Some(FaultDelay {
                    fixed_delay: fixed?,
                    percentage: percentage?,
                })
            }
        };
        let abort = match abort {
            None => None,
            Some(a) => {
                let status = match (&a.http_status, &a.grpc_status) {
                    (Some(code), None) if (200..600).contains(code) => {
                        Some(AbortStatus::Http(*code))
                    }
                    (Some(code), None) => {
                        diags.error(
                            self.meta,
                            Code::OutOfRange,
                            self.f("fault.abort.httpStatus"),
                            format!("status {code} is outside 200..599"),
                        );
                        None
                    }
                    (None, Some(name)) => match grpc_code(name) {
                        Some(c) => Some(AbortStatus::Grpc(c)),
                        None => {
                            diags.error(
                                self.meta,
                                Code::UnknownName,
                                self.f("fault.abort.grpcStatus"),
                                format!("`{name}` is not a gRPC status name (e.g. UNAVAILABLE)"),
                            );
                            None
                        }
                    },
                    _ => {
                        diags.error(
                            self.meta,
                            Code::ConflictingFields,
                            self.f("fault.abort"),
                            "an abort needs exactly one of `httpStatus` or `grpcStatus`",
                        );
                        None
                    }
                };
                let percentage = pct(
                    a.percentage.as_ref(),
                    self.f("fault.abort.percentage"),
                    diags,
                );
                Some(FaultAbort {
                    status: status?,
                    percentage: percentage?,
                })
            }
        };
        Some(Fault { delay, abort })
    }

    fn headers(&self, h: &spec::Headers, field: &str, diags: &mut Diags) -> HeaderOperations {
        let mut ops = |o: &Option<spec::HeaderOperations>, side: &str| {
            let Some(o) = o else {
                return HeaderOps::default();
            };
            let names = o
                .set
                .keys()
                .map(|k| ("set", k))
                .chain(o.add.keys().map(|k| ("add", k)));
            for (op, name) in names.chain(o.remove.iter().map(|k| ("remove", k))) {
                // Envoy refuses to modify pseudo-headers and `host` this way (use `rewrite.authority`).
                if name.is_empty() || name.starts_with(':') || name.eq_ignore_ascii_case("host") {
                    diags.error(
                        self.meta,
                        Code::ProtectedHeader,
                        format!("{field}.{side}.{op}"),
                        format!(
                            "header `{name}` cannot be modified (empty, pseudo-header or host)"
                        ),
                    );
                }
            }
            HeaderOps {
                set: o.set.clone(),
                add: o.add.clone(),
                remove: o.remove.clone(),
            }
        };
        let request = ops(&h.request, "request");
        let response = ops(&h.response, "response");
        HeaderOperations { request, response }
    }

    fn cors(&self, c: &spec::CorsPolicy, diags: &mut Diags) -> Option<Cors> {
        let spec::CorsPolicy {
            allow_origins,
            allow_methods,
            allow_headers,
            expose_headers,
            max_age,
            allow_credentials,
            unmatched_preflights: _,
        } = c;
        let mut ok = true;
        for (i, m) in allow_origins.iter().enumerate() {
            ok &= validate::value_match(
                diags,
                self.meta,
                &self.f(&format!("corsPolicy.allowOrigins[{i}]")),
                m,
            );
        }
        let max_age = validate::opt_duration(
            diags,
            self.meta,
            &self.f("corsPolicy.maxAge"),
            max_age.as_ref(),
        );
        ok.then(|| Cors {
            allow_origins: allow_origins.iter().map(string_match).collect(),
            allow_methods: allow_methods.clone(),
            allow_headers: allow_headers.clone(),
            expose_headers: expose_headers.clone(),
            max_age,
            allow_credentials: *allow_credentials,
        })
    }
}

/// gRPC status names as Istio accepts them in `abort.grpcStatus`.
fn grpc_code(name: &str) -> Option<u32> {
    const CODES: &[&str] = &[
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    CODES
        .iter()
        .position(|c| *c == name)
        .and_then(|i| u32::try_from(i).ok())
}
