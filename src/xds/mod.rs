//! The snapshot cache and the ADS server (State-of-the-World and Delta).
//!
//! - [`snapshot`]: encoded, content-versioned resources, shared between proxies.
//! - [`cache`]: the current generation, published through a `watch` (latest wins).
//! - [`sotw`], [`delta`]: per-stream protocol state machines, free of I/O.
//! - [`server`]: the stream tasks that drive them; [`grpc`]: the gRPC service that frames their responses.
//! - [`status`]: the per-proxy record of what was sent, acknowledged and rejected.
//! - [`tls`], [`identity`]: xDS over (mutual) TLS with reloadable certificates, and the binding of each
//!   stream to the identity in its client certificate.

pub mod cache;
pub mod delta;
pub mod event;
mod grpc;
pub mod identity;
pub mod names;
mod refusal;
pub mod resource_type;
pub mod server;
pub mod snapshot;
pub mod sotw;
pub mod status;
pub mod subscription;
pub mod tls;

pub use cache::{Cache, Generation, NoConfig, Uniform};
pub use resource_type::{PerType, ResourceType};
pub use server::{AdsServer, ServeError};
pub use snapshot::{Encoded, Interner, Layer, LayerChange, Snapshot, SnapshotBuilder};
pub use status::{ProxyRegistry, ProxyStatus};
pub use tls::{TlsCounters, TlsOptions, XdsTls};
