//! The spec directory held in memory while `apply`/`delete` edit it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::atomic::write_atomic;
use super::text::{normalize_line_endings, same_content, EditFile, InputDocument};
use super::EditError;
use crate::spec::config::{Config, ResourceKey};
use crate::spec::files;
use crate::spec::load::{load_str, LoadErrors, DEFAULT_MAX_FILE_SIZE};

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

/// A spec directory held in memory while `apply`/`delete` edit it.
#[derive(Debug, Clone)]
pub struct SpecDir {
    root: PathBuf,
    /// Keyed by path as the loader names it (`root` joined with the relative path), so load diagnostics match.
    files: BTreeMap<PathBuf, EditFile>,
}

impl SpecDir {
    /// Reads the spec files under `root`: exactly the files the loader reads.
    pub fn read(root: &Path) -> Result<SpecDir, EditError> {
        if !root.is_dir() {
            return Err(EditError::NotADirectory(root.to_path_buf()));
        }
        let mut listing = files::Listing::default();
        listing.collect(root);
        if let Some((path, source)) = listing.errors.into_iter().next() {
            return Err(EditError::Read { path, source });
        }
        // Paths the loader skips (FIFOs, devices, a directory reached twice) are not specs to edit either.
        let mut paths = listing.files;
        paths.sort();
        let mut files = BTreeMap::new();
        for path in paths {
            let text = files::read(&path, DEFAULT_MAX_FILE_SIZE).map_err(|e| EditError::Read {
                path: path.clone(),
                source: e.into_io(),
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
        self.root.join(if files::is_yaml(Path::new(&name)) {
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
                    doc.on_disk = None;
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
                // Every kind, as the loader appends them (Sidecars were once left out here, so `apply`
                // accepted Sidecars the server then rejected).
                Ok(c) => config.extend_from(&c),
                Err(e) => errors.extend(e.0),
            }
        }
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(LoadErrors(errors))
        }
    }

    /// Where a line of an edited file is for the user: in the input file when it was copied from one (so a
    /// problem in an applied resource is reported where the user wrote it rather than in a file not yet
    /// written), else on its line in the file on disk (edits above it move it only in memory).
    pub fn source_of(&self, path: &Path, line: usize) -> Option<(PathBuf, usize)> {
        let file = self.files.get(path)?;
        let starts = file.body_lines();
        file.docs.iter().zip(starts).find_map(|(doc, start)| {
            let end = start + doc.body.matches('\n').count().max(1);
            if !(start..end).contains(&line) {
                return None;
            }
            match (&doc.source, doc.on_disk) {
                (Some((src, src_line)), _) => Some((src.clone(), src_line + (line - start))),
                (None, Some(disk_line)) => Some((path.to_path_buf(), disk_line + (line - start))),
                (None, None) => None,
            }
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
