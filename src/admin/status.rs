//! The state of the configuration as the control plane last read it: what is served, and what is wrong. The
//! control plane's pipeline writes it; it is defined here, with the endpoint that shows it, so that the admin
//! endpoint depends on nothing above the stages it reports on.

use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;

use crate::mesh::{Diagnostic, LazyFingerprint};

#[derive(Debug, Clone, Default, Serialize)]
pub struct ConfigStatus {
    /// The spec directory being watched (absolute), so a client can tell whether its edit is this server's.
    pub spec_dir: Option<PathBuf>,
    /// The latest reading of the specs.
    pub revision: u64,
    /// The reading being served, if any was ever valid.
    pub accepted_revision: Option<u64>,
    /// What is being served, by content: [`crate::mesh::fingerprint`] of the accepted mesh. Revisions count
    /// readings, so a re-read of unchanged files gets a new revision; this tells whether a given content
    /// is the one being served. Computed when first shown.
    pub accepted_fingerprint: Option<LazyFingerprint>,
    #[serde(serialize_with = "http_date_option")]
    pub accepted_at: Option<SystemTime>,
    /// Why the latest reading was rejected (empty when it was accepted). Proxies keep the accepted one.
    pub errors: Vec<Diagnostic>,
    /// Warnings of the latest reading.
    pub warnings: Vec<Diagnostic>,
    pub accepted_total: u64,
    pub rejected_total: u64,
}

impl ConfigStatus {
    /// True when the latest reading is the one being served.
    pub fn is_current(&self) -> bool {
        self.accepted_revision == Some(self.revision)
    }
}

fn http_date_option<S: serde::Serializer>(
    time: &Option<SystemTime>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => crate::xds::status::http_date(time, serializer),
        None => serializer.serialize_none(),
    }
}
