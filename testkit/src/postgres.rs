//! A PostgreSQL server of the test's own: `initdb` into a temp directory and `postgres` on a
//! free port, from Debian's `postgresql` package (`/usr/lib/postgresql/*/bin`).
//!
//! Durability settings are relaxed (`fsync=off`): the tests kill clients and the cloud, not the
//! machine, and a clean stop still writes everything.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::port::free_port;
use crate::process::{effective_uid, find_binary, ChildGuard};
use crate::{Result, ServiceError};

const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running PostgreSQL server; stopped (fast shutdown) on drop.
pub struct Postgres {
    bin: PathBuf,
    port: u16,
    /// Run as this uid/gid: PostgreSQL refuses to run as root.
    run_as: Option<(u32, u32)>,
    child: Option<ChildGuard>,
    dir: TempDir,
}

impl Postgres {
    pub fn start() -> Result<Postgres> {
        let bin = postgres_bin_dir()?;
        let dir = tempfile::Builder::new()
            .prefix("fieldlink-postgres-")
            .tempdir()?;
        let run_as = if effective_uid() == 0 {
            let ids = user_ids("postgres").ok_or_else(|| {
                ServiceError(
                    "running as root and there is no `postgres` user to run PostgreSQL as; \
                     install Debian's `postgresql` package"
                        .into(),
                )
            })?;
            std::os::unix::fs::chown(dir.path(), Some(ids.0), Some(ids.1))?;
            Some(ids)
        } else {
            None
        };
        let data = dir.path().join("data");
        let out = as_user(Command::new(bin.join("initdb")), run_as)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()?;
        if !out.status.success() {
            return Err(ServiceError(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let mut server = Postgres {
            bin,
            port: 0,
            run_as,
            child: None,
            dir,
        };
        let mut last_err = None;
        for _ in 0..5 {
            server.port = free_port();
            match server.start_process() {
                Ok(()) => return Ok(server),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| ServiceError("postgres did not start".into())))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A libpq URL for the `postgres` database as the `postgres` superuser.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    pub fn url_for(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    /// Creates a database and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String> {
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))?;
        Ok(self.url_for(name))
    }

    /// Runs SQL with `psql` and returns its unaligned, tuples-only output.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", "postgres", "-d", database, "-c", sql])
            .output()?;
        if !out.status.success() {
            return Err(ServiceError(format!(
                "psql failed on {sql:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Stops the server cleanly (fast shutdown).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.stop(Duration::from_secs(15));
        }
    }

    /// Kills the server with SIGKILL; it recovers from its WAL on restart.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill();
        }
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.start_process()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    fn start_process(&mut self) -> Result<()> {
        let log = std::fs::File::create(self.dir.path().join("postgres.log"))?;
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(self.dir.path().join("postgres.log"), Some(uid), Some(gid))?;
        }
        let mut cmd = as_user(Command::new(self.bin.join("postgres")), self.run_as);
        cmd.arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.dir.path())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=200", "-c", "shared_buffers=128MB"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions, then exit.
        let mut child = ChildGuard::spawn("postgres", &mut cmd, Signal::SIGINT)?;
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if child.exited().is_some() {
                break;
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p"])
                .arg(self.port.to_string())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                self.child = Some(child);
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill();
        Err(ServiceError(format!(
            "postgres did not become ready on port {}; its log:\n{}",
            self.port,
            self.log()
        )))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn as_user(mut cmd: Command, ids: Option<(u32, u32)>) -> Command {
    if let Some((uid, gid)) = ids {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// The newest `/usr/lib/postgresql/N/bin` that has `initdb`, or PATH.
fn postgres_bin_dir() -> Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let initdb = find_binary("initdb", &[], "postgresql")?;
    Ok(initdb
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/usr/bin")))
}

/// `(uid, gid)` of a user from /etc/passwd.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next()? == name).then_some(())?;
        let _password = f.next()?;
        Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
    })
}
