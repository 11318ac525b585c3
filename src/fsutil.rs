//! Small file-system helpers shared by the key file and the tenant shred-secret store:
//! private (0600 / 0700) creation, atomic replacement (keeping the replaced file's owner, group
//! and mode, through symbolic links), directory sync.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Whether [`write_atomically`] may replace an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replace {
    /// Rename over whatever is there. A symbolic link at `path` is followed: its target is
    /// replaced and the link stays. The replaced file's owner, group and mode are kept.
    Yes,
    /// Hard-link into place: fails with `AlreadyExists` if the target exists, so the first of
    /// several racing writers wins.
    No,
}

/// Symbolic links followed before giving up, as Linux's `ELOOP` limit.
const MAX_SYMLINKS: usize = 40;

/// Writes `data` to a fresh temporary file next to `path` (mode 0600 on Unix), syncs it,
/// moves it into place (see [`Replace`]) and syncs the directory. The temporary file is
/// removed on every path.
///
/// With [`Replace::Yes`] the file replaced keeps its owner, group and mode (set on the
/// temporary file before the rename; an owner the process may not give is an error and leaves
/// the file untouched), and a symbolic link at `path` keeps pointing at the new file.
pub(crate) fn write_atomically(path: &Path, data: &[u8], replace: Replace) -> std::io::Result<()> {
    let path = match replace {
        Replace::Yes => resolve_symlinks(path)?,
        Replace::No => path.to_owned(),
    };
    let existing = match replace {
        Replace::Yes => match fs::metadata(&path) {
            Ok(meta) => Some(meta),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        },
        Replace::No => None,
    };
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
        if let Some(meta) = &existing {
            keep_owner_and_mode(&file, meta)?;
        }
        file.sync_all()?;
        drop(file);
        if replace == Replace::Yes {
            fs::rename(&tmp, &path)?;
        } else {
            let linked = fs::hard_link(&tmp, &path);
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

/// `path`, or, while it is a symbolic link, what it points to (a relative target is taken
/// relative to the link's directory). The last path need not exist.
fn resolve_symlinks(path: &Path) -> std::io::Result<PathBuf> {
    let mut path = path.to_owned();
    for _ in 0..MAX_SYMLINKS {
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = fs::read_link(&path)?;
                path = match path.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            Ok(_) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(path),
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("more than {MAX_SYMLINKS} symbolic links to follow"),
    ))
}

/// Gives the new file `file` the owner, group and permission bits of the file it replaces.
#[cfg(unix)]
fn keep_owner_and_mode(file: &fs::File, old: &fs::Metadata) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let new = file.metadata()?;
    if (new.uid(), new.gid()) != (old.uid(), old.gid()) {
        // The owner first: changing it may clear set-id bits the mode then restores.
        std::os::unix::fs::fchown(file, Some(old.uid()), Some(old.gid())).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "cannot keep the file's owner {}:{} ({e})",
                    old.uid(),
                    old.gid()
                ),
            )
        })?;
    }
    file.set_permissions(fs::Permissions::from_mode(old.mode() & 0o7777))
}

#[cfg(not(unix))]
fn keep_owner_and_mode(file: &fs::File, old: &fs::Metadata) -> std::io::Result<()> {
    file.set_permissions(old.permissions())
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
