//! `retries`: attempts, per-try timeout and Envoy's `retry_on` conditions.

use super::HttpRouteContext;
use crate::mesh::resolve::validate;
use crate::mesh::resolve::Diags;
use crate::mesh::{Code, Retries, RetryPolicy};
use crate::spec;

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

impl HttpRouteContext<'_> {
    pub(super) fn retries(&self, r: &spec::HttpRetry, diags: &mut Diags<'_>) -> Retries {
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
                            self.field("retries.retryOn"),
                            format!("status code {code} (entry {i}) is outside 100..599"),
                        );
                    }
                } else if RETRY_ON.contains(&token) {
                    conditions.push(token.to_owned());
                } else {
                    diags.error(
                        self.meta,
                        Code::UnknownName,
                        self.field("retries.retryOn"),
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
                &self.field("retries.perTryTimeout"),
                per_try_timeout.as_ref(),
            ),
            retry_on: conditions,
            retriable_status_codes: codes,
            retry_remote_localities: retry_remote_localities.unwrap_or(false),
            ignore_previous_hosts: retry_ignore_previous_hosts.unwrap_or(true),
            backoff: validate::opt_positive_duration(
                diags,
                self.meta,
                &self.field("retries.backoff"),
                backoff.as_ref(),
            ),
        })
    }
}
