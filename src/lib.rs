//! Switchyard: an Envoy xDS control plane that speaks Istio's traffic API.
//!
//! One pipeline, one direction (see `docs/architecture.md`; `tests/layering.rs` keeps it so):
//! spec files → [`spec`] → [`mesh`] → [`translate`] → [`xds`] → Envoy.
#![deny(rust_2018_idioms, clippy::disallowed_types)]
#![forbid(unsafe_code)]

pub mod admin;
pub mod certs;
pub mod cli;
pub mod control_plane;
pub mod demo;
pub mod envoy;
pub mod mesh;
pub mod meshgen;
pub mod node_id;
pub mod source;
pub mod spec;
pub mod topology;
pub mod traffic;
pub mod translate;
pub mod watcher;
pub mod xds;
