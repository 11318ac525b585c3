//! Small file-system helpers shared by the key file and the tenant shred-secret store:
//! private (0600 / 0700) creation, atomic replacement, directory sync.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Whether [`write_atomically`] may replace an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replace {
    /// Rename over whatever is there.
    Yes,
    /// Hard-link into place: fails with `AlreadyExists` if the target exists, so the first of
    /// several racing writers wins.
    No,
}

/// Writes `data` to a fresh temporary file next to `path` (mode 0600 on Unix), syncs it,
/// moves it into place (see [`Replace`]) and syncs the directory. The temporary file is
/// removed on every path.
pub(crate) fn write_atomically(path: &Path, data: &[u8], replace: Replace) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"))?;
    let mut suffix = [0u8; 6];
    crate::crypto::try_fill_from_os_rng(&mut suffix)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        URL_SAFE_NO_PAD.encode(suffix)
    ));
    let result = (|| {
        let mut file = create_private_new(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        drop(file);
        if replace == Replace::Yes {
            fs::rename(&tmp, path)?;
        } else {
            let linked = fs::hard_link(&tmp, path);
            fs::remove_file(&tmp)?;
            linked?;
        }
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates a new file that only its owner can read (fails if it exists).
#[cfg(unix)]
fn create_private_new(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private_new(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// Creates `dir` and its parents; on Unix, new directories are 0700.
#[cfg(unix)]
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

/// Flushes a directory's entries (a rename or unlink in it) to disk.
#[cfg(unix)]
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
pub(crate) fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}
