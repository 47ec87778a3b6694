//! Istio's `TranslateRouteMatch`: URI, method, authority, scheme, header and query parameter matches.

use envoy_types::pb::envoy::config::route::v3::{
    header_matcher::HeaderMatchSpecifier, query_parameter_matcher::QueryParameterMatchSpecifier,
    route_match::PathSpecifier, HeaderMatcher, QueryParameterMatcher,
    RouteMatch as EnvoyRouteMatch,
};
use envoy_types::pb::google::protobuf::BoolValue;

use crate::mesh::{RouteMatch, StringMatch};
use crate::translate::build;

/// Istio's `TranslateRouteMatch`.
pub(super) fn route_match(m: Option<&RouteMatch>) -> EnvoyRouteMatch {
    let Some(m) = m else {
        return build::prefix_match("/");
    };
    let RouteMatch {
        uri,
        scheme,
        method,
        authority,
        headers: header_matches,
        without_headers,
        query_params,
        ignore_uri_case,
        // Whether the match applies to this proxy at all: `applies`. The name: `translate_route`'s.
        name: _,
        port: _,
        source_labels: _,
        source_namespace: _,
        gateways: _,
    } = m;
    let path = match uri {
        None => PathSpecifier::Prefix("/".to_owned()),
        Some(StringMatch::Exact(p)) => PathSpecifier::Path(p.clone()),
        Some(StringMatch::Prefix(p)) => PathSpecifier::Prefix(p.clone()),
        Some(StringMatch::Present) => PathSpecifier::Prefix("/".to_owned()),
        // Envoy ignores `case_sensitive` for regexes, so case-insensitivity goes into the pattern itself.
        Some(StringMatch::Regex(r)) if *ignore_uri_case => {
            PathSpecifier::SafeRegex(build::regex_matcher(&format!("(?i){r}")))
        }
        Some(StringMatch::Regex(r)) => PathSpecifier::SafeRegex(build::regex_matcher(r)),
    };
    let mut headers: Vec<HeaderMatcher> = Vec::new();
    for (name, value) in [
        (":method", method),
        (":authority", authority),
        (":scheme", scheme),
    ] {
        if let Some(v) = value {
            headers.push(build::header_matcher(name, header_spec(v)));
        }
    }
    headers.extend(
        header_matches
            .iter()
            .map(|(k, v)| build::header_matcher(k, header_spec(v))),
    );
    headers.extend(without_headers.iter().map(|(k, v)| {
        let mut h = build::header_matcher(k, header_spec(v));
        h.invert_match = true;
        // A missing header does not "match" a value, so it must count as satisfying `withoutHeaders`.
        h.treat_missing_header_as_empty = !is_presence(v);
        h
    }));
    headers.sort_by(|a, b| a.name.cmp(&b.name));
    EnvoyRouteMatch {
        path_specifier: Some(path),
        case_sensitive: ignore_uri_case.then_some(BoolValue { value: false }),
        headers,
        query_parameters: query_params
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
pub(super) fn is_presence(v: &StringMatch) -> bool {
    matches!(v, StringMatch::Present) || matches!(v, StringMatch::Prefix(p) if p.is_empty())
}

pub(super) fn header_spec(v: &StringMatch) -> HeaderMatchSpecifier {
    if is_presence(v) {
        HeaderMatchSpecifier::PresentMatch(true)
    } else {
        HeaderMatchSpecifier::StringMatch(string_matcher(v))
    }
}

pub(super) fn string_matcher(
    v: &StringMatch,
) -> envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher {
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
