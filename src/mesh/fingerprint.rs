//! A content fingerprint of a resolved mesh: equal meshes, equal fingerprints, whichever reading produced them.
//! `apply --wait` compares the one of the directory it wrote with the one the server reports, to know that its
//! edit is what is served.
//!
//! It is the hex SHA-256 of each part's name and SHA-256 digest (of the part's JSON form), in the order the
//! mesh declares its parts. Hashing is by part so that a server fingerprints only what a reading changed: the
//! resolver shares every part a change did not touch with the mesh before, and [`Fingerprints`] remembers the
//! last digests by the part's address. Hashing 10,000 workloads costs tens of milliseconds; a weight shift
//! changes only the VirtualServices.

use std::any::Any;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

use super::Mesh;

/// The hex fingerprint of `mesh`.
pub fn fingerprint(mesh: &Mesh) -> String {
    Fingerprints::default().of(mesh)
}

/// Fingerprints one mesh after another, hashing again only the parts that are not the very allocations of the
/// last mesh it fingerprinted.
#[derive(Default)]
pub struct Fingerprints {
    memo: Mutex<Memo>,
}

#[derive(Default)]
struct Memo {
    /// The shared parts of the last mesh fingerprinted, with their digests. A weak reference keeps the
    /// allocation (not the part) from being freed, so its address cannot be another part's while it is here,
    /// and an old mesh is not kept alive by a fingerprint nobody asks for again.
    last: Vec<(Weak<dyn Any + Send + Sync>, [u8; 32])>,
    /// How many parts were hashed, in all.
    hashed: usize,
}

/// A part of a mesh as the allocation it is shared as.
type SharedPart = Arc<dyn Any + Send + Sync>;

/// One part of a mesh: its name, the allocation it is shared as (if it is), and how to hash it.
struct Part<'a> {
    name: &'static str,
    shared: Option<SharedPart>,
    digest: Box<dyn Fn() -> [u8; 32] + 'a>,
}

impl Fingerprints {
    /// The fingerprint of `mesh`, equal to [`fingerprint`]`(mesh)`.
    pub fn of(&self, mesh: &Mesh) -> String {
        let mut memo = self.memo.lock().unwrap_or_else(PoisonError::into_inner);
        let mut kept = Vec::new();
        let mut whole = Sha256::new();
        for part in parts(mesh) {
            let known = part.shared.as_ref().and_then(|shared| {
                memo.last
                    .iter()
                    .find(|(held, _)| std::ptr::addr_eq(held.as_ptr(), Arc::as_ptr(shared)))
                    .map(|(_, digest)| *digest)
            });
            let digest = known.unwrap_or_else(|| {
                memo.hashed += 1;
                (part.digest)()
            });
            whole.update(part.name.as_bytes());
            whole.update(digest);
            if let Some(shared) = part.shared {
                kept.push((Arc::downgrade(&shared), digest));
            }
        }
        memo.last = kept;
        whole
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[cfg(test)]
impl Fingerprints {
    /// How many parts were hashed so far (not taken from the last mesh).
    fn hashed(&self) -> usize {
        self.memo
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .hashed
    }
}

impl std::fmt::Debug for Fingerprints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fingerprints").finish_non_exhaustive()
    }
}

/// Every part of `mesh`, in declaration order. The destructuring names every field, so a part added to [`Mesh`]
/// cannot be left out of the fingerprint.
fn parts(mesh: &Mesh) -> [Part<'_>; 6] {
    let Mesh {
        services,
        workloads,
        destination_rules,
        virtual_services,
        gateways,
        sidecars,
    } = mesh;
    fn shared<'a, T: Serialize + std::fmt::Debug + Send + Sync + 'static>(
        name: &'static str,
        part: &'a Arc<T>,
    ) -> Part<'a> {
        Part {
            name,
            shared: Some(part.clone()),
            digest: Box::new(move || digest(&**part)),
        }
    }
    [
        shared("services", services),
        shared("workloads", workloads),
        shared("destination_rules", destination_rules),
        Part {
            name: "virtual_services",
            shared: None,
            digest: Box::new(move || digest(virtual_services)),
        },
        shared("gateways", gateways),
        shared("sidecars", sidecars),
    ]
}

