//! Many files made durable with one flush: [`sync_filesystem`] (syncfs(2)) instead of an fsync
//! per file. Its one user is `render --batch` (`cli::sync_staged`): the staged PDFs are synced at
//! once before any is moved into place. (The mail sender's `.eml` batches were measured with it
//! and keep an fsync per file: see `mail::write_eml_all`.)

/// Flushes the whole filesystem holding `file` (any open file or directory on it) to disk:
/// every file's data and metadata written before the call, renames included. `Ok(true)` once
/// it is done; `Ok(false)` where the caller must sync each file and directory itself: not
/// Linux, a kernel older than 5.8 (whose syncfs answers success even when write-back failed),
/// or the call missing or refused (`ENOSYS`, `EPERM` under some sandboxes).
///
/// Open `file` **before** writing the files it is to cover: syncfs reports the write-back
/// errors of the filesystem since the descriptor was opened, so a descriptor opened afterwards
/// could miss an error another process's sync had already collected.
pub(crate) fn sync_filesystem(file: &std::fs::File) -> std::io::Result<bool> {
    #[cfg(target_os = "linux")]
    if syncfs_reports_errors() {
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

/// Linux 5.8 and later: syncfs returns the filesystem's write-back errors (before, only its
/// own). Read once from `/proc/sys/kernel/osrelease`; `false` when it cannot be read.
#[cfg(target_os = "linux")]
fn syncfs_reports_errors() -> bool {
    static KNOWN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *KNOWN.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/osrelease").is_ok_and(|release| at_least_5_8(&release))
    })
}

/// Whether a kernel release string (`6.1.0-18-amd64`, `5.4.0`) is 5.8 or later.
#[cfg(target_os = "linux")]
fn at_least_5_8(release: &str) -> bool {
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (5, 8)
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[test]
    fn syncfs_is_trusted_from_linux_5_8_on() {
        for (release, trusted) in [
            ("6.1.0-18-amd64", true),
            ("5.8.0", true),
            ("5.10.209", true),
            ("5.4.0-150-generic", false),
            ("4.18.0-553.el8", false),
            ("", false),
            ("garbage", false),
        ] {
            assert_eq!(super::at_least_5_8(release), trusted, "{release:?}");
        }
    }

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
