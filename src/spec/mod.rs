//! The user's API: Istio `networking.istio.io/v1` resources loaded from YAML with provenance.

pub mod edit;
pub use edit::{write_atomic, Applied, EditError, InputDocument, SpecDir};