/// The SHA-256 of `value`'s JSON form.
fn digest<T: Serialize + std::fmt::Debug + ?Sized>(value: &T) -> [u8; 32] {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|e| {
        // Every map in the mesh is keyed by strings, so JSON cannot fail; should a future field break that,
        // the (equally deterministic) debug form still fingerprints the content.
        tracing::debug!(
            "a part of the mesh does not serialize to JSON ({e}); fingerprinting its debug form"
        );
        format!("{value:?}").into_bytes()
    });
    Sha256::digest(&bytes).into()
}

/// The fingerprint of a mesh, computed the first time someone asks for it. Hashing a whole mesh costs more than
/// resolving it (about 70 ms at 10,000 workloads), and even the parts a change replaced cost something: a server
/// accepting a change every second should not pay that for a status nobody reads. Clones share the value.
#[derive(Clone)]
pub struct LazyFingerprint {
    mesh: Arc<Mesh>,
    value: Arc<OnceLock<String>>,
    fingerprints: Arc<Fingerprints>,
}

impl LazyFingerprint {
    /// `mesh`'s fingerprint, to be computed by `fingerprints` (which remembers the last mesh it hashed).
    pub fn of(mesh: Arc<Mesh>, fingerprints: Arc<Fingerprints>) -> LazyFingerprint {
        LazyFingerprint {
            mesh,
            value: Arc::default(),
            fingerprints,
        }
    }

    pub fn get(&self) -> &str {
        self.value.get_or_init(|| self.fingerprints.of(&self.mesh))
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
        let lazy = LazyFingerprint::of(mesh.clone(), Arc::default());
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

    fn mesh(yaml: &str) -> Mesh {
        let config = crate::spec::load_str("mesh.yaml", yaml).unwrap();
        (*crate::mesh::resolve(&config).unwrap().mesh).clone()
    }

    const READING: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec: {address: 127.0.0.11, labels: {app: reviews, version: v1}}
"#;

    #[test]
    fn equal_meshes_from_separate_readings_have_one_fingerprint_and_a_changed_one_another() {
        let one = mesh(READING);
        assert_eq!(fingerprint(&one), fingerprint(&mesh(READING)));
        let other = mesh(&READING.replace("127.0.0.11", "127.0.0.12"));
        assert_ne!(fingerprint(&one), fingerprint(&other));
    }

    #[test]
    fn a_part_shared_with_the_last_mesh_keeps_its_digest_and_a_replaced_one_is_hashed_again() {
        let one = mesh(READING);
        let fingerprints = Fingerprints::default();
        assert_eq!(fingerprints.of(&one), fingerprint(&one));
        // The next reading: the very services, other workloads (another allocation, other content), as the
        // resolver shares what a change did not touch.
        let mut two = one.clone();
        let mut workloads = (*two.workloads).clone();
        for workload in workloads.values_mut() {
            Arc::make_mut(workload).address = "127.0.0.12".into();
        }
        two.workloads = Arc::new(workloads);
        assert!(Arc::ptr_eq(&one.services, &two.services));
        let hashed = fingerprints.hashed();
        assert_eq!(fingerprints.of(&two), fingerprint(&two));
        assert_ne!(fingerprint(&two), fingerprint(&one));
        // The workloads and the VirtualServices (never shared) were hashed; the other four parts were not.
        assert_eq!(fingerprints.hashed() - hashed, 2);
        // And back: the first mesh's workloads are not the ones remembered any more.
        assert_eq!(fingerprints.of(&one), fingerprint(&one));
    }

    #[test]
    fn a_bookinfo_mesh_fingerprints_its_json_form() {
        // The debug form is only a fallback: every part of a real mesh (the Mesh serializes exactly when each of
        // its parts does) has a JSON form.
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let config = crate::spec::load_paths(&[
            root.join("config"),
            root.join("../shared/istio-bookinfo/virtual-service-all-v1.yaml"),
        ])
        .unwrap();
        let mesh = crate::mesh::resolve(&config).unwrap().mesh;
        assert!(
            !mesh.virtual_services.is_empty()
                && !mesh.destination_rules.is_empty()
                && !mesh.gateways.is_empty()
        );
        serde_json::to_vec(&*mesh).unwrap();
    }
}
