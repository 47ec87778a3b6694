//! Editing the spec directory for `apply` and `delete`, at the text level.
//!
//! Files are split into YAML documents on `---` lines and every document keeps its exact text, so replacing or
//! removing one resource never reformats its neighbours or drops their comments. The whole directory is edited in
//! memory first ([`SpecDir`]), so the caller can load and check the result as it would be before anything is
//! written; then each changed file is replaced atomically ([`write_atomic`]).

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::config::{Config, Kind, ResourceKey, DEFAULT_NAMESPACE};
use super::load::{load_str, LoadErrors};

/// One YAML document of a file. Concatenating `separator` and `body` of every document gives the file back
/// byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Document<'a> {
    /// The separator line (`---`, possibly with a comment) before the document, line ending included; empty for
    /// the first document of a file.
    pub separator: &'a str,
    pub body: &'a str,
    /// 1-based line of the file on which `body` starts.
    pub first_line: usize,
}

/// Splits a file into documents. Separator lines are the ones the loader splits on (`---`, `--- …`, `...`), so a
/// document here is exactly a document there.
pub fn split_documents(text: &str) -> Vec<Document<'_>> {
    let mut docs = Vec::new();
    let mut separator = 0..0;
    let mut body_start = 0usize;
    let mut body_line = 1usize;
    let mut offset = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        if is_separator(line) {
            docs.push(Document {
                separator: &text[separator.clone()],
                body: &text[body_start..offset],
                first_line: body_line,
            });
            separator = offset..offset + line.len();
            body_start = offset + line.len();
            body_line = i + 2;
        }
        offset += line.len();
    }
    docs.push(Document {
        separator: &text[separator],
        body: &text[body_start..],
        first_line: body_line,
    });
    docs
}

fn is_separator(line: &str) -> bool {
    let trimmed = line.trim_end();
    trimmed == "---"
        || trimmed.starts_with("--- ")
        || trimmed.starts_with("---\t")
        || trimmed == "..."
}

/// Whether a document holds anything but blank lines and comments (an empty document is not a resource).
pub fn has_content(body: &str) -> bool {
    body.lines().any(|l| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#')
    })
}

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
}

/// The kind/namespace/name of a document (namespace `default` when omitted), or `None` for an empty document.
/// Lenient on purpose: only the identity is read, the strict check is the loader's job.
pub fn document_key(body: &str) -> Result<Option<ResourceKey>, KeyError> {
    let value: serde_yaml::Value =
        serde_yaml::from_str(body).map_err(|e| KeyError::Yaml(e.to_string()))?;
    if value.is_null() {
        return Ok(None);
    }
    let text = |v: Option<&serde_yaml::Value>| v.and_then(|v| v.as_str()).map(str::to_owned);
    let kind = text(value.get("kind")).ok_or(KeyError::MissingKind)?;
    let kind = Kind::parse(&kind).ok_or(KeyError::UnsupportedKind(kind))?;
    let metadata = value.get("metadata");
    let name = text(metadata.and_then(|m| m.get("name"))).ok_or(KeyError::MissingName)?;
    let namespace = text(metadata.and_then(|m| m.get("namespace")))
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
    Ok(Some(ResourceKey {
        kind,
        namespace,
        name,
    }))
}

/// Same resource content, ignoring comments and formatting; falls back to the bytes when either is not YAML.
fn same_content(a: &str, b: &str) -> bool {
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

/// Problems reading, naming or writing documents and files.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("spec directory `{}` does not exist or is not a directory (create it, or pass --config DIR)", .0.display())]
    NotADirectory(PathBuf),
    #[error("cannot read `{}`: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write `{}`: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{}:{line}: {source}", file.display())]
    Document {
        file: PathBuf,
        line: usize,
        source: KeyError,
    },
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

/// What `apply` did to one resource, in kubectl's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Created,
    Configured,
    /// Same content as what is there (comments and formatting are not compared); the text is left as it was.
    Unchanged,
}

impl Applied {
    pub fn as_str(self) -> &'static str {
        match self {
            Applied::Created => "created",
            Applied::Configured => "configured",
            Applied::Unchanged => "unchanged",
        }
    }
}

