//! Resolution and cross-resource validation: `spec::Config` in, an immutable `Mesh` or diagnostics out.
//!
//! Everything that can be wrong with a configuration is found here, so that `translate` cannot fail: hosts are
//! expanded to FQDNs, subsets checked against DestinationRules, destinations against ServiceEntries, durations,
//! regexes and percentages parsed. The result is either a complete [`Mesh`] (plus warnings) or a list of
//! diagnostics, never half of each.

mod code;
mod diagnostic;
pub mod duration;
mod fingerprint;
mod model;
pub mod names;
mod proxy;
mod resolve;

pub use code::{markdown_table as diagnostic_codes_table, Code};
pub use diagnostic::{load_diagnostics, Diagnostic, Severity};
pub use fingerprint::{fingerprint, Fingerprints, LazyFingerprint};
pub use model::*;
pub use proxy::{node_metadata_keys, IdentityError, Proxy, RouteScope, Router, Sidecar};
pub use resolve::{resolve, Resolver};

use std::sync::Arc;

/// The labels of the ingress gateway Istio installs (`istio-ingressgateway`), which Istio's samples select
/// and which `switchyard bootstrap --gateway istio-ingressgateway` and the demo give their gateway.
pub fn default_ingress_gateway_labels() -> Labels {
    Labels::from([
        ("app".to_string(), "istio-ingressgateway".to_string()),
        ("istio".to_string(), "ingressgateway".to_string()),
    ])
}

/// A successfully resolved configuration and the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub mesh: Arc<Mesh>,
    pub warnings: Vec<Diagnostic>,
}
