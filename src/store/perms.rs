//! The data directory is private: it holds live signing links (outbox `.eml` files), keys and
//! every signed agreement. Directories 0700, files 0600.
//!
//! [`secure_data_dir`] runs whenever the store is opened (server and every CLI command): it sets
//! the process umask to 077, so that everything written afterwards (sled's files, `.eml` files,
//! keys, backups) is created private, and tightens what an earlier release (or a hand-made
//! directory) left looser, saying so in the log.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Sets umask 077, creates `data` (0700) if needed, and tightens every directory to 0700 and
/// every file to 0600 under it. Returns how many entries were tightened. Symbolic links are not
/// followed.
pub fn secure_data_dir(data: &Path) -> std::io::Result<usize> {
    // SAFETY: umask has no memory-safety preconditions; it only changes the process's file
    // creation mask (process-wide, which is what we want: nothing we write should be readable
    // by others).
    #[allow(unsafe_code)]
    unsafe {
        libc::umask(0o077);
    }
    std::fs::create_dir_all(data)?;
    let mut tightened = 0;
    let mut stack = vec![data.to_path_buf()];
    while let Some(dir) = stack.pop() {
        tightened += tighten(&dir, 0o700)?;
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                tightened += tighten(&entry.path(), 0o600)?;
            }
        }
    }
    if tightened > 0 {
        tracing::warn!(
            dir = %data.display(),
            entries = tightened,
            "the data directory was readable by others: tightened to 0700 (directories) and 0600 (files)"
        );
    }
    Ok(tightened)
}

fn tighten(path: &Path, mode: u32) -> std::io::Result<usize> {
    let current = std::fs::symlink_metadata(path)?.permissions().mode() & 0o777;
    if current & 0o077 == 0 {
        return Ok(0);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(1)
}

/// Writes `bytes` to `path` whole or not at all, mode 0600: a temporary file beside it, synced,
/// renamed over it, and the directory synced.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