/// A change to make on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Write { path: PathBuf, text: String },
    Remove { path: PathBuf },
}

#[derive(Debug, Clone)]
struct EditDoc {
    separator: String,
    body: String,
    key: Option<ResourceKey>,
    /// Set when the body came from an input file: (file, line where the body starts there).
    source: Option<(PathBuf, usize)>,
}

#[derive(Debug, Clone)]
struct EditFile {
    /// `None` for a file `apply` creates.
    original: Option<String>,
    docs: Vec<EditDoc>,
    eol: &'static str,
    touched: bool,
}

impl EditFile {
    fn parse(text: &str) -> EditFile {
        EditFile {
            docs: split_documents(text)
                .into_iter()
                .map(|d| EditDoc {
                    separator: d.separator.to_owned(),
                    body: d.body.to_owned(),
                    // A document that cannot be named is never matched; the loader reports what is wrong with it.
                    key: document_key(d.body).ok().flatten(),
                    source: None,
                })
                .collect(),
            original: Some(text.to_owned()),
            eol: line_ending(text),
            touched: false,
        }
    }

    fn new_file() -> EditFile {
        EditFile {
            original: None,
            docs: Vec::new(),
            eol: "\n",
            touched: true,
        }
    }

    fn render(&self) -> String {
        self.docs
            .iter()
            .flat_map(|d| [d.separator.as_str(), d.body.as_str()])
            .collect()
    }

    /// The file's content after the edits; `None` when no document with content is left (the file goes).
    fn current(&self) -> Option<String> {
        if self.touched {
            self.docs
                .iter()
                .any(|d| has_content(&d.body))
                .then(|| self.render())
        } else {
            self.original.clone()
        }
    }

