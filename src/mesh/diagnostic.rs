//! Diagnostics: one problem in the user's configuration, located precisely enough to fix it.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::spec::{LoadError, LoadErrors, Origin, ResourceKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "Error",
            Severity::Warning => "Warning",
        })
    }
}

/// Codes are stable: `IST…` where Istio's analyzer has the same check, `SY…` for Switchyard's own.
///
/// | code | meaning |
/// |---|---|
/// | SY0001-SY0004 | load errors (see `spec::LoadError`) |
/// | SY0101 | destination host defined by no ServiceEntry |
/// | IST0101 | subset defined by no DestinationRule |
/// | SY0102 | subset selects no workload (warning) |
/// | SY0103 | negative weight, or all weights zero |
/// | SY0104 | the same resource defined twice |
/// | SY0105 | regex Envoy's RE2 would reject |
/// | SY0106 | bad duration |
/// | SY0107 | header name not lowercase |
/// | SY0108 | fault with neither delay nor abort |
/// | SY0109 | percentage outside 0..100 |
/// | SY0110 | Gateway selector matches no workload (warning) |
/// | SY0111 | destination port not defined by the service |
/// | IST0112 | destination without a port on a service with several ports |
/// | SY0112 | gateway referenced by a VirtualService does not exist |
/// | SY0113 | two mesh VirtualServices claim the same host (gateways merge them) |
/// | SY0114 | valid Istio, not supported yet |
/// | SY0115 | invalid value |
/// | SY0116 | ServiceEntry with both endpoints and workloadSelector |
/// | SY0117 | duplicate subset name |
/// | SY0118 | DestinationRule host defined by no ServiceEntry (warning) |
/// | SY0119 | two ServiceEntries define the same host |
/// | SY0120 | two DestinationRules for the same host |
/// | SY0121 | two ServiceEntries claim the same address |
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: &'static str,
    pub file: PathBuf,
    pub line: usize,
    pub resource: Option<ResourceKey>,
    /// Dotted path from the document root, e.g. `spec.http[0].route[0].destination.subset`.
    pub field: String,
    pub message: String,
}

impl Diagnostic {
    pub fn new(
        severity: Severity,
        code: &'static str,
        origin: &Origin,
        resource: &ResourceKey,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            severity,
            code,
            file: origin.file.clone(),
            line: origin.line,
            resource: Some(resource.clone()),
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.severity, self.code)?;
        if let Some(r) = &self.resource {
            write!(f, " ({} {}/{})", r.kind, r.namespace, r.name)?;
        }
        write!(f, " {}:{}", self.file.display(), self.line)?;
        if !self.field.is_empty() {
            write!(f, " {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Load errors in the same shape as resolution diagnostics, so both report (and print) as one list.
pub fn load_diagnostics(errors: LoadErrors) -> Vec<Diagnostic> {
    errors.0.into_iter().map(Diagnostic::from).collect()
}

impl From<LoadError> for Diagnostic {
    fn from(e: LoadError) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code: e.code,
            file: e.file,
            line: e.line,
            resource: e.resource,
            field: e.field,
            message: e.message,
        }
    }
}
