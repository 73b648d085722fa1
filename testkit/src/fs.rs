//! Small and read-only file systems for tests of a full disk and of a journal that cannot be
//! written: a tmpfs of a chosen size mounted on a fresh temporary directory, which can be made
//! read-only, resized (room returns) and is unmounted on drop.
//!
//! Mounting needs root (or CAP_SYS_ADMIN). Where it is refused, [`SmallFs::mount`] says why and
//! the test decides: a plain directory made read-only with `chmod` stops anyone but root, which
//! [`ReadOnlyDir`] uses when the tmpfs is not available.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::process::effective_uid;
use crate::{Result, ServiceError};

/// A tmpfs mounted for one test.
pub struct SmallFs {
    dir: TempDir,
}

impl SmallFs {
    /// Mounts a tmpfs of `bytes` (rounded up to pages by the kernel) on a new directory.
    pub fn mount(bytes: u64) -> Result<SmallFs> {
        let dir = tempfile::Builder::new()
            .prefix("fieldlink-smallfs-")
            .tempdir()?;
        mount(
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={bytes},mode=0755"),
                "tmpfs",
            ],
            dir.path(),
        )?;
        Ok(SmallFs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Changes the size limit; growing it is room returning to a full disk.
    pub fn resize(&self, bytes: u64) -> Result<()> {
        mount(&["-o", &format!("remount,size={bytes}")], self.path())
    }

    /// Makes the file system read-only (or writable again) under whoever has files open on it.
    pub fn set_read_only(&self, read_only: bool) -> Result<()> {
        let mode = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        mount(&["-o", mode], self.path())
    }

    /// Bytes free, as `df` would say.
    pub fn free_bytes(&self) -> Result<u64> {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(self.path())
            .output()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| ServiceError(format!("df on {}: no answer", self.path().display())))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        // Lazily: a process the test failed to stop may still hold a file open.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn mount(args: &[&str], on: &Path) -> Result<()> {
    let out = Command::new("mount")
        .args(args)
        .arg(on)
        .output()
        .map_err(|e| ServiceError(format!("cannot run mount (package `mount`): {e}")))?;
    if !out.status.success() {
        return Err(ServiceError(format!(
            "mount {} {}: {}",
            args.join(" "),
            on.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// A directory this process cannot write to: a read-only tmpfs where mounting is allowed (it
/// stops root too), else a directory with its write bits removed (which stops everyone but
/// root). [`ReadOnlyDir::with`] says why when neither would stop this process.
pub enum ReadOnlyDir {
    Mounted(SmallFs),
    Chmod(TempDir),
}

impl ReadOnlyDir {
    /// A directory holding what `fill` writes into it, then made read-only.
    pub fn with(fill: impl FnOnce(&Path)) -> std::result::Result<ReadOnlyDir, String> {
        match SmallFs::mount(8 << 20) {
            Ok(fs) => {
                fill(fs.path());
                fs.set_read_only(true).map_err(|e| e.to_string())?;
                Ok(ReadOnlyDir::Mounted(fs))
            }
            Err(mount_refused) if effective_uid() == 0 => Err(format!(
                "running as root, where chmod does not stop writes, and mounting a read-only \
                 tmpfs was refused: {mount_refused}"
            )),
            Err(_) => {
                use std::os::unix::fs::PermissionsExt;
                let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                fill(dir.path());
                for entry in std::fs::read_dir(dir.path()).map_err(|e| e.to_string())? {
                    let path = entry.map_err(|e| e.to_string())?.path();
                    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444));
                }
                std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555))
                    .map_err(|e| e.to_string())?;
                Ok(ReadOnlyDir::Chmod(dir))
            }
        }
    }

    pub fn path(&self) -> PathBuf {
        match self {
            ReadOnlyDir::Mounted(fs) => fs.path().to_path_buf(),
            ReadOnlyDir::Chmod(dir) => dir.path().to_path_buf(),
        }
    }
}

impl Drop for ReadOnlyDir {
    fn drop(&mut self) {
        if let ReadOnlyDir::Chmod(dir) = self {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755));
        }
    }
}
