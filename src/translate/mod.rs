//! Pure translation of a `Mesh` into the Envoy resources one proxy should see.
