//! Istio's `TranslateFault`: delays and aborts, as the fault filter's per-route config.

use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{
    fault_delay, FaultDelay as EnvoyFaultDelay,
};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    fault_abort, FaultAbort as EnvoyFaultAbort, HttpFault,
};

use crate::mesh::{AbortStatus, Fault};
use crate::translate::build;

/// Istio's `TranslateFault`: fixed delay and/or abort, percentages in millionths.
pub(super) fn fault(f: &Fault) -> HttpFault {
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
