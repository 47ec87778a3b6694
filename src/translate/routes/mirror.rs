//! Istio's request mirroring.

use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
use envoy_types::pb::envoy::config::route::v3::route_action::RequestMirrorPolicy;

use crate::mesh::{Mesh, Mirror};
use crate::translate::build;

use super::*;

pub(super) fn mirror(mesh: &Mesh, m: &Mirror, listener_port: u32) -> RequestMirrorPolicy {
    let Mirror {
        destination,
        percentage,
    } = m;
    RequestMirrorPolicy {
        cluster: destination_cluster(mesh, destination, listener_port),
        runtime_fraction: Some(RuntimeFractionalPercent {
            default_value: Some(build::per_million(*percentage)),
            ..Default::default()
        }),
        ..Default::default()
    }
}
