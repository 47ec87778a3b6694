//! Contour-style constructors for Envoy messages, named after the message they build. They take plain values,
//! never mesh types, so tests and the bootstrap generator can use them too.

mod cluster;
mod core;
mod listener;
mod route;

pub use self::cluster::*;
pub use self::core::*;
pub use self::listener::*;
pub use self::route::*;
