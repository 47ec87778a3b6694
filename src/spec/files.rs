//! What a spec directory is: which files in it are specs, and how a file splits into YAML documents. The server
//! (through [`super::load_paths`]) and `apply`/`delete` (through [`super::SpecDir`]) both read a directory here,
//! so they always see the same files and the same documents.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Adds the spec files under `path` to `out`: for a directory, every `*.yaml`/`*.yml` file below it that is not
/// hidden, recursively; a file named explicitly is a spec whatever its extension. Unsorted.
pub(crate) fn collect(path: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    if fs::metadata(path)?.is_dir() {
        for entry in fs::read_dir(path)? {
            let entry_path = entry?.path();
            if is_hidden(&entry_path) {
                continue;
            }
            if entry_path.is_dir() {
                collect(&entry_path, out)?;
            } else if is_yaml(&entry_path) {
                out.push(entry_path);
            }
        }
    } else {
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

/// Whether a file in a spec directory is read as YAML.
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
        let mut files = Vec::new();
        collect(dir, &mut files).unwrap();
        files.sort();
        assert_eq!(files, vec![dir.join("a.yaml"), dir.join("sub/b.yml")]);
        let mut explicit = Vec::new();
        collect(&dir.join("notes.txt"), &mut explicit).unwrap();
        assert_eq!(explicit, vec![dir.join("notes.txt")]);
    }
}
