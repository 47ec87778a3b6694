//! Resolution and cross-resource validation: `spec::Config` in, an immutable `Mesh` or diagnostics out.
