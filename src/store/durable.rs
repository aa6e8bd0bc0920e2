//! Many files made durable with one flush: [`sync_filesystem`] (syncfs(2)) instead of an fsync
//! per file. Used where a batch of files is written at once and nothing is acknowledged until
//! all of them are on disk: `render --batch`'s staged PDFs, the mail sender's `.eml` copies.

/// Flushes the whole filesystem holding `file` (any open file or directory on it) to disk:
/// every file's data and metadata written before the call, renames included. `Ok(true)` once
/// it is done; `Ok(false)` where the call does not exist or is refused (not Linux, `ENOSYS`,
/// `EPERM` under some sandboxes): the caller then syncs each file and directory itself.
pub fn sync_filesystem(file: &std::fs::File) -> std::io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: syncfs only reads the descriptor, which `file` owns and keeps open for the
        // call.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::syncfs(file.as_raw_fd()) };
        if rc == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) {
            return Err(e);
        }
    }
    let _ = file;
    Ok(false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_filesystem_sync_of_a_healthy_directory_is_not_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("f"), b"x").expect("write");
        let d = std::fs::File::open(dir.path()).expect("open");
        // `false` only where the kernel has no syncfs or refuses it (some sandboxes): then the
        // callers' own fallback runs; an error is never the answer for a healthy filesystem.
        super::sync_filesystem(&d).expect("no error");
    }
}
