//! Diagnostics: one problem in the user's configuration, located precisely enough to fix it.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use super::Code;
use crate::spec::{shorten, shorten_value, LoadError, LoadErrors, Origin, ResourceKey};

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

/// One problem: what ([`Code`]), where (file, line, resource, field) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: Code,
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
        code: Code,
        origin: &Origin,
        resource: &ResourceKey,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Diagnostic {
        // User values reach messages (a host, a name, a regex): a 5 MB one is shown by its start and size.
        Diagnostic {
            severity,
            code,
            file: origin.file.clone(),
            line: origin.line,
            resource: Some(ResourceKey {
                kind: resource.kind,
                namespace: shorten_value(&resource.namespace),
                name: shorten_value(&resource.name),
            }),
            field: shorten_value(&field.into()),
            message: shorten(&message.into()),
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
            severity: if e.code.is_warning() {
                Severity::Warning
            } else {
                Severity::Error
            },
            code: e.code.into(),
            file: e.file,
            line: e.line,
            resource: e.resource,
            field: e.field,
            message: e.message,
        }
    }
}
