//! What a spec directory is: which files in it are specs, how one is read, and how a file splits into YAML
//! documents. The server (through [`super::load_paths`]) and `apply`/`delete` (through [`super::SpecDir`]) both
//! read a directory here, so they always see the same files and the same documents.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The spec files under some paths, what was passed over and why, and what could not be listed.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// Unsorted; callers sort.
    pub files: Vec<PathBuf>,
    /// Entries that are not read, with the reason: not a regular file, or a directory already read.
    pub skipped: Vec<(PathBuf, String)>,
    pub errors: Vec<(PathBuf, io::Error)>,
    /// What `stat` said of each file of `files` when it was listed (following symlinks), if it said; by path
    /// as bytes (compared with `memcmp`, not component by component).
    pub stamps: BTreeMap<OsString, Stamp>,
    /// Directories read so far, by canonical path, with the path they were first read as: a symlink loop
    /// (`ln -s . spec/loop`) or a second link to a directory is read once and named.
    visited: BTreeMap<PathBuf, PathBuf>,
    /// The directories read through no symlink below the paths collected (those paths included), as named
    /// here: a watcher's event on a file in one of them names the file as this listing does.
    plain_dirs: BTreeSet<PathBuf>,
    /// Files of `files` whose content can change with no event naming them as listed: reached through a
    /// symlink (the file's own or a directory's above it; the target may be anywhere) or with another hard
    /// link (an edit through the other name is an event on that name). [`Listing::patch`] looks at them again.
    volatile: Vec<PathBuf>,
}

impl Listing {
    /// Adds the spec files under `path`: for a directory, every spec file below it that is not hidden,
    /// recursively (entries in name order, so which of two links to a directory is read is always the same);
    /// a file named explicitly is a spec whatever its extension. Only the file type is looked at (`stat`), so
    /// nothing is opened here: opening a FIFO blocks.
    pub fn collect(&mut self, path: &Path) {
        match fs::metadata(path) {
            Ok(m) if m.is_dir() => self.directory(path, true),
            // Named as it is given, in no directory listed: nothing but a new look says it changed.
            Ok(m) => self.file(path, &m, true),
            Err(e) => self.errors.push((path.to_path_buf(), e)),
        }
    }

    /// Whether every file listed was read as a spec: nothing skipped, nothing that could not be listed.
    pub fn is_clean(&self) -> bool {
        self.skipped.is_empty() && self.errors.is_empty()
    }

    /// Brings the listing up to date with changes to some paths, named as this listing names them (a
    /// watcher's events: files, or paths gone whatever they were). `false` if it cannot tell, and the paths
    /// must be listed again: a path outside the directories read through no symlink, one that is now something
    /// other than a regular file or gone, a directory listed here that is gone, or a volatile file that is no
    /// longer a regular file.
    pub fn patch(&mut self, changed: &BTreeSet<PathBuf>) -> bool {
        for path in &self.volatile {
            match fs::metadata(path) {
                Ok(m) if m.is_file() => {
                    self.stamps
                        .insert(path.as_os_str().to_owned(), Stamp::of(&m));
                }
                _ => return false,
            }
        }
        for path in changed {
            let in_plain_dir = path
                .parent()
                .is_some_and(|parent| self.plain_dirs.contains(parent));
            if !in_plain_dir {
                return false;
            }
            match fs::metadata(path) {
                Ok(m) if m.is_file() && is_spec_file(path) => self.restamp(path, &m),
                // Not a spec by name: it was not listed and is not now.
                Ok(m) if m.is_file() => {}
                // Gone, and not a dangling symlink (which is listed, and reading it says why).
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        && fs::symlink_metadata(path).is_err() =>
                {
                    if self.stamps.remove(path.as_os_str()).is_some() {
                        self.files.retain(|f| f != path);
                    } else if self.lists_under(path) {
                        // A directory moved away (`team.d`, or one named like a spec): what was below it goes.
                        return false;
                    }
                }
                _ => return false,
            }
        }
        true
    }

    /// A file changed or added: its stamp, and whether another name links to it now.
    fn restamp(&mut self, path: &Path, metadata: &fs::Metadata) {
        use std::os::unix::fs::MetadataExt;
        let key = path.as_os_str().to_owned();
        if self.stamps.insert(key, Stamp::of(metadata)).is_none() {
            self.files.push(path.to_path_buf());
        }
        if metadata.nlink() > 1 && !self.volatile.iter().any(|v| v == path) {
            self.volatile.push(path.to_path_buf());
        }
    }

    /// Whether anything listed lies below `path`.
    fn lists_under(&self, path: &Path) -> bool {
        self.plain_dirs.contains(path) || self.files.iter().any(|f| f.starts_with(path))
    }

