//! Helpers shared by the integration tests, one module per concern:
//!
//! - [`browser`]: a real headless Chromium over WebDriver, for pages as people see them.
//! - [`envoy`]: the real Envoy binary, found or installed once, and `envoy --mode validate`.
//! - [`checkout`]: a scratch copy of the spec directory and the Istio samples, for the CLI tests.
//! - [`fixtures`]: tiny hand-built Envoy resources and snapshots.
//! - [`golden`]: rendering resources as a config dump shows them, and golden files.
//! - [`metrics`]: an admin endpoint's `/metrics`, parsed as Prometheus would.
//! - [`simulate`]: which listener, route and cluster a request hits in translated resources.
//! - [`spec_dir`]: a scratch spec directory and what clumsy or hostile operators do to one (FIFOs, swaps).
//! - [`xds`]: an in-process xDS server and scripted ADS clients.
//!
//! Every test binary compiles this module whole and uses a part of it, so unused items are expected here.
#![allow(dead_code)]

pub mod browser;
pub mod checkout;
pub mod envoy;
pub mod fixtures;
pub mod golden;
pub mod metrics;
pub mod simulate;
pub mod spec_dir;
pub mod xds;
