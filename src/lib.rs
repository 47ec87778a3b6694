//! Switchyard: an Envoy xDS control plane that speaks Istio's traffic API.
//!
//! One pipeline, one direction (see `design.md`):
//! spec files → [`spec`] → [`mesh`] → [`translate`] → [`xds`] → Envoy.
#![deny(rust_2018_idioms)]
#![forbid(unsafe_code)]

pub mod cli;
pub mod envoy;
pub mod mesh;
pub mod spec;
pub mod translate;
pub mod xds;
