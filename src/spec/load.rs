//! Reading spec files: multi-document YAML with provenance. The only module that names the YAML crate.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde::Serialize;

use super::config::{Config, Kind, ObjectMeta, Origin, ResourceKey, Sourced, DEFAULT_NAMESPACE};
use super::files::{self, split_documents, Listing, ReadError};
use super::nesting::{self, MAX_NESTING};
use super::shorten::{shorten, shorten_value};
use super::Source;

/// API versions accepted for `networking.istio.io` kinds; Istio serves the same schema under all three.
const API_VERSIONS: &[&str] = &[
    "networking.istio.io/v1",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1alpha3",
];

/// What kind of problem a [`LoadError`] is. `mesh::Code` catalogues every diagnostic code, these included;
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
    /// A path in a spec directory that is not read (a FIFO, socket or device; a directory already read through
    /// a symlink). A warning: the rest is read.
    Skipped,
}

impl LoadCode {
    pub const ALL: [LoadCode; 5] = [
        LoadCode::Unreadable,
        LoadCode::UnsupportedKind,
        LoadCode::InvalidField,
        LoadCode::FieldNotSupported,
        LoadCode::Skipped,
    ];

    /// Whether a problem of this kind leaves the configuration usable (a warning) rather than failing it.
    pub fn is_warning(self) -> bool {
        self == LoadCode::Skipped
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LoadCode::Unreadable => "SY0001",
            LoadCode::UnsupportedKind => "SY0002",
            LoadCode::InvalidField => "SY0003",
            LoadCode::FieldNotSupported => "SY0004",
            LoadCode::Skipped => "SY0005",
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
        let severity = if self.code.is_warning() {
            "Warning"
        } else {
            "Error"
        };
        write!(f, "{severity} [{}]", self.code)?;
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

/// How much of a file the loader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Files larger than this are errors, not read (`serve --max-file-size`).
    pub max_file_size: u64,
}

/// 8 MiB: a hundred times the largest Istio sample, small enough that a symlink to a huge file (or a file
/// that keeps growing) cannot exhaust memory.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 8 << 20;

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_file_size: DEFAULT_MAX_FILE_SIZE,
        }
    }
}

/// Loads files and directories (read recursively for spec files, sorted by path) with the default options.
pub fn load_paths(paths: &[PathBuf]) -> Result<Config, LoadErrors> {
    load_paths_with(paths, &LoadOptions::default())
}

/// Loads files and directories. Entries that are not read (FIFOs, devices, sockets, a directory reached
/// twice through a symlink) are named in [`Config::skipped`] (and among the errors, when there are errors).
pub fn load_paths_with(paths: &[PathBuf], options: &LoadOptions) -> Result<Config, LoadErrors> {
    Loader::new(*options).load_paths(paths)
}

/// Loads the same paths again and again, reading only the files whose `stat` changed and parsing only those
/// whose text changed since the last load.
///
/// Parsing YAML is most of the cost of a reading (the typed pass parses each document a second time); a
/// change usually touches one file of hundreds, so a watcher lists every file but reads and parses one. A
/// file is read again unless its stamp ([`files::Stamp`]: inode, size, modification and change times) is
/// the one it had when last read and was already settled then (older than [`SETTLED`]); a file read again
/// that reads the same loads the same, whatever its timestamps.
#[derive(Debug, Default)]
pub struct Loader {
    options: LoadOptions,
    /// By path, as bytes: compared with `memcmp`, not component by component as `Path`s are (a reading of
    /// thousands of files looks each up).
    parsed: BTreeMap<OsString, ParsedFile>,
    /// How many files the last load read (the others were vouched for by their stamps).
    files_read: usize,
    /// [`SETTLED`], but in tests, which cannot make a change time older.
    settled: std::time::Duration,
    /// When the last load listed the files: a clock set back since makes every stamp suspect.
    last_listed: Option<std::time::SystemTime>,
    /// The paths of the last load and their listing, when it was clean: what [`Loader::load_changes`] patches.
    listing: Option<(Vec<PathBuf>, Listing)>,
}

/// How much older than its reading a file's stamp must be for the stamp alone to vouch for its content later:
/// far more than any file system's timestamp tick.
pub const SETTLED: std::time::Duration = std::time::Duration::from_secs(3);

#[derive(Debug)]
struct ParsedFile {
    text: String,
    /// The file's stamp when listed before this reading, if it was settled then.
    settled: Option<files::Stamp>,
    config: Config,
    errors: Vec<LoadError>,
}