    fn directory(&mut self, dir: &Path, plain: bool) {
        let canonical = match fs::canonicalize(dir) {
            Ok(c) => c,
            Err(e) => return self.errors.push((dir.to_path_buf(), e)),
        };
        if let Some(first) = self.visited.get(&canonical) {
            let reason = format!(
                "a link to the directory already read as {} (a symlink loop, or a second link to it); its files \
                 are read once",
                first.display()
            );
            return self.skipped.push((dir.to_path_buf(), reason));
        }
        self.visited.insert(canonical, dir.to_path_buf());
        if plain {
            self.plain_dirs.insert(dir.to_path_buf());
        }
        let mut entries = match fs::read_dir(dir).and_then(|it| it.collect::<io::Result<Vec<_>>>())
        {
            Ok(entries) => entries,
            Err(e) => return self.errors.push((dir.to_path_buf(), e)),
        };
        // Each name once (a plain sort would allocate both names of every comparison).
        entries.sort_by_cached_key(fs::DirEntry::file_name);
        for entry in entries {
            let path = entry.path();
            if is_hidden(&path) {
                continue;
            }
            // A symlink is followed (ConfigMap volumes are symlinks into a `..data` directory); anything else is
            // stat'ed relative to the open directory, without resolving its whole path again. Followed too when
            // the entry became a symlink after the directory was read (`ln -sfn`).
            let mut through_link = true;
            let metadata = match entry.file_type() {
                Ok(kind) if !kind.is_symlink() => entry.metadata().and_then(|m| {
                    if m.is_symlink() {
                        fs::metadata(&path)
                    } else {
                        through_link = false;
                        Ok(m)
                    }
                }),
                _ => fs::metadata(&path),
            };
            match metadata {
                Ok(m) if m.is_dir() => self.directory(&path, plain && !through_link),
                Ok(m) if is_spec_file(&path) => self.file(&path, &m, !plain || through_link),
                Ok(_) => {}
                // A symlink named like a spec that leads nowhere: reading it says why.
                Err(_) if is_spec_file(&path) => self.files.push(path),
                Err(_) => {}
            }
        }
    }

    /// A file listed; `volatile` if reached through a symlink.
    fn file(&mut self, path: &Path, metadata: &fs::Metadata, volatile: bool) {
        use std::os::unix::fs::MetadataExt;
        match not_regular(metadata.file_type()) {
            None => {
                if volatile || metadata.nlink() > 1 {
                    self.volatile.push(path.to_path_buf());
                }
                self.files.push(path.to_path_buf());
                self.stamps
                    .insert(path.as_os_str().to_owned(), Stamp::of(metadata));
            }
            Some(what) => self.skipped.push((path.to_path_buf(), skip_reason(what))),
        }
    }
}

/// What `stat` says of a file that changes whenever its content does: which file it is (a symlink or a
/// ConfigMap's `..data` swapped leads to another), its size, and when its content and its inode last changed,
/// to the nanosecond the file system keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    device: u64,
    inode: u64,
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl Stamp {
    fn of(metadata: &fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            device: metadata.dev(),
            inode: metadata.ino(),
            size: metadata.size(),
            modified: (metadata.mtime(), metadata.mtime_nsec()),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
        }
    }

    /// Whether a file with this stamp, stamped at `at`, is older than `margin` then. A file system stamps a
    /// write with its clock's coarse tick, so two writes within one tick can leave the same stamp (with the
    /// same size): only a stamp older than any tick says that the content is the one that was there when
    /// stamped, as git's "racily clean" index entries are re-read.
    pub fn settled_at(&self, at: std::time::SystemTime, margin: std::time::Duration) -> bool {
        let Ok(at) = at.duration_since(std::time::UNIX_EPOCH) else {
            return false;
        };
        let limit = at.saturating_sub(margin);
        let before = |(secs, nanos): (i64, i64)| match (u64::try_from(secs), u32::try_from(nanos)) {
            (Ok(secs), Ok(nanos)) => std::time::Duration::new(secs, nanos) < limit,
            _ => false,
        };
        before(self.modified) && before(self.changed)
    }
}

/// What a file that is not a regular file is, for messages; `None` for a regular file.
fn not_regular(file_type: fs::FileType) -> Option<&'static str> {
    if file_type.is_file() {
        None
    } else if file_type.is_fifo() {
        Some("a FIFO")
    } else if file_type.is_socket() {
        Some("a socket")
    } else if file_type.is_char_device() || file_type.is_block_device() {
        Some("a device")
    } else {
        Some("not a regular file")
    }
}

fn skip_reason(what: &str) -> String {
    format!("{what}, not read: only regular files (and symlinks to them) are specs")
}

