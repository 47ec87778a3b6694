//! The snapshot cache and the ADS server (State-of-the-World and Delta).
//!
//! - [`snapshot`]: encoded, content-versioned resources, shared between proxies.
//! - [`generation`]: what a configuration serves each node; [`cache`]: the current generation (latest wins);
//!   [`board`]: which streams a new one concerns.
//! - [`sotw`], [`delta`]: per-stream protocol state machines, free of I/O.
//! - [`server`]: the stream tasks that drive them; [`grpc`]: the gRPC service that frames their responses;
//!   [`requests`]: the request messages, decoded without a buffer kept between them.
//! - [`status`]: the per-proxy record of what was sent, acknowledged and rejected, and the totals since start.
//! - [`metrics`], [`convergence`]: push times, response sizes and how long each proxy took to catch up with a
//!   change, recorded where they happen.
//! - [`csds`]: the Client Status Discovery Service, answering from that record beside ADS.
//! - [`tls`], [`identity`]: xDS over (mutual) TLS with reloadable certificates, and the binding of each
//!   stream to the identity in its client certificate.
//! - [`limits`], [`connections`], [`outbox`]: what any client may make the port hold (connections, streams,
//!   request and node sizes, queued response bytes), and closing connections that carry no stream.

pub mod board;
pub mod cache;
pub mod connections;
pub mod convergence;
pub mod csds;
pub mod delta;
pub mod event;
mod frame;
pub mod generation;
mod grpc;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod names;
pub mod outbox;
pub mod outgoing;
mod refusal;
mod requests;
pub mod resource_type;
pub mod server;
pub mod snapshot;
pub mod sotw;
pub mod status;
pub mod subscription;
pub mod tls;

pub use board::CacheWatch;
pub use cache::Cache;
pub use generation::{Generation, NoConfig, Reach, Replaced, Uniform};
pub use limits::{Limit, LimitCounters, XdsLimits};
pub use metrics::XdsHistograms;
pub use outgoing::Outgoing;
pub use resource_type::{PerType, ResourceType};
pub use server::{AdsServer, ServeError};
pub use snapshot::{
    Encoded, Interner, Layer, LayerChange, SharedEntries, Snapshot, SnapshotBuilder,
};
pub use status::{ProxyRegistry, ProxyStatus};
pub use tls::{TlsCounters, TlsOptions, XdsTls};