impl Loader {
    pub fn new(options: LoadOptions) -> Loader {
        Loader {
            options,
            parsed: BTreeMap::new(),
            files_read: 0,
            settled: SETTLED,
            last_listed: None,
            listing: None,
        }
    }

    /// How many files the last load read; the others had not changed since they were read.
    pub fn files_read(&self) -> usize {
        self.files_read
    }

    /// As [`load_paths_with`]; files seen before with the same text are not parsed again. Only the files of
    /// this load are remembered.
    pub fn load_paths(&mut self, paths: &[PathBuf]) -> Result<Config, LoadErrors> {
        self.load_changes(paths, None)
    }

    /// As [`Loader::load_paths`], told which files changed since the last load (`None`: not told), as a
    /// watcher's events name them under `paths`. The last listing, patched for those, stands for listing the
    /// paths again; it is listed again when it cannot (see [`Listing::patch`]).
    pub fn load_changes(
        &mut self,
        paths: &[PathBuf],
        changed: Option<&BTreeSet<PathBuf>>,
    ) -> Result<Config, LoadErrors> {
        let listed_at = std::time::SystemTime::now();
        // The wall clock was set back: a later write may carry a stamp that looks settled.
        let clock_trusted = self.last_listed.is_none_or(|last| last <= listed_at);
        self.last_listed = Some(listed_at);
        let patched = match (self.listing.take(), changed) {
            (Some((listed, mut listing)), Some(changed)) if listed == paths => {
                listing.patch(changed).then_some(listing)
            }
            _ => None,
        };
        let mut listing = patched.unwrap_or_else(|| {
            let mut listing = Listing::default();
            for path in paths {
                listing.collect(path);
            }
            listing
        });
        listing.files.sort();
        listing.files.dedup();
        let config = self.load_listed(&listing, listed_at, clock_trusted);
        if listing.is_clean() {
            self.listing = Some((paths.to_vec(), listing));
        }
        config
    }

