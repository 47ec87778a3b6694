//! Reading spec files: multi-document YAML with provenance. The only module that names the YAML crate.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde::Serialize;

use super::config::{Config, Kind, ObjectMeta, Origin, ResourceKey, Sourced, DEFAULT_NAMESPACE};
use super::files::{self, split_documents};
use super::Source;

/// API versions accepted for `networking.istio.io` kinds; Istio serves the same schema under all three.
const API_VERSIONS: &[&str] = &[
    "networking.istio.io/v1",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1alpha3",
];

/// What kind of problem a [`LoadError`] is. `mesh::Code` catalogues every diagnostic code, these four included;
/// the strings are repeated here because the loader sits below the mesh (a test in `mesh` keeps them equal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoadCode {
    /// A file cannot be read, or a document is not valid YAML.
    Unreadable,
    /// A document's `apiVersion`/`kind` is not a kind Switchyard knows.
    UnsupportedKind,
    /// An unknown field, or a value of the wrong type.
    InvalidField,
    /// A field Istio defines that Switchyard does not implement yet.
    FieldNotSupported,
}

impl LoadCode {
    pub const ALL: [LoadCode; 4] = [
        LoadCode::Unreadable,
        LoadCode::UnsupportedKind,
        LoadCode::InvalidField,
        LoadCode::FieldNotSupported,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LoadCode::Unreadable => "SY0001",
            LoadCode::UnsupportedKind => "SY0002",
            LoadCode::InvalidField => "SY0003",
            LoadCode::FieldNotSupported => "SY0004",
        }
    }
}

