//! Istio's `TranslateCORSPolicy`, as the CORS filter's per-route config.

use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use envoy_types::pb::google::protobuf::BoolValue;

use crate::mesh::Cors;

use super::*;

/// Istio's `TranslateCORSPolicy`.
pub(super) fn cors_policy(c: &Cors) -> CorsPolicy {
    let Cors {
        allow_origins,
        allow_methods,
        allow_headers,
        expose_headers,
        max_age,
        allow_credentials,
    } = c;
    CorsPolicy {
        allow_origin_string_match: allow_origins.iter().map(string_matcher).collect(),
        allow_methods: allow_methods.join(","),
        allow_headers: allow_headers.join(","),
        expose_headers: expose_headers.join(","),
        max_age: max_age.map(|d| d.as_secs().to_string()).unwrap_or_default(),
        allow_credentials: allow_credentials.map(|value| BoolValue { value }),
        ..Default::default()
    }
}