    fn load_listed(
        &mut self,
        listing: &Listing,
        listed_at: std::time::SystemTime,
        clock_trusted: bool,
    ) -> Result<Config, LoadErrors> {
        let mut errors: Vec<LoadError> = listing
            .errors
            .iter()
            .map(|(path, e)| whole_file_error(path, format!("cannot read: {e}")))
            .collect();
        let mut skipped: Vec<LoadError> = listing
            .skipped
            .iter()
            .map(|(path, reason)| skipped_error(path, reason))
            .collect();
        let mut previous = std::mem::take(&mut self.parsed);
        let mut config = Config::default();
        self.files_read = 0;
        for file in &listing.files {
            let stamp = listing.stamps.get(file.as_os_str()).copied();
            let settled = stamp.filter(|s| s.settled_at(listed_at, self.settled));
            // Stamped as it was when last read, and settled then: not read again.
            let unchanged = previous.get(file.as_os_str()).is_some_and(|seen| {
                clock_trusted && seen.settled.is_some() && seen.settled == stamp
            });
            if let Some((key, seen)) = unchanged
                .then(|| previous.remove_entry(file.as_os_str()))
                .flatten()
            {
                config.extend_from(&seen.config);
                errors.extend(seen.errors.iter().cloned());
                self.parsed.insert(key, seen);
                continue;
            }
            self.files_read += 1;
            let text = match files::read(file, self.options.max_file_size) {
                Ok(text) => text,
                Err(ReadError::Skipped(reason)) => {
                    skipped.push(skipped_error(file, &reason));
                    continue;
                }
                Err(e) => {
                    errors.push(read_error(file, e));
                    continue;
                }
            };
            let (key, seen) = match previous.remove_entry(file.as_os_str()) {
                Some((key, seen)) => (key, Some(seen)),
                None => (file.as_os_str().to_owned(), None),
            };
            let parsed = match seen {
                Some(seen) if seen.text == text => ParsedFile { settled, ..seen },
                seen => {
                    let mut parsed = ParsedFile {
                        text,
                        settled,
                        config: Config::default(),
                        errors: Vec::new(),
                    };
                    load_into(file, &parsed.text, &mut parsed.config, &mut parsed.errors);
                    if let Some(seen) = seen {
                        parsed.config.keep_unchanged_from(&seen.config);
                    }
                    parsed
                }
            };
            config.extend_from(&parsed.config);
            errors.extend(parsed.errors.iter().cloned());
            self.parsed.insert(key, parsed);
        }
        skipped.sort_by(|a, b| a.file.cmp(&b.file));
        if errors.is_empty() {
            config.skipped = skipped;
            Ok(config)
        } else {
            errors.extend(skipped);
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

/// A problem with a file as a whole (it cannot be opened, it is too large): reported on its first line, so
/// every error has a line an editor can jump to.
fn whole_file_error(path: &Path, message: String) -> LoadError {
    LoadError {
        code: LoadCode::Unreadable,
        file: path.to_path_buf(),
        line: 1,
        doc_index: 0,
        resource: None,
        field: String::new(),
        message,
    }
}

fn skipped_error(path: &Path, reason: &str) -> LoadError {
    LoadError {
        code: LoadCode::Skipped,
        ..whole_file_error(path, format!("skipped: {reason}"))
    }
}

fn read_error(path: &Path, e: ReadError) -> LoadError {
    match e {
        ReadError::Io(e) => whole_file_error(path, format!("cannot read: {e}")),
        ReadError::Skipped(reason) => skipped_error(path, &reason),
        ReadError::TooLarge { size, limit } => whole_file_error(
            path,
            format!(
                "the file is larger than the limit of {limit} bytes ({size} bytes or more), not read; raise \
                 the limit with --max-file-size if it really is a spec"
            ),
        ),
        ReadError::NotUtf8 { line } => LoadError {
            line,
            ..whole_file_error(
                path,
                "not UTF-8 text: this line holds bytes that are not UTF-8 (spec files are UTF-8, with or \
                 without a byte order mark)"
                    .into(),
            )
        },
    }
}

fn load_into(file: &Path, text: &str, config: &mut Config, errors: &mut Vec<LoadError>) {
    // A byte order mark (Windows editors write one) is not content; YAML would read it as the start of a
    // second document.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
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
            resource: resource.map(|r: ResourceKey| ResourceKey {
                name: shorten_value(&r.name),
                namespace: shorten_value(&r.namespace),
                ..r
            }),
            field: shorten_value(&field),
            message: shorten(&message),
        };
        if let Some(deep) = nesting::too_deep(doc.body, MAX_NESTING) {
            errors.push(error(
                LoadCode::Unreadable,
                doc.first_line + deep - 1,
                None,
                String::new(),
                format!(
                    "nested more than {MAX_NESTING} levels deep (Istio resources nest about a dozen); not parsed"
                ),
            ));
            doc_index += 1;
            continue;
        }
        let value: serde_yaml::Value = match serde_yaml::from_str(doc.body) {
            Ok(v) => v,
            Err(e) => {
                let at = e
                    .location()
                    .map_or(line, |l| doc.first_line + lf_line(doc.body, l.line()) - 1);
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
        if let Some(what) = not_a_mapping(&value) {
            errors.push(error(
                LoadCode::Unreadable,
                line,
                None,
                String::new(),
                format!(
                    "the document is {what}, not a resource: each document is one mapping with apiVersion, \
                     kind, metadata and spec (separate resources with `---` lines)"
                ),
            ));
            doc_index += 1;
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
        let result =
            match kind {
                Kind::VirtualService => typed(doc.body, origin, source)
                    .map(|r| config.virtual_services.push(Arc::new(r))),
                Kind::DestinationRule => typed(doc.body, origin, source)
                    .map(|r| config.destination_rules.push(Arc::new(r))),
                Kind::Gateway => {
                    typed(doc.body, origin, source).map(|r| config.gateways.push(Arc::new(r)))
                }
                Kind::ServiceEntry => typed(doc.body, origin, source)
                    .map(|r| config.service_entries.push(Arc::new(r))),
                Kind::WorkloadEntry => typed(doc.body, origin, source)
                    .map(|r| config.workload_entries.push(Arc::new(r))),
                Kind::Sidecar => {
                    typed(doc.body, origin, source).map(|r| config.sidecars.push(Arc::new(r)))
                }
            };
        if let Err(e) = result {
            let at = e.line.map_or(line, |l| {
                doc.first_line + refine_line(doc.body, lf_line(doc.body, l), &e.path) - 1
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

/// What a document that is not a mapping is, in words; `None` for a mapping.
fn not_a_mapping(value: &serde_yaml::Value) -> Option<&'static str> {
    use serde_yaml::Value;
    match value {
        Value::Mapping(_) => None,
        Value::Tagged(tagged) => not_a_mapping(&tagged.value),
        Value::Sequence(_) => Some("a list"),
        Value::String(_) => Some("a string"),
        Value::Number(_) => Some("a number"),
        Value::Bool(_) => Some("a boolean"),
        Value::Null => Some("empty"),
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

/// libyaml counts a line at every YAML line break (LF, CR, CRLF, NEL, LS, PS); editors, `grep -n` and `sed`
/// count LFs. Maps libyaml's 1-based line within `body` to the LF-counted line, so an error always names a line
/// of the file as people see it (a lone CR once put an error 50 lines past the end of a file; found by fuzzing).
fn lf_line(body: &str, yaml_line: usize) -> usize {
    let (mut yaml, mut lf) = (1, 1);
    let mut chars = body.chars().peekable();
    while yaml < yaml_line {
        let Some(c) = chars.next() else { break };
        match c {
            '\r' => {
                if chars.next_if_eq(&'\n').is_some() {
                    lf += 1;
                }
                yaml += 1;
            }
            '\n' => {
                lf += 1;
                yaml += 1;
            }
            '\u{85}' | '\u{2028}' | '\u{2029}' => yaml += 1,
            _ => {}
        }
    }
    lf
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

/// serde_yaml writes " at line N column M" (counted within the document, once or twice per message); the line
/// is reported separately, in file coordinates, so every such location goes.
fn strip_location(message: &str) -> String {
    const AT: &str = " at line ";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(AT) {
        out.push_str(&rest[..i]);
        let after = &rest[i + AT.len()..];
        let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let line_len = digits(after);
        match after[line_len..].strip_prefix(" column ") {
            Some(column) if line_len > 0 && digits(column) > 0 => rest = &column[digits(column)..],
            _ => {
                out.push_str(AT);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    const VS: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: NAME}\nspec: {hosts: [reviews]}\n";

    fn write(path: &Path, name: &str, modified: Option<SystemTime>) {
        std::fs::write(path, VS.replace("NAME", name)).unwrap();
        if let Some(at) = modified {
            let file = std::fs::File::options().write(true).open(path).unwrap();
            file.set_modified(at).unwrap();
        }
    }

    fn names(config: &Config) -> Vec<String> {
        config
            .virtual_services
            .iter()
            .map(|vs| vs.metadata.name.clone())
            .collect()
    }

    /// A loader for which every stamp is settled as soon as it is older than the reading (no test can age a
    /// change time): a file listed and not changed is not read again.
    fn settled_at_once() -> Loader {
        Loader {
            settled: Duration::ZERO,
            ..Loader::new(LoadOptions::default())
        }
    }

    #[test]
    fn a_file_is_read_again_only_when_its_stamp_changed() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        write(&a, "aaa", Some(an_hour_ago));
        write(&b, "bbb", None);
        let mut loader = settled_at_once();
        let paths = [dir.path().to_path_buf()];
        assert_eq!(names(&loader.load_paths(&paths).unwrap()), ["aaa", "bbb"]);
        assert_eq!(loader.files_read(), 2);
        assert_eq!(names(&loader.load_paths(&paths).unwrap()), ["aaa", "bbb"]);
        assert_eq!(loader.files_read(), 0);
        // Rewritten with the same size and its modification time put back: its change time tells.
        write(&a, "ccc", Some(an_hour_ago));
        assert_eq!(names(&loader.load_paths(&paths).unwrap()), ["ccc", "bbb"]);
        assert_eq!(loader.files_read(), 1);
        // Replaced by another file (as an atomic write or a ConfigMap's swap does), stamped as the old one.
        let c = dir.path().join("c.tmp");
        write(&c, "ddd", Some(an_hour_ago));
        std::fs::rename(&c, &a).unwrap();
        assert_eq!(names(&loader.load_paths(&paths).unwrap()), ["ddd", "bbb"]);
        assert_eq!(loader.files_read(), 1);
    }

    #[test]
    fn a_file_stamped_within_the_settling_margin_is_read_every_time() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("a.yaml"), "aaa", None);
        let mut loader = Loader::new(LoadOptions::default());
        let paths = [dir.path().to_path_buf()];
        for _ in 0..2 {
            assert_eq!(names(&loader.load_paths(&paths).unwrap()), ["aaa"]);
            // Another write within the same timestamp tick could leave the same stamp.
            assert_eq!(loader.files_read(), 1);
        }
    }

    /// One document of a file edited: the others are the very resources of the last reading, so that later
    /// stages see they did not change; the edited one, and those it moved, are new.
    #[test]
    fn an_edited_file_keeps_the_resources_of_its_unchanged_documents() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vs.yaml");
        let docs = |names: &[&str]| {
            names
                .iter()
                .map(|n| VS.replace("NAME", n))
                .collect::<Vec<_>>()
                .join("---\n")
        };
        std::fs::write(&file, docs(&["a", "b", "c"])).unwrap();
        let mut loader = Loader::new(LoadOptions::default());
        let paths = [dir.path().to_path_buf()];
        let first = loader.load_paths(&paths).unwrap();
        std::fs::write(&file, docs(&["a", "x", "c"])).unwrap();
        let second = loader.load_paths(&paths).unwrap();
        assert_eq!(names(&second), ["a", "x", "c"]);
        let shared: Vec<bool> = first
            .virtual_services
            .iter()
            .zip(&second.virtual_services)
            .map(|(was, is)| Arc::ptr_eq(was, is))
            .collect();
        assert_eq!(shared, [true, false, true]);
        // The first document gone: the others are at other places now, and new.
        std::fs::write(&file, docs(&["x", "c"])).unwrap();
        let third = loader.load_paths(&paths).unwrap();
        assert!(!Arc::ptr_eq(
            &third.virtual_services[1],
            &second.virtual_services[2]
        ));
        assert_eq!(third.virtual_services[1].origin.doc_index, 1);
    }

    /// Told which files changed, the loader looks at those only: a file changed without being named keeps
    /// what it was read as (no event, no change), a named one is read, added or removed.
    #[test]
    fn a_load_told_what_changed_looks_at_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a.yaml"),
            dir.path().join("b.yaml"),
            dir.path().join("c.yaml"),
        );
        write(&a, "aaa", None);
        write(&b, "bbb", None);
        let mut loader = settled_at_once();
        let paths = [dir.path().to_path_buf()];
        assert_eq!(names(&loader.load_paths(&paths).unwrap()), ["aaa", "bbb"]);
        write(&a, "xxx", None);
        write(&b, "yyy", None);
        write(&c, "ccc", None);
        let told = |files: &[&Path]| {
            files
                .iter()
                .map(|f| f.to_path_buf())
                .collect::<BTreeSet<_>>()
        };
        let config = loader.load_changes(&paths, Some(&told(&[&b, &c]))).unwrap();
        assert_eq!(names(&config), ["aaa", "yyy", "ccc"]);
        std::fs::remove_file(&c).unwrap();
        let config = loader.load_changes(&paths, Some(&told(&[&c]))).unwrap();
        assert_eq!(names(&config), ["aaa", "yyy"]);
        // Not told: everything is listed again.
        assert_eq!(names(&loader.load_paths(&paths).unwrap()), ["xxx", "yyy"]);
    }

    /// A named file the last listing did not read through plain directories (here, under a symlink to a
    /// directory), or that is no longer a file: the paths are listed again.
    #[test]
    fn a_load_told_of_what_it_cannot_patch_lists_everything_again() {
        let dir = tempfile::tempdir().unwrap();
        let (real, link) = (dir.path().join("real"), dir.path().join("spec/linked"));
        std::fs::create_dir_all(&real).unwrap();
        std::fs::create_dir_all(dir.path().join("spec")).unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let (a, b) = (dir.path().join("spec/a.yaml"), real.join("b.yaml"));
        write(&a, "aaa", None);
        write(&b, "bbb", None);
        let mut loader = settled_at_once();
        let paths = [dir.path().join("spec")];
        assert_eq!(names(&loader.load_paths(&paths).unwrap()), ["aaa", "bbb"]);
        write(&a, "xxx", None);
        write(&b, "yyy", None);
        let told = BTreeSet::from([link.join("b.yaml")]);
        assert_eq!(
            names(&loader.load_changes(&paths, Some(&told)).unwrap()),
            ["xxx", "yyy"]
        );
        // A directory where a file was.
        std::fs::remove_file(&a).unwrap();
        std::fs::create_dir(&a).unwrap();
        write(&a.join("d.yaml"), "ddd", None);
        let told = BTreeSet::from([a.clone()]);
        assert_eq!(
            names(&loader.load_changes(&paths, Some(&told)).unwrap()),
            ["ddd", "yyy"]
        );
    }

    /// A directory moved out of the tree is named by its path alone (the event cannot say what it was): what
    /// was listed below it goes, whatever its name.
    #[test]
    fn a_directory_moved_away_takes_its_files_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, away) = (dir.path().join("spec"), dir.path().join("away"));
        for sub in ["team.d", "extra.yaml"] {
            std::fs::create_dir_all(spec.join(sub)).unwrap();
            std::fs::create_dir_all(away.join(sub)).unwrap();
        }
        write(&spec.join("a.yaml"), "aaa", None);
        write(&spec.join("team.d/b.yaml"), "bbb", None);
        write(&spec.join("extra.yaml/c.yaml"), "ccc", None);
        let mut loader = settled_at_once();
        let paths = [spec.clone()];
        assert_eq!(
            names(&loader.load_paths(&paths).unwrap()),
            ["aaa", "ccc", "bbb"]
        );
        for sub in ["team.d", "extra.yaml"] {
            std::fs::rename(spec.join(sub), away.join(sub).join("moved")).unwrap();
            let told = BTreeSet::from([spec.join(sub)]);
            assert!(!names(&loader.load_changes(&paths, Some(&told)).unwrap())
                .iter()
                .any(|n| n == if sub == "team.d" { "bbb" } else { "ccc" }));
        }
        // A file that is not a spec, gone: nothing listed changes, and nothing is listed again (a file
        // written meanwhile, and not told of, is not seen).
        write(&spec.join("d.yaml"), "ddd", None);
        let told = BTreeSet::from([spec.join("notes.log")]);
        assert_eq!(
            names(&loader.load_changes(&paths, Some(&told)).unwrap()),
            ["aaa"]
        );
    }

    /// A file reached through a symlink, or with a second hard link, changes with no event naming it as
    /// listed: each load looks at it again, whatever it is told.
    #[test]
    fn a_linked_file_is_looked_at_on_every_load() {
        let dir = tempfile::tempdir().unwrap();
        let (spec, outside) = (dir.path().join("spec"), dir.path().join("outside"));
        std::fs::create_dir_all(&spec).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        write(&spec.join("a.yaml"), "aaa", None);
        write(&outside.join("target.yaml"), "sss", None);
        std::os::unix::fs::symlink(outside.join("target.yaml"), spec.join("s.yaml")).unwrap();
        write(&outside.join("linked.yaml"), "hhh", None);
        std::fs::hard_link(outside.join("linked.yaml"), spec.join("h.yaml")).unwrap();
        let mut loader = settled_at_once();
        let paths = [spec.clone()];
        assert_eq!(
            names(&loader.load_paths(&paths).unwrap()),
            ["aaa", "hhh", "sss"]
        );
        // Rewritten in place, through the names outside the tree.
        write(&outside.join("target.yaml"), "ttt", None);
        write(&outside.join("linked.yaml"), "iii", None);
        write(&spec.join("a.yaml"), "bbb", None);
        let told = BTreeSet::from([spec.join("a.yaml")]);
        assert_eq!(
            names(&loader.load_changes(&paths, Some(&told)).unwrap()),
            ["bbb", "iii", "ttt"]
        );
    }

    #[test]
    fn yaml_lines_map_to_the_lines_people_see() {
        let body = "a: 1\r\nb: 2\rc: 3\u{2028}d: 4\ne: [";
        assert_eq!(lf_line(body, 1), 1);
        assert_eq!(lf_line(body, 2), 2); // after CRLF
        assert_eq!(lf_line(body, 3), 2); // a lone CR is no line of the file
        assert_eq!(lf_line(body, 4), 2); // nor is LS
        assert_eq!(lf_line(body, 5), 3);
        assert_eq!(lf_line(body, 99), 3); // past the end: the last line
        let errors =
            load_str("x.yaml", "kind: VirtualService\rmetadata:\r  name: [").expect_err("invalid");
        assert!(errors.0.iter().all(|e| e.line == 1), "{errors}");
    }

    #[test]
    fn strips_serde_location() {
        assert_eq!(
            strip_location("unknown field `x` at line 3 column 5"),
            "unknown field `x`"
        );
        // One line number per error: the document-relative one in the middle goes too.
        assert_eq!(
            strip_location(
                "found a tab character that violates indentation at line 12 column 1, while scanning a plain \
                 scalar at line 11 column 9"
            ),
            "found a tab character that violates indentation, while scanning a plain scalar"
        );
        assert_eq!(
            strip_location("a value at line breaks"),
            "a value at line breaks"
        );
    }
}
