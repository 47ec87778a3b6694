//! A content fingerprint of a resolved mesh (hex SHA-256 of its JSON form): equal meshes, equal fingerprints,
//! whichever reading produced them. `apply --wait` compares the one of the directory it wrote with the one the
//! server reports, to know that its edit is what is served.

use std::sync::{Arc, OnceLock};

use serde::{Serialize, Serializer};

use super::Mesh;

/// The hex SHA-256 of `mesh`'s JSON form.
pub fn fingerprint(mesh: &Mesh) -> String {
    use sha2::{Digest, Sha256};
    let bytes = serde_json::to_vec(mesh).unwrap_or_else(|e| {
        // Every map in the mesh is keyed by strings, so JSON cannot fail; should a future field break that,
        // the (equally deterministic) debug form still fingerprints the content.
        tracing::debug!("the mesh does not serialize to JSON ({e}); fingerprinting its debug form");
        format!("{mesh:?}").into_bytes()
    });
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The fingerprint of a mesh, computed the first time someone asks for it. Hashing the whole mesh costs about
/// as much as resolving it (25 ms at 10,000 workloads): a server accepting a change every second should not pay
/// that for a status nobody reads. Clones share the value.
#[derive(Clone)]
pub struct LazyFingerprint {
    mesh: Arc<Mesh>,
    value: Arc<OnceLock<String>>,
}

impl LazyFingerprint {
    pub fn of(mesh: Arc<Mesh>) -> LazyFingerprint {
        LazyFingerprint {
            mesh,
            value: Arc::default(),
        }
    }

    pub fn get(&self) -> &str {
        self.value.get_or_init(|| fingerprint(&self.mesh))
    }

    /// Whether [`LazyFingerprint::get`] would return at once.
    pub fn is_computed(&self) -> bool {
        self.value.get().is_some()
    }
}

impl std::fmt::Debug for LazyFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.value.get() {
            Some(value) => f.write_str(value),
            None => f.write_str("<not computed yet>"),
        }
    }
}

impl Serialize for LazyFingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lazy_fingerprint_is_the_fingerprint_and_is_computed_once_for_all_clones() {
        let mesh = Arc::new(Mesh::default());
        let lazy = LazyFingerprint::of(mesh.clone());
        let clone = lazy.clone();
        assert_eq!(format!("{clone:?}"), "<not computed yet>");
        assert_eq!(lazy.get(), fingerprint(&mesh));
        // Computed through one, there for the other.
        assert_eq!(format!("{clone:?}"), fingerprint(&mesh));
        assert_eq!(
            serde_json::to_string(&clone).unwrap(),
            format!("\"{}\"", fingerprint(&mesh))
        );
    }
}