    fn append(&mut self, body: String, source: (PathBuf, usize), key: ResourceKey) {
        let doc = |separator: String| EditDoc {
            separator,
            body,
            key: Some(key),
            source: Some(source),
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

    fn remove(&mut self, index: usize) {
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
    fn body_lines(&self) -> Vec<usize> {
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

/// A spec directory held in memory while `apply`/`delete` edit it.
#[derive(Debug, Clone)]
pub struct SpecDir {
    root: PathBuf,
    /// Keyed by path as the loader names it (`root` joined with the relative path), so load diagnostics match.
    files: BTreeMap<PathBuf, EditFile>,
}

impl SpecDir {
    /// Reads every `*.yaml`/`*.yml` file under `root`, recursively (the files the loader reads).
    pub fn read(root: &Path) -> Result<SpecDir, EditError> {
        if !root.is_dir() {
            return Err(EditError::NotADirectory(root.to_path_buf()));
        }
        let mut paths = Vec::new();
        collect_yaml(root, &mut paths)?;
        let mut files = BTreeMap::new();
        for path in paths {
            let text = fs::read_to_string(&path).map_err(|source| EditError::Read {
                path: path.clone(),
                source,
            })?;
            files.insert(path, EditFile::parse(&text));
        }
        Ok(SpecDir {
            root: root.to_path_buf(),
            files,
        })
    }

    /// A directory from texts, for tests and for callers that already hold the files.
    pub fn from_texts(root: &Path, texts: impl IntoIterator<Item = (PathBuf, String)>) -> SpecDir {
        SpecDir {
            root: root.to_path_buf(),
            files: texts
                .into_iter()
                .map(|(p, t)| (p, EditFile::parse(&t)))
                .collect(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file `apply` adds new resources from `input` to: the input's file name in the directory (`.yaml`
    /// appended when it has another extension, so the loader reads it).
    pub fn target_for(&self, input: &Path) -> PathBuf {
        let name = input
            .file_name()
            .map_or_else(|| "applied".into(), |n| n.to_string_lossy().into_owned());
        let is_yaml = matches!(
            Path::new(&name).extension().and_then(|e| e.to_str()),
            Some("yaml") | Some("yml")
        );
        self.root.join(if is_yaml {
            name
        } else {
            format!("{name}.yaml")
        })
    }

    /// Adds or replaces one resource: every document with the same kind/namespace/name is replaced in place;
    /// when there is none, the resource is appended to `target` (created if needed).
    pub fn apply(&mut self, input: &InputDocument, target: &Path) -> Applied {
        let mut found = false;
        let mut changed = false;
        for file in self.files.values_mut() {
            let eol = file.eol;
            for doc in file
                .docs
                .iter_mut()
                .filter(|d| d.key.as_ref() == Some(&input.key))
            {
                found = true;
                if !same_content(&doc.body, &input.body) {
                    doc.body = normalize_line_endings(&input.body, eol);
                    doc.source = Some((input.file.clone(), input.first_line));
                    file.touched = true;
                    changed = true;
                }
            }
        }
        if found {
            return if changed {
                Applied::Configured
            } else {
                Applied::Unchanged
            };
        }
        let file = self
            .files
            .entry(target.to_path_buf())
            .or_insert_with(EditFile::new_file);
        file.touched = true;
        let body = normalize_line_endings(&input.body, file.eol);
        file.append(
            body,
            (input.file.clone(), input.first_line),
            input.key.clone(),
        );
        Applied::Created
    }

    /// Removes every document defining `key`; `false` when there is none.
    pub fn delete(&mut self, key: &ResourceKey) -> bool {
        let mut found = false;
        for file in self.files.values_mut() {
            while let Some(i) = file.docs.iter().position(|d| d.key.as_ref() == Some(key)) {
                file.remove(i);
                file.touched = true;
                found = true;
            }
        }
        found
    }

    /// Every file's content as it would be after the edits, in the loader's order (`None`: removed).
    pub fn texts(&self) -> impl Iterator<Item = (&Path, Option<String>)> {
        self.files.iter().map(|(p, f)| (p.as_path(), f.current()))
    }

    /// Loads the directory as it would be after the edits, exactly as `load_paths` would read it from disk.
    pub fn load(&self) -> Result<Config, LoadErrors> {
        let mut config = Config::default();
        let mut errors = Vec::new();
        for (path, text) in self.texts() {
            let Some(text) = text else { continue };
            match load_str(path, &text) {
                Ok(c) => {
                    config.virtual_services.extend(c.virtual_services);
                    config.destination_rules.extend(c.destination_rules);
                    config.gateways.extend(c.gateways);
                    config.service_entries.extend(c.service_entries);
                    config.workload_entries.extend(c.workload_entries);
                }
                Err(e) => errors.extend(e.0),
            }
        }
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(LoadErrors(errors))
        }
    }

    /// Where a line of an edited file came from when it was copied from an input file, so that a problem in an
    /// applied resource is reported where the user wrote it rather than in a file not yet written.
    pub fn source_of(&self, path: &Path, line: usize) -> Option<(PathBuf, usize)> {
        let file = self.files.get(path)?;
        let starts = file.body_lines();
        file.docs.iter().zip(starts).find_map(|(doc, start)| {
            let (src, src_line) = doc.source.as_ref()?;
            let end = start + doc.body.matches('\n').count().max(1);
            (start..end)
                .contains(&line)
                .then(|| (src.clone(), src_line + (line - start)))
        })
    }

    /// What has to change on disk for the edits, in path order.
    pub fn changes(&self) -> Vec<Change> {
        self.files
            .iter()
            .filter(|(_, f)| f.touched)
            .filter_map(|(path, f)| match (f.current(), &f.original) {
                (Some(text), Some(original)) if &text == original => None,
                (Some(text), _) => Some(Change::Write {
                    path: path.clone(),
                    text,
                }),
                (None, Some(_)) => Some(Change::Remove { path: path.clone() }),
                (None, None) => None,
            })
            .collect()
    }

    /// Writes the changes: each file atomically, removed files last.
    pub fn commit(&self) -> Result<(), EditError> {
        let changes = self.changes();
        for change in &changes {
            if let Change::Write { path, text } = change {
                write_atomic(path, text.as_bytes()).map_err(|source| EditError::Write {
                    path: path.clone(),
                    source,
                })?;
            }
        }
        for change in &changes {
            if let Change::Remove { path } = change {
                fs::remove_file(path).map_err(|source| EditError::Write {
                    path: path.clone(),
                    source,
                })?;
            }
        }
        Ok(())
    }
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), EditError> {
    let read_error = |source| EditError::Read {
        path: dir.to_path_buf(),
        source,
    };
    for entry in fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        if path.is_dir() {
            collect_yaml(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml") | Some("yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// Replaces `path` with `contents` so that a reader (the directory watcher, an editor) sees the old file or the
/// new one, never a partial write: a temporary file in the same directory, flushed to disk, renamed over it.
/// The temporary name starts with `.` and ends in `.tmp`, so the loader never reads it.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        if let Ok(meta) = fs::metadata(path) {
            file.set_permissions(meta.permissions())?;
        }
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        // Best effort: the error that matters is the one returned.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Makes the rename itself durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vs(name: &str, host: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\nspec:\n  hosts:\n  - {host}\n"
        )
    }

    fn key(kind: Kind, name: &str) -> ResourceKey {
        ResourceKey {
            kind,
            namespace: "default".into(),
            name: name.into(),
        }
    }

    fn input(text: &str) -> Vec<InputDocument> {
        input_documents(Path::new("in.yaml"), text).unwrap()
    }

    fn dir(files: &[(&str, &str)]) -> SpecDir {
        SpecDir::from_texts(
            Path::new("cfg"),
            files
                .iter()
                .map(|(p, t)| (Path::new("cfg").join(p), t.to_string())),
        )
    }

    fn text_of(d: &SpecDir, name: &str) -> Option<String> {
        let path = Path::new("cfg").join(name);
        d.texts().find(|(p, _)| *p == path).and_then(|(_, t)| t)
    }

    #[test]
    fn split_is_lossless_and_counts_lines() {
        let text = "# head\na: 1\n--- # two\nb: 2\n\n---\n...\nc: 3";
        let docs = split_documents(text);
        let joined: String = docs.iter().flat_map(|d| [d.separator, d.body]).collect();
        assert_eq!(joined, text);
        assert_eq!(docs.len(), 4);
        assert_eq!(docs[1].separator, "--- # two\n");
        assert_eq!(docs[1].body, "b: 2\n\n");
        assert_eq!(docs[1].first_line, 4);
        assert_eq!(docs[2].body, "");
        assert_eq!(docs[3].separator, "...\n");
        assert_eq!(docs[3].first_line, 8);
    }

    #[test]
    fn split_handles_leading_separator_and_crlf() {
        let text = "---\r\na: 1\r\n---\r\nb: 2\r\n";
        let docs = split_documents(text);
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].body, "");
        assert_eq!(docs[1].separator, "---\r\n");
        assert_eq!(docs[1].body, "a: 1\r\n");
        assert_eq!(docs[2].first_line, 4);
        // `----` and an indented `---` inside a block scalar are content, not separators.
        assert_eq!(split_documents("a: |\n  ---\n----: x\n").len(), 1);
    }

    #[test]
    fn keys_default_the_namespace_and_skip_empty_documents() {
        assert_eq!(
            document_key(&vs("reviews", "reviews")).unwrap(),
            Some(key(Kind::VirtualService, "reviews"))
        );
        assert_eq!(document_key("# only a comment\n").unwrap(), None);
        let namespaced = "kind: Gateway\nmetadata:\n  name: gw\n  namespace: istio-system\n";
        assert_eq!(
            document_key(namespaced).unwrap().unwrap().namespace,
            "istio-system"
        );
        assert_eq!(
            document_key("kind: Deployment\nmetadata: {name: x}\n"),
            Err(KeyError::UnsupportedKind("Deployment".into()))
        );
        assert_eq!(document_key("kind: Gateway\n"), Err(KeyError::MissingName));
        assert!(matches!(document_key("a: [\n"), Err(KeyError::Yaml(_))));
    }

    #[test]
    fn input_documents_skip_empty_ones_and_name_bad_ones() {
        let text = format!("---\n# c\n---\n{}---\n", vs("a", "a"));
        let docs = input(&text);
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].first_line, 4);
        let err = input_documents(Path::new("in.yaml"), "kind: Gateway\n").unwrap_err();
        assert_eq!(err.to_string(), "in.yaml:1: `metadata.name` is missing");
    }

    #[test]
    fn replace_keeps_other_documents_and_comments_byte_for_byte() {
        let original = format!(
            "# header comment\n{}--- # the reviews one\n# about reviews\n{}---\n{}",
            vs("a", "a"),
            vs("reviews", "old"),
            vs("c", "c")
        );
        let mut d = dir(&[("x.yaml", &original)]);
        let new = input(&vs("reviews", "new"));
        assert_eq!(
            d.apply(&new[0], Path::new("cfg/in.yaml")),
            Applied::Configured
        );
        let expected = format!(
            "# header comment\n{}--- # the reviews one\n{}---\n{}",
            vs("a", "a"),
            vs("reviews", "new"),
            vs("c", "c")
        );
        assert_eq!(text_of(&d, "x.yaml").unwrap(), expected);
        assert_eq!(
            d.changes(),
            vec![Change::Write {
                path: "cfg/x.yaml".into(),
                text: expected
            }]
        );
    }

    #[test]
    fn same_content_is_unchanged_and_left_alone() {
        let original = format!("# keep me\n{}", vs("a", "a"));
        let mut d = dir(&[("x.yaml", &original)]);
        let reformatted = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec: {hosts: [a]}\n";
        assert_eq!(
            d.apply(&input(reformatted)[0], Path::new("cfg/in.yaml")),
            Applied::Unchanged
        );
        assert!(d.changes().is_empty());
    }

    #[test]
    fn new_resources_go_to_the_target_file() {
        let mut d = dir(&[("x.yaml", &vs("a", "a"))]);
        let docs = input(&format!("{}---\n{}", vs("b", "b"), vs("c", "c")));
        let target = d.target_for(Path::new("../somewhere/in.yaml"));
        assert_eq!(target, Path::new("cfg/in.yaml"));
        for doc in &docs {
            assert_eq!(d.apply(doc, &target), Applied::Created);
        }
        assert_eq!(
            text_of(&d, "in.yaml").unwrap(),
            format!("{}---\n{}", vs("b", "b"), vs("c", "c"))
        );
        assert_eq!(text_of(&d, "x.yaml").unwrap(), vs("a", "a"));
        assert_eq!(d.changes().len(), 1);
        assert_eq!(
            d.target_for(Path::new("in.txt")),
            Path::new("cfg/in.txt.yaml")
        );
    }

    #[test]
    fn append_to_existing_file_adds_separator_or_fills_trailing_empty_document() {
        let mut d = dir(&[
            (
                "no-newline.yaml",
                "# only\nkind: Gateway\nmetadata: {name: g}",
            ),
            ("trailing.yaml", &format!("{}---\n", vs("a", "a"))),
        ]);
        let doc = &input(&vs("b", "b"))[0];
        d.apply(doc, Path::new("cfg/no-newline.yaml"));
        assert_eq!(
            text_of(&d, "no-newline.yaml").unwrap(),
            format!(
                "# only\nkind: Gateway\nmetadata: {{name: g}}\n---\n{}",
                vs("b", "b")
            )
        );
        let doc = &input(&vs("c", "c"))[0];
        d.apply(doc, Path::new("cfg/trailing.yaml"));
        assert_eq!(
            text_of(&d, "trailing.yaml").unwrap(),
            format!("{}---\n{}", vs("a", "a"), vs("c", "c"))
        );
    }

    #[test]
    fn crlf_files_stay_crlf() {
        let original =
            vs("a", "a").replace('\n', "\r\n") + "---\r\n" + &vs("b", "old").replace('\n', "\r\n");
        let mut d = dir(&[("x.yaml", &original)]);
        d.apply(&input(&vs("b", "new"))[0], Path::new("cfg/x.yaml"));
        d.apply(&input(&vs("c", "c"))[0], Path::new("cfg/x.yaml"));
        let text = text_of(&d, "x.yaml").unwrap();
        assert_eq!(text.matches('\n').count(), text.matches("\r\n").count());
        assert_eq!(
            text,
            format!(
                "{}---\n{}---\n{}",
                vs("a", "a"),
                vs("b", "new"),
                vs("c", "c")
            )
            .replace('\n', "\r\n")
        );
    }

    #[test]
    fn delete_removes_documents_and_empty_files() {
        let original = format!("{}--- # b\n{}", vs("a", "a"), vs("b", "b"));
        let mut d = dir(&[
            ("x.yaml", &original),
            ("y.yaml", &format!("# lonely\n{}", vs("c", "c"))),
        ]);
        assert!(d.delete(&key(Kind::VirtualService, "a")));
        // The first document goes; the next one's separator carries a comment, so it stays.
        assert_eq!(
            text_of(&d, "x.yaml").unwrap(),
            format!("--- # b\n{}", vs("b", "b"))
        );
        assert!(d.delete(&key(Kind::VirtualService, "c")));
        assert!(!d.delete(&key(Kind::VirtualService, "zzz")));
        assert!(!d.delete(&key(Kind::Gateway, "b")));
        assert_eq!(
            d.changes(),
            vec![
                Change::Write {
                    path: "cfg/x.yaml".into(),
                    text: format!("--- # b\n{}", vs("b", "b"))
                },
                Change::Remove {
                    path: "cfg/y.yaml".into()
                },
            ]
        );
        let mut d = dir(&[(
            "x.yaml",
            &format!("{}---\n{}---\n", vs("a", "a"), vs("b", "b")),
        )]);
        d.delete(&key(Kind::VirtualService, "a"));
        assert_eq!(
            text_of(&d, "x.yaml").unwrap(),
            format!("{}---\n", vs("b", "b"))
        );
        d.delete(&key(Kind::VirtualService, "b"));
        assert_eq!(text_of(&d, "x.yaml"), None);
    }

    #[test]
    fn untouched_comment_only_files_are_not_removed() {
        let mut d = dir(&[("notes.yaml", "# nothing yet\n"), ("x.yaml", &vs("a", "a"))]);
        d.delete(&key(Kind::VirtualService, "a"));
        assert_eq!(
            d.changes(),
            vec![Change::Remove {
                path: "cfg/x.yaml".into()
            }]
        );
    }

    #[test]
    fn source_of_maps_applied_lines_back_to_the_input() {
        let mut d = dir(&[(
            "x.yaml",
            &format!("{}---\n{}", vs("a", "a"), vs("b", "old")),
        )]);
        let docs = input_documents(
            Path::new("in.yaml"),
            &format!("# c\n---\n{}---\n{}", vs("b", "new"), vs("z", "z")),
        )
        .unwrap();
        d.apply(&docs[0], Path::new("cfg/in.yaml"));
        d.apply(&docs[1], Path::new("cfg/in.yaml"));
        // b's body starts on line 9 of x.yaml and line 3 of in.yaml.
        assert_eq!(
            d.source_of(Path::new("cfg/x.yaml"), 10),
            Some((PathBuf::from("in.yaml"), 4))
        );
        assert_eq!(d.source_of(Path::new("cfg/x.yaml"), 2), None);
        assert_eq!(
            d.source_of(Path::new("cfg/in.yaml"), 1),
            Some((PathBuf::from("in.yaml"), 11))
        );
    }

    #[test]
    fn load_reads_the_edited_texts() {
        let mut d = dir(&[("x.yaml", &vs("a", "a"))]);
        d.apply(&input(&vs("b", "b"))[0], Path::new("cfg/new.yaml"));
        let config = d.load().unwrap();
        let names: Vec<_> = config
            .virtual_services
            .iter()
            .map(|v| v.name().to_owned())
            .collect();
        assert_eq!(names, vec!["b", "a"]);
        assert_eq!(
            config.virtual_services[0].origin.file,
            Path::new("cfg/new.yaml")
        );
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.yaml");
        write_atomic(&path, b"one\n").unwrap();
        write_atomic(&path, b"two\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two\n");
        let names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.yaml")]);
    }
}
