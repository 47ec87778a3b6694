//! What the mesh is doing now, from the Envoys' own admin stats: per service and subset the request rate, its
//! share of the service's traffic and its success rate; per proxy its sync state and the faults it injected.
//! Envoy's counters only go up, so every figure is a difference between the oldest and the newest reading of
//! a sliding window (no `/reset_counters`). Requests are counted at the callers' `outbound|...` clusters, so
//! each call counts once; an aborted call reaches no cluster and shows as a fault injected on its caller.
//!
//! `switchyard top` ([`figures`], [`window`], [`read`] over the admin endpoint's `/debug/proxies`) and the
//! admin endpoint's dashboard ([`live`], over the proxy registry) compute them the same way, here.
//!
//! Trust: the Envoys are found at each connected proxy's pod IP (the first `INSTANCE_IPS` of the node metadata
//! it sent) on Envoy's admin port 15000, and only `GET /stats?format=json&filter=...` is asked there. A proxy
//! declares its own metadata, so a client that may connect to the xDS port can make the server send that GET
//! to port 15000 of an address it names, and show the counters it finds there as its own; under mutual TLS
//! only a proxy holding a certificate can. That is the same reach `switchyard top` has, and the server does it
//! only while someone allowed to read the admin endpoint watches the dashboard; what it keeps of an answer
//! is bounded (answers of at most [`read::MAX_ANSWER_BYTES`], the counters the figures use, at most
//! [`read::MAX_COUNTERS`] of them, from at most [`read::MAX_ENVOYS`] Envoys, over one window).

pub mod figures;
pub mod live;
pub mod proxy;
pub mod read;
pub mod window;

pub use figures::{ProxyRow, Reading, Snapshot, SubsetRow};
pub use live::{LiveTraffic, Settings};
pub use proxy::ProxyView;
pub use read::{envoy_addresses, read};
pub use window::Window;
