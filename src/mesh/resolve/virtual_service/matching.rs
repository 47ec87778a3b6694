//! Istio's `HTTPMatchRequest` → `RouteMatch`: uri, scheme, method, authority, headers, query parameters,
//! and the conditions decided per proxy (port, source labels and namespace, gateways).

use std::collections::BTreeMap;

use super::gateway_ref;
use super::HttpRouteContext;
use crate::mesh::resolve::validate;
use crate::mesh::resolve::validate::to_mesh_match as string_match;
use crate::mesh::resolve::Diags;
use crate::mesh::{RouteMatch, StringMatch};
use crate::spec;

impl HttpRouteContext<'_> {
    pub(super) fn route_match(
        &self,
        m: &spec::HttpMatchRequest,
        field: &str,
        diags: &mut Diags<'_>,
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
                           diags: &mut Diags<'_>|
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
}