impl fmt::Display for LoadCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for LoadCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl PartialEq<&str> for LoadCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One problem found while loading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct LoadError {
    pub code: LoadCode,
    pub file: PathBuf,
    pub line: usize,
    pub doc_index: usize,
    pub resource: Option<ResourceKey>,
    pub field: String,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error [{}]", self.code)?;
        if let Some(resource) = &self.resource {
            write!(
                f,
                " ({} {}/{})",
                resource.kind, resource.namespace, resource.name
            )?;
        }
        write!(f, " {}:{}", self.file.display(), self.line)?;
        if !self.field.is_empty() {
            write!(f, " {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a set of files; loading does not stop at the first one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct LoadErrors(pub Vec<LoadError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Loads files and directories (read recursively for `*.yaml`/`*.yml`, sorted by path).
pub fn load_paths(paths: &[PathBuf]) -> Result<Config, LoadErrors> {
    Loader::default().load_paths(paths)
}

/// Loads the same paths again and again, parsing only the files whose text changed since the last load.
///
/// Parsing YAML is most of the cost of a reading (the typed pass parses each document a second time); a
/// change usually touches one file of hundreds, so a watcher re-reads every file (cheap) but re-parses one.
/// Keyed by path and the whole text: a file that reads the same loads the same, whatever its timestamps.
#[derive(Debug, Default)]
pub struct Loader {
    parsed: BTreeMap<PathBuf, ParsedFile>,
}

#[derive(Debug)]
struct ParsedFile {
    text: String,
    config: Config,
    errors: Vec<LoadError>,
}

impl Loader {
    /// As [`load_paths`]; files seen before with the same text are not parsed again. Only the files of this
    /// load are remembered.
    pub fn load_paths(&mut self, paths: &[PathBuf]) -> Result<Config, LoadErrors> {
        let mut files = Vec::new();
        let mut errors = Vec::new();
        for path in paths {
            if let Err(e) = files::collect(path, &mut files) {
                errors.push(io_error(path, &e));
            }
        }
        files.sort();
        files.dedup();
        let mut previous = std::mem::take(&mut self.parsed);
        let mut config = Config::default();
        for file in files {
            let text = match fs::read_to_string(&file) {
                Ok(text) => text,
                Err(e) => {
                    errors.push(io_error(&file, &e));
                    continue;
                }
            };
            let parsed = match previous.remove(&file) {
                Some(seen) if seen.text == text => seen,
                _ => {
                    let mut parsed = ParsedFile {
                        text,
                        config: Config::default(),
                        errors: Vec::new(),
                    };
                    load_into(&file, &parsed.text, &mut parsed.config, &mut parsed.errors);
                    parsed
                }
            };
            config.extend(parsed.config.clone());
            errors.extend(parsed.errors.iter().cloned());
            self.parsed.insert(file, parsed);
        }
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(LoadErrors(errors))
        }
    }
}

/// Loads one YAML text; `file_label` is what errors and origins call the file.
pub fn load_str(file_label: impl AsRef<Path>, text: &str) -> Result<Config, LoadErrors> {
    let mut config = Config::default();
    let mut errors = Vec::new();
    load_into(file_label.as_ref(), text, &mut config, &mut errors);
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(LoadErrors(errors))
    }
}

fn io_error(path: &Path, e: &std::io::Error) -> LoadError {
    LoadError {
        code: LoadCode::Unreadable,
        file: path.to_path_buf(),
        line: 0,
        doc_index: 0,
        resource: None,
        field: String::new(),
        message: format!("cannot read: {e}"),
    }
}

fn load_into(file: &Path, text: &str, config: &mut Config, errors: &mut Vec<LoadError>) {
    let mut doc_index = 0usize;
    for doc in split_documents(text) {
        let line = doc.content_line();
        let error = |code: LoadCode,
                     line: usize,
                     resource: Option<ResourceKey>,
                     field: String,
                     message: String| LoadError {
            code,
            file: file.to_path_buf(),
            line,
            doc_index,
            resource,
            field,
            message,
        };
        let value: serde_yaml::Value = match serde_yaml::from_str(doc.body) {
            Ok(v) => v,
            Err(e) => {
                let at = e.location().map_or(line, |l| doc.first_line + l.line() - 1);
                errors.push(error(
                    LoadCode::Unreadable,
                    at,
                    None,
                    String::new(),
                    strip_location(&e.to_string()),
                ));
                doc_index += 1;
                continue;
            }
        };
        if value.is_null() {
            // Empty documents (a trailing `---`, comments only) are not resources.
            continue;
        }
        let header = Header::read(&value);
        let kind = match (&header.api_version, &header.kind) {
            (Some(api), Some(kind)) if API_VERSIONS.contains(&api.as_str()) => {
                match Kind::parse(kind) {
                    Some(k) => k,
                    None => {
                        errors.push(error(
                        LoadCode::UnsupportedKind,
                        line,
                        None,
                        "kind".into(),
                        format!(
                            "unsupported kind `{kind}`; supported: VirtualService, DestinationRule, Gateway, ServiceEntry, WorkloadEntry, Sidecar"
                        ),
                    ));
                        doc_index += 1;
                        continue;
                    }
                }
            }
            (api, kind) => {
                errors.push(error(
                    LoadCode::UnsupportedKind,
                    line,
                    None,
                    "apiVersion".into(),
                    format!(
                        "unsupported apiVersion/kind `{}`/`{}`; expected apiVersion networking.istio.io/v1",
                        api.as_deref().unwrap_or("<missing>"),
                        kind.as_deref().unwrap_or("<missing>")
                    ),
                ));
                doc_index += 1;
                continue;
            }
        };
        let resource = header.name.clone().map(|name| ResourceKey {
            kind,
            namespace: header
                .namespace
                .clone()
                .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
            name,
        });
        let origin = Origin {
            file: file.to_path_buf(),
            doc_index,
            line,
        };
        let source = Source {
            text: Arc::from(doc.body),
            first_line: doc.first_line,
        };
        let result = match kind {
            Kind::VirtualService => {
                typed(doc.body, origin, source).map(|r| config.virtual_services.push(r))
            }
            Kind::DestinationRule => {
                typed(doc.body, origin, source).map(|r| config.destination_rules.push(r))
            }
            Kind::Gateway => typed(doc.body, origin, source).map(|r| config.gateways.push(r)),
            Kind::ServiceEntry => {
                typed(doc.body, origin, source).map(|r| config.service_entries.push(r))
            }
            Kind::WorkloadEntry => {
                typed(doc.body, origin, source).map(|r| config.workload_entries.push(r))
            }
            Kind::Sidecar => typed(doc.body, origin, source).map(|r| config.sidecars.push(r)),
        };
        if let Err(e) = result {
            let at = e.line.map_or(line, |l| {
                doc.first_line + refine_line(doc.body, l, &e.path) - 1
            });
            let code = if e.message.contains("not supported yet") {
                LoadCode::FieldNotSupported
            } else {
                LoadCode::InvalidField
            };
            errors.push(error(code, at, resource, e.path, e.message));
        }
        doc_index += 1;
    }
}

/// The fields that name a document, read leniently: before the loader's strict typed pass (to name a document in
/// an error), and by `apply`/`delete` to find a resource in the directory.
pub(crate) struct Header {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
}

impl Header {
    pub fn read(value: &serde_yaml::Value) -> Header {
        let text = |v: Option<&serde_yaml::Value>| v.and_then(|v| v.as_str()).map(str::to_owned);
        let metadata = value.get("metadata");
        Header {
            api_version: text(value.get("apiVersion")),
            kind: text(value.get("kind")),
            name: text(metadata.and_then(|m| m.get("name"))),
            namespace: text(metadata.and_then(|m| m.get("namespace"))),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Document<S> {
    #[serde(rename = "apiVersion")]
    _api_version: String,
    #[serde(rename = "kind")]
    _kind: String,
    metadata: ObjectMeta,
    spec: S,
    /// Written by controllers, never by users; accepted so `kubectl get -o yaml` output loads.
    #[serde(default, rename = "status")]
    _status: Option<serde::de::IgnoredAny>,
}

struct TypedError {
    path: String,
    line: Option<usize>,
    message: String,
}

fn typed<S: DeserializeOwned>(
    text: &str,
    origin: Origin,
    source: Source,
) -> Result<Sourced<S>, TypedError> {
    let deserializer = serde_yaml::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, Document<S>>(deserializer) {
        Ok(doc) => Ok(Sourced {
            origin,
            metadata: doc.metadata,
            value: doc.spec,
            source,
        }),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let message = strip_location(&inner.to_string());
            // serde_yaml prefixes nested errors with the path of the enclosing value; the path is reported
            // separately (and more precisely), so drop it from the message.
            let message = match message.split_once(": ") {
                Some((head, rest)) if !head.contains(' ') && path.starts_with(head) => {
                    rest.to_owned()
                }
                _ => message,
            };
            Err(TypedError {
                path: if path == "." { String::new() } else { path },
                line: inner.location().map(|l| l.line()),
                message,
            })
        }
    }
}

/// serde_yaml sometimes places an error on the last event it consumed (the end of the previous value) rather
/// than on the offending key. Moves forward from `reported` (1-based, within the document) to the line that
/// holds the path's last key, when there is one within reach.
fn refine_line(text: &str, reported: usize, path: &str) -> usize {
    let Some(key) = path
        .rsplit('.')
        .next()
        .map(|k| k.split('[').next().unwrap_or(k))
        .filter(|k| !k.is_empty())
    else {
        return reported;
    };
    let holds_key = |l: &str| {
        let t = l.trim_start().trim_start_matches("- ").trim_start();
        let t = t.strip_prefix('{').unwrap_or(t);
        t.starts_with(&format!("{key}:"))
            || t.contains(&format!(" {key}:"))
            || t.contains(&format!("{{{key}:"))
    };
    text.lines()
        .enumerate()
        .skip(reported.saturating_sub(1))
        .take(4)
        .find(|(_, l)| holds_key(l))
        .map_or(reported, |(i, _)| i + 1)
}

/// serde_yaml appends " at line N column M"; the line is reported separately, in file coordinates.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_serde_location() {
        assert_eq!(
            strip_location("unknown field `x` at line 3 column 5"),
            "unknown field `x`"
        );
    }
}
