//! Editing the spec directory for `apply` and `delete`, at the text level.
//!
//! Files are split into YAML documents on `---` lines and every document keeps its exact text, so replacing or
//! removing one resource never reformats its neighbours or drops their comments. The whole directory
//! is edited in memory first ([`SpecDir`]), so the caller can load and check the result as it would be before
//! anything is written; then each changed file is replaced atomically ([`write_atomic`]). Which files are specs,
//! and where documents split, is `spec::files`'s to say, as it is for the server.

mod atomic;
mod dir;
mod text;

#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;

pub use super::files::{has_content, split_documents, Document};
pub use atomic::write_atomic;
pub use dir::{Applied, Change, SpecDir};
pub use text::{
    document_key, input_documents, line_ending, normalize_line_endings, InputDocument, KeyError,
};

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
