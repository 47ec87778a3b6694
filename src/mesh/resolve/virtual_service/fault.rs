//! Fault injection: `fault.delay` and `fault.abort` (HTTP or gRPC status).

use super::HttpRouteContext;
use crate::mesh::resolve::validate;
use crate::mesh::resolve::Diags;
use crate::mesh::{AbortStatus, Code, Fault, FaultAbort, FaultDelay};
use crate::spec;

impl HttpRouteContext<'_> {
    pub(super) fn fault(
        &self,
        f: &spec::HttpFaultInjection,
        diags: &mut Diags<'_>,
    ) -> Option<Fault> {
        let spec::HttpFaultInjection { delay, abort } = f;
        if delay.is_none() && abort.is_none() {
            diags.error(
                self.meta,
                Code::EmptyFault,
                self.field("fault"),
                "a fault needs `delay`, `abort` or both",
            );
            return None;
        }
        // Istio treats a missing percentage as 0% (its deprecated integer `percent` defaults to 0).
        let pct = |p: Option<&spec::Percent>, field: String, diags: &mut Diags<'_>| match p {
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
                        &self.field("fault.delay.fixedDelay"),
                        t,
                    ),
                    None => {
                        diags.error(
                            self.meta,
                            Code::MissingField,
                            self.field("fault.delay.fixedDelay"),
                            "a delay needs `fixedDelay`",
                        );
                        None
                    }
                };
                let percentage = pct(
                    d.percentage.as_ref(),
                    self.field("fault.delay.percentage"),
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
                            self.field("fault.abort.httpStatus"),
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
                                self.field("fault.abort.grpcStatus"),
                                format!("`{name}` is not a gRPC status name (e.g. UNAVAILABLE)"),
                            );
                            None
                        }
                    },
                    _ => {
                        diags.error(
                            self.meta,
                            Code::ConflictingFields,
                            self.field("fault.abort"),
                            "an abort needs exactly one of `httpStatus` or `grpcStatus`",
                        );
                        None
                    }
                };
                let percentage = pct(
                    a.percentage.as_ref(),
                    self.field("fault.abort.percentage"),
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