/// Why a spec file was not read.
#[derive(Debug)]
pub(crate) enum ReadError {
    Io(io::Error),
    /// Not a regular file (it became one between listing and reading): skipped, like those found listing.
    Skipped(String),
    TooLarge {
        size: u64,
        limit: u64,
    },
    /// Not UTF-8, from this 1-based line.
    NotUtf8 {
        line: usize,
    },
}

impl ReadError {
    /// As an I/O error, for callers that report those.
    pub fn into_io(self) -> io::Error {
        match self {
            ReadError::Io(e) => e,
            ReadError::Skipped(reason) => io::Error::other(reason),
            ReadError::TooLarge { size, limit } => io::Error::other(format!(
                "larger than the limit of {limit} bytes ({size} bytes or more)"
            )),
            ReadError::NotUtf8 { line } => {
                io::Error::other(format!("not UTF-8 text from line {line}"))
            }
        }
    }
}

/// Reads one spec file: a regular file (or a symlink to one), at most `limit` bytes. The file is opened
/// without blocking and its type checked on the open file, so a FIFO swapped in after listing blocks nothing,
/// and the read is bounded, so a file that grows (or lies about its size) cannot fill memory.
pub(crate) fn read(path: &Path, limit: u64) -> Result<String, ReadError> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(ReadError::Io)?;
    let metadata = file.metadata().map_err(ReadError::Io)?;
    if let Some(what) = not_regular(metadata.file_type()) {
        return Err(ReadError::Skipped(skip_reason(what)));
    }
    if metadata.len() > limit {
        return Err(ReadError::TooLarge {
            size: metadata.len(),
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            size: bytes.len() as u64,
            limit,
        });
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        ReadError::NotUtf8 {
            line: valid.iter().filter(|b| **b == b'\n').count() + 1,
        }
    })
}

/// Hidden entries belong to tools, not to the user's specs: editors' swap and lock files (Emacs's `.#x.yaml`
/// is a dangling symlink), our own temporary files during an atomic write, `.git`, and the data directories
/// of a Kubernetes ConfigMap mount (`..data`, `..2024_01_01_00_00_00.1`), whose files are read through the
/// mount's own links.
fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// Whether a file in a spec directory is read as a spec: `*.yaml`, `*.yml` or `*.json` (YAML reads JSON), not
/// hidden. The watcher uses the same rule to decide which changes are worth a reading.
pub fn is_spec_file(path: &Path) -> bool {
    !is_hidden(path)
        && matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml") | Some("yml") | Some("json")
        )
}

/// Whether a file name is YAML: `apply` writes YAML, so a new file it creates gets one of these extensions.
pub(crate) fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml") | Some("yml")
    )
}

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

impl Document<'_> {
    /// The line of the first line with content: where a reader would say the resource starts.
    pub fn content_line(&self) -> usize {
        self.body
            .lines()
            .position(is_content)
            .map_or(self.first_line, |i| self.first_line + i)
    }
}

/// Splits a file into documents at `---` separator lines (`---`, `--- …`, `...`). serde_yaml can iterate
/// documents itself, but it reports no line per document, and errors inside a document need the file line.
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
    body.lines().any(is_content)
}

fn is_content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#')
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(docs[0].content_line(), 2);
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
    fn splits_documents_with_lines() {
        let docs = split_documents("a: 1\n---\nb: 2\n\n--- # c\nc: 3\n");
        let firsts: Vec<_> = docs.iter().map(|d| d.first_line).collect();
        assert_eq!(firsts, vec![1, 3, 6]);
        assert_eq!(docs[1].body, "b: 2\n\n");
    }

    #[cfg(unix)]
    #[test]
    fn hidden_entries_and_other_extensions_are_not_specs() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        fs::create_dir(dir.join("sub")).unwrap();
        fs::create_dir(dir.join(".git")).unwrap();
        for name in [
            "a.yaml",
            "sub/b.yml",
            ".hidden.yaml",
            ".git/c.yaml",
            "notes.txt",
        ] {
            fs::write(dir.join(name), "").unwrap();
        }
        std::os::unix::fs::symlink("user@host.1:2", dir.join(".#a.yaml")).unwrap();
        let mut listing = Listing::default();
        listing.collect(dir);
        assert_eq!(
            listing.files,
            vec![dir.join("a.yaml"), dir.join("sub/b.yml")]
        );
        assert!(listing.skipped.is_empty() && listing.errors.is_empty());
        let mut explicit = Listing::default();
        explicit.collect(&dir.join("notes.txt"));
        assert_eq!(explicit.files, vec![dir.join("notes.txt")]);
    }
}
