//! Istio's `TranslateRetryPolicy`.

use envoy_types::pb::envoy::config::route::v3::{
    retry_policy::{RetryBackOff, RetryPriority},
    RetryPolicy as EnvoyRetryPolicy,
};
use envoy_types::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
use envoy_types::util::pack_any;

use crate::mesh::RetryPolicy;
use crate::translate::build;

/// Istio's `retry.ConvertPolicy`.
pub(super) fn retry_policy(p: &RetryPolicy) -> EnvoyRetryPolicy {
    let RetryPolicy {
        attempts,
        per_try_timeout,
        retry_on,
        retriable_status_codes,
        retry_remote_localities,
        ignore_previous_hosts,
        backoff,
    } = p;
    let mut out = build::default_retry_policy();
    out.num_retries = Some(build::u32_value(*attempts));
    if !retry_on.is_empty() || !retriable_status_codes.is_empty() {
        let mut on = retry_on.clone();
        if !retriable_status_codes.is_empty() && !on.iter().any(|c| c == "retriable-status-codes") {
            on.push("retriable-status-codes".to_owned());
        }
        out.retry_on = on.join(",");
        out.retriable_status_codes = retriable_status_codes.clone();
    }
    out.per_try_timeout = per_try_timeout.map(build::duration);
    if !ignore_previous_hosts {
        out.retry_host_predicate.clear();
    }
    if *retry_remote_localities {
        out.retry_priority = Some(RetryPriority {
            name: "envoy.retry_priorities.previous_priorities".to_owned(),
            config_type: Some(envoy_types::pb::envoy::config::route::v3::retry_policy::retry_priority::ConfigType::TypedConfig(pack_any(
                PreviousPrioritiesConfig { update_frequency: 2 },
            ))),
        });
    }
    out.retry_back_off = backoff.map(|b| RetryBackOff {
        base_interval: Some(build::duration(b)),
        ..Default::default()
    });
    out
}
