//! Istio's `TranslateFault`: delays and aborts, as the fault filter's per-route config.

use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{
    fault_delay, FaultDelay as EnvoyFaultDelay,
};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    fault_abort, FaultAbort as EnvoyFaultAbort, HttpFault,
};

use crate::mesh::{AbortStatus, Fault, FaultAbort, FaultDelay};
use crate::translate::build;

/// Istio's `TranslateFault`: fixed delay and/or abort, percentages in millionths.
pub(super) fn fault_filter_config(f: &Fault) -> HttpFault {
    let Fault { delay, abort } = f;
    HttpFault {
        delay: delay.as_ref().map(|d| {
            let FaultDelay {
                fixed_delay,
                percentage,
            } = d;
            EnvoyFaultDelay {
                percentage: Some(build::per_million(*percentage)),
                fault_delay_secifier: Some(fault_delay::FaultDelaySecifier::FixedDelay(
                    build::duration(*fixed_delay),
                )),
            }
        }),
        abort: abort.as_ref().map(|a| {
            let FaultAbort { status, percentage } = a;
            EnvoyFaultAbort {
                percentage: Some(build::per_million(*percentage)),
                error_type: Some(match *status {
                    AbortStatus::Http(code) => fault_abort::ErrorType::HttpStatus(code),
                    AbortStatus::Grpc(code) => fault_abort::ErrorType::GrpcStatus(code),
                }),
                ..Default::default()
            }
        }),
        ..Default::default()
    }
}
