//! The user's API: Istio `networking.istio.io/v1` resources loaded from YAML with provenance.
//!
//! Every struct mirrors Istio's field names and rejects unknown fields, so a typo fails loudly. Fields Istio has
//! but Switchyard does not implement yet are typed as [`NotSupported`] (or enums whose unsupported variants fail),
//! so they are load errors that say "not supported yet" instead of being dropped silently.

mod common;
mod config;
mod destination_rule;
pub mod edit;
mod files;
mod gateway;
mod load;
mod locate;
mod nesting;
mod service_entry;
mod shorten;
mod sidecar;
mod virtual_service;
mod workload_entry;

pub use common::{NotSupported, Percent, PortSelector, StringMatch};
pub use config::{Config, Kind, ObjectMeta, Origin, ResourceKey, Sourced};
pub use destination_rule::*;
pub use edit::{write_atomic, Applied, EditError, InputDocument, SpecDir};
pub use files::is_spec_file;
pub use gateway::*;
pub use load::{
    load_paths, load_paths_with, load_str, LoadCode, LoadError, LoadErrors, LoadOptions, Loader,
    DEFAULT_MAX_FILE_SIZE, SETTLED,
};
pub use locate::{field_line, Source};
pub use nesting::MAX_NESTING;
pub use service_entry::*;
pub use shorten::{shorten, shorten_value};
pub use sidecar::{EgressListener, Sidecar, WorkloadSelector};
pub use virtual_service::*;
pub use workload_entry::*;
