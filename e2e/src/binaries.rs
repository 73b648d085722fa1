//! This workspace's binaries for tests that run them as child processes.
//!
//! Cargo hands a package's own binaries to its tests (`CARGO_BIN_EXE_*`), not another
//! package's, so a binary is looked up in the profile directory this test executable was
//! built into (`target/<profile>/deps/..`) after `cargo build -p <package>` has brought it up
//! to date there (same target directory, same profile; once per process and binary). An
//! environment variable naming a file (`FIELDLINK_AGENT_BIN`, `FIELDLINK_CLOUD_BIN`) runs that
//! file instead and builds nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// The binary `name` of package `name`: `$override_var`, or this workspace's, built when stale.
pub fn workspace_binary(name: &'static str, override_var: &str) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<&'static str, Result<PathBuf, String>>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let entry = built
        .get_or_insert_with(HashMap::new)
        .entry(name)
        .or_insert_with(|| locate_or_build(name, override_var));
    match entry {
        Ok(path) => path.clone(),
        Err(why) => panic!("the {name} binary: {why}"),
    }
}

fn locate_or_build(name: &str, override_var: &str) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(override_var) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{override_var}={} is not a file", path.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    // target/<profile>/deps/<this executable>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("{} is not under target/<profile>/deps", exe.display()))?;
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("{} has no parent", profile_dir.display()))?;
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{} has no name", profile_dir.display()))?;
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut cmd = Command::new(cargo);
    // `--locked`: the lock file the outer build used; this build never rewrites it.
    cmd.args(["build", "--quiet", "--locked", "-p", name, "--bin", name])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir);
    // `cargo bench` builds into target/release with the bench profile, which inherits release.
    if profile == "release" {
        cmd.arg("--release");
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo build -p {name} ({profile}) failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let path = profile_dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("cargo built, but {} is missing", path.display()))
    }
}
