//! Any mesh that validates translates, for every proxy it can serve, into resources that are consistent
//! (every route names a cluster that exists, every EDS cluster has its endpoints) and deterministic (the same
//! bytes twice). That Real Envoy accepts them is checked by replaying the corpus through
//! `envoy --mode validate` (docs/fuzzing.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use switchyard::translate;
use switchyard_fuzz::{proxies, resolve, snapshot_of};

fuzz_target!(|data: &[u8]| {
    let Some(mesh) = std::str::from_utf8(data).ok().and_then(resolve) else {
        return;
    };
    for proxy in proxies(&mesh) {
        let resources = translate::translate(&mesh, &proxy);
        if let Err(e) = resources.check_consistent() {
            panic!("{proxy:?} got inconsistent resources: {e:?}");
        }
        let again = translate::translate(&mesh, &proxy);
        let bytes = |r: &translate::Resources| -> Vec<Vec<u8>> {
            r.clusters
                .iter()
                .map(Message::encode_to_vec)
                .chain(r.endpoints.iter().map(Message::encode_to_vec))
                .chain(r.listeners.iter().map(Message::encode_to_vec))
                .chain(r.routes.iter().map(Message::encode_to_vec))
                .collect()
        };
        assert!(
            bytes(&resources) == bytes(&again),
            "{proxy:?}: translating twice gave different bytes"
        );
        let _ = snapshot_of(&resources);
    }
});
