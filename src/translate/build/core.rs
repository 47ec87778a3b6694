//! `envoy.config.core.v3` and well-known types.

#[allow(clippy::disallowed_types)]
use std::collections::HashMap;
use std::time::Duration as StdDuration;

use envoy_types::pb::envoy::config::core::v3::{
    address, config_source, socket_address, Address, AggregatedConfigSource, ApiVersion,
    ConfigSource, HeaderValue, HeaderValueOption, Metadata, SocketAddress,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{string_matcher, RegexMatcher, StringMatcher};
use envoy_types::pb::envoy::r#type::v3::{fractional_percent::DenominatorType, FractionalPercent};
use envoy_types::pb::google::protobuf::{value::Kind, Duration, Struct, UInt32Value, Value};

pub fn duration(d: StdDuration) -> Duration {
    Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

pub fn seconds(s: i64) -> Duration {
    Duration {
        seconds: s,
        nanos: 0,
    }
}

pub fn u32_value(value: u32) -> UInt32Value {
    UInt32Value { value }
}

pub fn string_value(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    }
}

/// `filter_metadata: {istio: {config: <path>}}`, what Istio stamps so config dumps trace back to YAML.
///
/// One key per map on purpose: envoy-types' maps are `HashMap`s, which encode in random order, and a second
/// key would make the output differ from run to run.
#[allow(clippy::disallowed_types)]
pub fn istio_metadata(config_path: &str) -> Metadata {
    let config = Struct {
        fields: HashMap::from([("config".to_owned(), string_value(config_path))]),
    };
    Metadata {
        filter_metadata: HashMap::from([("istio".to_owned(), config)]),
        ..Default::default()
    }
}

pub fn socket_address(ip: &str, port: u32) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_owned(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}

/// `{ads: {}, initial_fetch_timeout: 0s, resource_api_version: V3}` (Istio's shape for RDS and EDS).
pub fn ads_config_source() -> ConfigSource {
    ConfigSource {
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        initial_fetch_timeout: Some(seconds(0)),
        resource_api_version: ApiVersion::V3 as i32,
        ..Default::default()
    }
}

pub fn per_million(numerator: u32) -> FractionalPercent {
    FractionalPercent {
        numerator,
        denominator: DenominatorType::Million as i32,
    }
}

pub fn regex_matcher(pattern: &str) -> RegexMatcher {
    RegexMatcher {
        regex: pattern.to_owned(),
        ..Default::default()
    }
}

pub fn string_matcher_exact(v: &str, ignore_case: bool) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::Exact(v.to_owned())),
        ignore_case,
    }
}

pub fn string_matcher_prefix(v: &str, ignore_case: bool) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::Prefix(v.to_owned())),
        ignore_case,
    }
}

pub fn string_matcher_regex(pattern: &str) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::SafeRegex(regex_matcher(
            pattern,
        ))),
        ignore_case: false,
    }
}

pub fn header_value_option(key: &str, value: &str, append_action: i32) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value: value.to_owned(),
            ..Default::default()
        }),
        append_action,
        ..Default::default()
    }
}
