//! Document text: naming a document as a resource, comparing contents, line endings, and a file as a list of
//! documents that renders back byte for byte.

use std::path::{Path, PathBuf};

use super::EditError;
use crate::spec::config::{Kind, ResourceKey, DEFAULT_NAMESPACE};
use crate::spec::files::{has_content, split_documents};
use crate::spec::load::Header;
use crate::spec::nesting::{too_deep, MAX_NESTING};

/// The line ending a file uses, judged by its first line break (`\n` for a file without one).
pub fn line_ending(text: &str) -> &'static str {
    match text.find('\n') {
        Some(i) if text[..i].ends_with('\r') => "\r\n",
        _ => "\n",
    }
}

/// `text` with every line break made `eol`, ending with one.
pub fn normalize_line_endings(text: &str, eol: &str) -> String {
    let mut out = text.replace("\r\n", "\n");
    if !out.ends_with('\n') {
        out.push('\n');
    }
    if eol == "\n" {
        out
    } else {
        out.replace('\n', eol)
    }
}

/// Why a document cannot be named as a resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("invalid YAML: {0}")]
    Yaml(String),
    #[error("`kind` is missing")]
    MissingKind,
    #[error("unsupported kind `{0}`; supported: VirtualService, DestinationRule, Gateway, ServiceEntry, WorkloadEntry, Sidecar")]
    UnsupportedKind(String),
    #[error("`metadata.name` is missing")]
    MissingName,
    #[error("nested more than {MAX_NESTING} levels deep (line {0} of the document); not parsed")]
    TooDeep(usize),
}

/// The kind/namespace/name of a document (namespace `default` when omitted), or `None` for an empty document.
/// Lenient on purpose: only the identity is read, the strict check is the loader's job.
pub fn document_key(body: &str) -> Result<Option<ResourceKey>, KeyError> {
    // The loader's guard, for the same reason: serde_yaml's parser is quadratic in the nesting depth.
    if let Some(line) = too_deep(body, MAX_NESTING) {
        return Err(KeyError::TooDeep(line));
    }
    let value: serde_yaml::Value =
        serde_yaml::from_str(body).map_err(|e| KeyError::Yaml(e.to_string()))?;
    if value.is_null() {
        return Ok(None);
    }
    let header = Header::read(&value);
    let kind = header.kind.ok_or(KeyError::MissingKind)?;
    let kind = Kind::parse(&kind).ok_or(KeyError::UnsupportedKind(kind))?;
    let name = header.name.ok_or(KeyError::MissingName)?;
    let namespace = header
        .namespace
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
    Ok(Some(ResourceKey {
        kind,
        namespace,
        name,
    }))
}

/// Same resource content, ignoring comments and formatting; falls back to the bytes when either is not YAML.
pub(super) fn same_content(a: &str, b: &str) -> bool {
    match (
        serde_yaml::from_str::<serde_yaml::Value>(a),
        serde_yaml::from_str::<serde_yaml::Value>(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.replace("\r\n", "\n") == b.replace("\r\n", "\n"),
    }
}

/// A resource read from a file given to `apply`/`delete`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputDocument {
    pub key: ResourceKey,
    pub body: String,
    /// Where `body` starts in the input file, to point diagnostics back at it.
    pub file: PathBuf,
    pub first_line: usize,
}

/// The resources of an input file, in order; empty documents are skipped.
pub fn input_documents(file: &Path, text: &str) -> Result<Vec<InputDocument>, EditError> {
    let mut out = Vec::new();
    for doc in split_documents(text) {
        if !has_content(doc.body) {
            continue;
        }
        let key = document_key(doc.body).map_err(|source| EditError::Document {
            file: file.to_path_buf(),
            line: doc.first_line,
            source,
        })?;
        if let Some(key) = key {
            out.push(InputDocument {
                key,
                body: doc.body.to_owned(),
                file: file.to_path_buf(),
                first_line: doc.first_line,
            });
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
pub(super) struct EditDoc {
    pub(super) separator: String,
    pub(super) body: String,
    pub(super) key: Option<ResourceKey>,
    /// Set when the body came from an input file: (file, line where the body starts there).
    pub(super) source: Option<(PathBuf, usize)>,
    /// Where the body starts in the file on disk, for a document read from it: edits above it move it in the
    /// edited text, and diagnostics must still name the line a user finds in the file.
    pub(super) on_disk: Option<usize>,
}

#[derive(Debug, Clone)]
pub(super) struct EditFile {
    /// `None` for a file `apply` creates.
    pub(super) original: Option<String>,
    pub(super) docs: Vec<EditDoc>,
    pub(super) eol: &'static str,
    pub(super) touched: bool,
}

impl EditFile {
    pub(super) fn parse(text: &str) -> EditFile {
        let mut file = EditFile {
            docs: split_documents(text)
                .into_iter()
                .map(|d| EditDoc {
                    separator: d.separator.to_owned(),
                    body: d.body.to_owned(),
                    // A document that cannot be named is never matched; the loader reports what is wrong with it.
                    key: document_key(d.body).ok().flatten(),
                    source: None,
                    on_disk: None,
                })
                .collect(),
            original: Some(text.to_owned()),
            eol: line_ending(text),
            touched: false,
        };
        let lines = file.body_lines();
        for (doc, line) in file.docs.iter_mut().zip(lines) {
            doc.on_disk = Some(line);
        }
        file
    }

    pub(super) fn new_file() -> EditFile {
        EditFile {
            original: None,
            docs: Vec::new(),
            eol: "\n",
            touched: true,
        }
    }

    pub(super) fn render(&self) -> String {
        self.docs
            .iter()
            .flat_map(|d| [d.separator.as_str(), d.body.as_str()])
            .collect()
    }

    /// The file's content after the edits; `None` when no document with content is left (the file goes).
    pub(super) fn current(&self) -> Option<String> {
        if self.touched {
            self.docs
                .iter()
                .any(|d| has_content(&d.body))
                .then(|| self.render())
        } else {
            self.original.clone()
        }
    }

    pub(super) fn append(&mut self, body: String, source: (PathBuf, usize), key: ResourceKey) {
        let doc = |separator: String| EditDoc {
            separator,
            body,
            key: Some(key),
            source: Some(source),
            on_disk: None,
        };
        match self.docs.last_mut() {
            None => self.docs.push(doc(String::new())),
            // A trailing `---` (or an empty file) leaves an empty last document: fill it rather than add another.
            Some(last) if last.body.trim().is_empty() => {
                let separator = std::mem::take(&mut last.separator);
                *last = doc(separator);
            }
            Some(last) => {
                if !last.body.ends_with('\n') {
                    last.body.push_str(self.eol);
                }
                let separator = format!("---{}", self.eol);
                self.docs.push(doc(separator));
            }
        }
    }

    pub(super) fn remove(&mut self, index: usize) {
        self.docs.remove(index);
        // The first document has no separator of its own; do not leave the next one's plain `---` at the top.
        if index == 0 {
            if let Some(first) = self.docs.first_mut() {
                if first.separator.trim_end() == "---" {
                    first.separator.clear();
                }
            }
        }
    }

    /// 1-based first line of each document's body in the rendered text.
    pub(super) fn body_lines(&self) -> Vec<usize> {
        let mut line = 1;
        self.docs
            .iter()
            .map(|d| {
                line += d.separator.matches('\n').count();
                let start = line;
                line += d.body.matches('\n').count();
                start
            })
            .collect()
    }
}
