//! Small durable state beside the journal: the boot epoch.
//!
//! The boot epoch numbers agent starts; with a batch's `seq` it orders everything a gateway ever
//! sent. It is read, incremented and written back (temp file, fsync, rename) before anything is
//! published, so a crash at any point leaves either the old or the new number, and the number
//! used by a run is never reused by a later one.

use std::fs;
use std::io::Write;
use std::path::Path;

/// Increments and returns the boot epoch stored in `dir/boot_epoch` (1 on first start).
pub fn next_boot_epoch(dir: &Path) -> std::io::Result<u64> {
    fs::create_dir_all(dir)?;
    let path = dir.join("boot_epoch");
    let previous = match fs::read_to_string(&path) {
        Ok(text) => text.trim().parse::<u64>().unwrap_or(0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e),
    };
    let next = previous + 1;
    let tmp = dir.join("boot_epoch.tmp");
    let mut f = fs::File::create(&tmp)?;
    writeln!(f, "{next}")?;
    f.sync_all()?;
    fs::rename(&tmp, &path)?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_increase_across_calls() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(next_boot_epoch(dir.path()).unwrap(), 1);
        assert_eq!(next_boot_epoch(dir.path()).unwrap(), 2);
        fs::write(dir.path().join("boot_epoch"), "garbage").unwrap();
        assert_eq!(next_boot_epoch(dir.path()).unwrap(), 1);
    }
}
