//! A machine-wide lock so two benchmark runs never overlap.

use std::fs::{File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{io_ctx, BenchError};

/// The default lock file, shared by every benchmark run on the machine.
pub const DEFAULT_LOCK: &str = "/tmp/ringfast-bench.lock";

/// Held while the run lasts; the kernel releases it when the process exits, however it exits.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock without waiting: fails with [`BenchError::Locked`] when another run holds it.
    pub fn acquire(path: &Path) -> Result<RunLock, BenchError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io_ctx(format!("opening the lock file {}", path.display())))?;
        // SAFETY: flock on a descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(BenchError::Locked(path.to_path_buf()));
        }
        Ok(RunLock {
            _file: file,
            path: path.to_path_buf(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_drops() {
        let path =
            std::env::temp_dir().join(format!("ringfast-bench-lock-test-{}", std::process::id()));
        let first = RunLock::acquire(&path).unwrap();
        assert!(matches!(
            RunLock::acquire(&path),
            Err(BenchError::Locked(_))
        ));
        drop(first);
        let again = RunLock::acquire(&path).unwrap();
        assert_eq!(again.path(), path.as_path());
        drop(again);
        let _ = std::fs::remove_file(&path);
    }
}
