//! RDS: route configurations per outbound port (sidecars) or per server port (gateways), and the inline inbound
//! route. One file per concern, after Istio's `Translate*` helpers; the route configurations themselves are
//! built in `sidecar` and `gateway`.

mod action;
mod cors;
mod fault;
mod gateway;
mod hash;
mod headers;
mod matching;
mod mirror;
mod retry;
mod sidecar;
mod virtual_service;

use action::*;
use cors::*;
use fault::*;
pub(in crate::translate) use gateway::router;
use hash::*;
use headers::*;
use matching::*;
use mirror::*;
use retry::*;
pub(in crate::translate) use sidecar::{inbound, sidecar};
use virtual_service::*;

use crate::mesh::{GatewayRef, Labels};

/// Which proxy and listener routes are being built for: decides `sourceLabels`, `sourceNamespace`, `port` and
/// `gateways` match conditions, which Istio evaluates at translation time, not at request time.
pub(super) struct Scope<'a> {
    pub(super) port: u32,
    pub(super) gateway: &'a GatewayRef,
    pub(super) labels: &'a Labels,
    pub(super) namespace: &'a str,
}
