//! Reading spec files: multi-document YAML with provenance. The only module that names the YAML crate.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde::Serialize;

use super::config::{Config, Kind, ObjectMeta, Origin, ResourceKey, Sourced, DEFAULT_NAMESPACE};
use super::Source;

/// API versions accepted for `networking.istio.io` kinds; Istio serves the same schema under all three.
const API_VERSIONS: &[&str] = &[
    "networking.istio.io/v1",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1alpha3",
];

/// One problem found while loading. Codes: SY0001 unreadable file or invalid YAML, SY0002 unknown
/// apiVersion/kind, SY0003 unknown field or wrong type, SY0004 field not supported yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct LoadError {
    pub code: &'static str,
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
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if let Err(e) = collect_files(path, &mut files) {
            errors.push(io_error(path, &e));
        }
    }
    files.sort();
    files.dedup();
    let mut config = Config::default();
    for file in files {
        match fs::read_to_string(&file) {
            Ok(text) => load_into(&file, &text, &mut config, &mut errors),
            Err(e) => errors.push(io_error(&file, &e)),
        }
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(LoadErrors(errors))
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

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if fs::metadata(path)?.is_dir() {
        for entry in fs::read_dir(path)? {
            let entry_path = entry?.path();
            if is_hidden(&entry_path) {
                continue;
            }
            if entry_path.is_dir() {
                collect_files(&entry_path, out)?;
            } else if is_yaml(&entry_path) {
                out.push(entry_path);
            }
        }
    } else {
        // A file named explicitly is loaded whatever its extension.
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// Hidden entries belong to tools, not to the user's specs: editors' swap and lock files (Emacs's `.#x.yaml`
/// is a dangling symlink), our own temporary files during an atomic write, `.git`.
fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml") | Some("yml")
    )
}

fn io_error(path: &Path, e: &std::io::Error) -> LoadError {
    LoadError {
        code: "SY0001",
        file: path.to_path_buf(),
        line: 0,
        doc_index: 0,
        resource: None,
        field: String::new(),
        message: format!("cannot read: {e}"),
    }
}

/// A document's text and the 1-based line of the file it starts on.
struct DocText<'a> {
    text: &'a str,
    first_line: usize,
}

/// Splits at `---` separator lines. serde_yaml can iterate documents itself but reports no line per document, and
/// errors inside a document need the file line, so the split is done here.
fn split_documents(text: &str) -> Vec<DocText<'_>> {
    let mut docs = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1usize;
    let mut offset = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_end();
        let is_separator = trimmed == "---"
            || trimmed.starts_with("--- ")
            || trimmed.starts_with("---\t")
            || trimmed == "...";
        if is_separator {
            docs.push(DocText {
                text: &text[start..offset],
                first_line: start_line,
            });
            start = offset + line.len();
            start_line = i + 2;
        }
        offset += line.len();
    }
    docs.push(DocText {
        text: &text[start..],
        first_line: start_line,
    });
    docs
}

/// The line of the first non-blank, non-comment line: where a reader would say the resource starts.
fn content_line(doc: &DocText<'_>) -> usize {
    doc.text
        .lines()
        .position(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        })
        .map_or(doc.first_line, |i| doc.first_line + i)
}

fn load_into(file: &Path, text: &str, config: &mut Config, errors: &mut Vec<LoadError>) {
    let mut doc_index = 0usize;
    for doc in split_documents(text) {
        let line = content_line(&doc);
        let error = |code: &'static str,
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
        let value: serde_yaml::Value = match serde_yaml::from_str(doc.text) {
            Ok(v) => v,
            Err(e) => {
                let at = e.location().map_or(line, |l| doc.first_line + l.line() - 1);
                errors.push(error(
                    "SY0001",
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
                        "SY0002",
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
                    "SY0002",
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
            text: Arc::from(doc.text),
            first_line: doc.first_line,
        };
        let result = match kind {
            Kind::VirtualService => {
                typed(doc.text, origin, source).map(|r| config.virtual_services.push(r))
            }
            Kind::DestinationRule => {
                typed(doc.text, origin, source).map(|r| config.destination_rules.push(r))
            }
            Kind::Gateway => typed(doc.text, origin, source).map(|r| config.gateways.push(r)),
            Kind::ServiceEntry => {
                typed(doc.text, origin, source).map(|r| config.service_entries.push(r))
            }
            Kind::WorkloadEntry => {
                typed(doc.text, origin, source).map(|r| config.workload_entries.push(r))
            }
            Kind::Sidecar => typed(doc.text, origin, source).map(|r| config.sidecars.push(r)),
        };
        if let Err(e) = result {
            let at = e.line.map_or(line, |l| {
                doc.first_line + refine_line(doc.text, l, &e.path) - 1
            });
            let code = if e.message.contains("not supported yet") {
                "SY0004"
            } else {
                "SY0003"
            };
            errors.push(error(code, at, resource, e.path, e.message));
        }
        doc_index += 1;
    }
}

/// The fields needed to name a document in an error, read leniently before the strict typed pass.
struct Header {
    api_version: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
}

impl Header {
    fn read(value: &serde_yaml::Value) -> Header {
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
    fn splits_documents_with_lines() {
        let docs = split_documents("a: 1\n---\nb: 2\n\n--- # c\nc: 3\n");
        let firsts: Vec<_> = docs.iter().map(|d| d.first_line).collect();
        assert_eq!(firsts, vec![1, 3, 6]);
        assert_eq!(docs[1].text, "b: 2\n\n");
    }

    #[test]
    fn strips_serde_location() {
        assert_eq!(
            strip_location("unknown field `x` at line 3 column 5"),
            "unknown field `x`"
        );
    }
}
