//! The Envoy binary: finding or installing it, bootstraps, and supervised processes.
