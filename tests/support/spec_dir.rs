//! A scratch spec directory and the clumsy or hostile things done to one: FIFOs, swaps of the whole directory,
//! Kubernetes ConfigMap mounts.

use std::fs;
use std::os::unix::fs::{symlink, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A private copy of the repository's `config/`, in `<tmp>/spec` (so the directory itself can be swapped).
pub struct ScratchSpec {
    pub tmp: tempfile::TempDir,
}

impl ScratchSpec {
    pub fn new() -> ScratchSpec {
        let tmp = tempfile::tempdir().unwrap();
        super::checkout::copy_dir(&repo_config(), &tmp.path().join("spec"));
        ScratchSpec { tmp }
    }

    pub fn dir(&self) -> PathBuf {
        self.tmp.path().join("spec")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// A sibling of the spec directory.
    pub fn beside(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
}

pub fn repo_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

/// Makes a FIFO at `path`.
pub fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Waits (at most `deadline`) until some process opens the FIFO for reading, and returns the write end, held
/// open without writing: whoever opened it is then blocked in `read` for as long as the returned file lives.
/// `None` when nobody opened it in time. Opening a FIFO for writing without blocking fails (ENXIO) exactly
/// while it has no reader, which is what makes this a poll rather than a guess.
pub fn wait_for_fifo_reader(path: &Path, deadline: Duration) -> Option<fs::File> {
    let until = std::time::Instant::now() + deadline;
    loop {
        if let Ok(f) = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            return Some(f);
        }
        if std::time::Instant::now() > until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A directory laid out as the kubelet mounts a ConfigMap: the files live in a timestamped hidden directory,
/// `..data` is a symlink to it, and each file is a symlink through `..data`. An update writes a new timestamped
/// directory and renames a new `..data` symlink over the old one (atomic), then removes the old directory.
pub struct ConfigMapMount {
    pub dir: PathBuf,
    generation: u32,
}

impl ConfigMapMount {
    /// Mounts `files` (name, text) at `dir`, which must not exist.
    pub fn new(dir: &Path, files: &[(String, String)]) -> ConfigMapMount {
        fs::create_dir(dir).unwrap();
        let mut mount = ConfigMapMount {
            dir: dir.to_path_buf(),
            generation: 0,
        };
        mount.update(files);
        mount
    }

    /// The kubelet's atomic update (`AtomicWriter`): new data directory, `..data` swapped by a rename, user-visible
    /// symlinks added or removed, old data directory deleted.
    pub fn update(&mut self, files: &[(String, String)]) {
        let old = self.data_dir_name();
        self.generation += 1;
        let new = self.data_dir_name();
        fs::create_dir(self.dir.join(&new)).unwrap();
        for (name, text) in files {
            fs::write(self.dir.join(&new).join(name), text).unwrap();
        }
        symlink(&new, self.dir.join("..data_tmp")).unwrap();
        fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).unwrap();
        for entry in fs::read_dir(&self.dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && !files.iter().any(|(n, _)| *n == name) {
                fs::remove_file(self.dir.join(&name)).unwrap();
            }
        }
        for (name, _) in files {
            let link = self.dir.join(name);
            if fs::symlink_metadata(&link).is_err() {
                symlink(Path::new("..data").join(name), &link).unwrap();
            }
        }
        if self.generation > 1 {
            fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }

    fn data_dir_name(&self) -> String {
        format!(
            "..2026_12_02_00_00_{:02}.{}",
            self.generation, self.generation
        )
    }
}

/// Every `*.yaml` file of a directory as (name, text), sorted by name.
pub fn yaml_files(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}
