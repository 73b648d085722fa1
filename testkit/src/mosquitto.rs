//! A Mosquitto broker of the test's own, on a free port, with persistence in a temp directory.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::port::{free_port, wait_for_listener};
use crate::process::{effective_uid, find_binary, ChildGuard};
use crate::tls::TlsFiles;
use crate::{Result, ServiceError};

const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Renders a whole listener and security configuration for the port the broker will use.
type RenderConfig = Box<dyn Fn(u16) -> Result<String>>;

/// How a test wants its broker.
#[derive(Default)]
pub struct MosquittoBuilder {
    tls: Option<TlsFiles>,
    require_client_cert: bool,
    users: Vec<(String, String)>,
    acl: Option<String>,
    max_queued_messages: Option<u32>,
    config: Option<RenderConfig>,
}

impl MosquittoBuilder {
    /// Serve TLS only, with the given server certificate and CA.
    pub fn tls(mut self, files: TlsFiles) -> Self {
        self.tls = Some(files);
        self
    }

    /// With TLS: refuse clients without a certificate signed by the CA (mTLS).
    pub fn require_client_cert(mut self) -> Self {
        self.require_client_cert = true;
        self
    }

    /// Refuse anonymous clients; accept this user (call again for more).
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.to_owned(), password.to_owned()));
        self
    }

    /// A Mosquitto ACL file's text, e.g. `user g1\ntopic readwrite fieldlink/v1/g1/#`.
    pub fn acl(mut self, text: &str) -> Self {
        self.acl = Some(text.to_owned());
        self
    }

    /// Messages the broker queues for an offline persistent client (Mosquitto's default is
    /// 1,000; the tests' default is 1,000,000 so an outage test measures our code, not this cap).
    pub fn max_queued_messages(mut self, n: u32) -> Self {
        self.max_queued_messages = Some(n);
        self
    }

    /// Runs the broker on a configuration the test writes itself (a shipped example made
    /// runnable with [`adapt_config`]), instead of one built from the settings above, which are
    /// then ignored. `render(port)` returns everything but persistence and logging, which the
    /// testkit adds in its own directory (so the text must not set `persistence`,
    /// `persistence_location` or `log_dest`); it must open a listener on `port` at 127.0.0.1.
    pub fn config(mut self, render: impl Fn(u16) -> Result<String> + 'static) -> Self {
        self.config = Some(Box::new(render));
        self
    }

    pub fn start(self) -> Result<Mosquitto> {
        let binary = find_binary("mosquitto", &["/usr/sbin"], "mosquitto")?;
        let dir = tempfile::Builder::new()
            .prefix("fieldlink-mosquitto-")
            .tempdir()?;
        let mut broker = Mosquitto {
            binary,
            conf: dir.path().join("mosquitto.conf"),
            port: 0,
            tls: self.tls.is_some() && self.config.is_none(),
            child: None,
            dir,
        };
        let mut last_err = None;
        // The free port can be taken between our probe and the broker's bind: try a few.
        for _ in 0..5 {
            broker.port = free_port();
            self.write_config(broker.dir.path(), broker.port)?;
            match broker.start_process() {
                Ok(()) => return Ok(broker),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| ServiceError("mosquitto did not start".into())))
    }

    fn write_config(&self, dir: &Path, port: u16) -> Result<()> {
        let mut conf = String::new();
        let _ = writeln!(conf, "persistence true");
        let _ = writeln!(conf, "persistence_location {}/", dir.display());
        let _ = writeln!(conf, "autosave_interval 1");
        // As the shipped example does: small packets (commands, acknowledgements) leave at once
        // instead of waiting for the client's delayed ACK of the previous one.
        let _ = writeln!(conf, "set_tcp_nodelay true");
        let _ = writeln!(conf, "log_dest file {}/mosquitto.log", dir.display());
        let _ = writeln!(
            conf,
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information"
        );
        if effective_uid() == 0 {
            // Run as root, Mosquitto switches to the `mosquitto` user, which cannot write the
            // test's temp directory.
            let _ = writeln!(conf, "user root");
        }
        if let Some(render) = &self.config {
            conf.push_str(&render(port)?);
            conf.push('\n');
            std::fs::write(dir.join("mosquitto.conf"), conf)?;
            return Ok(());
        }
        let _ = writeln!(
            conf,
            "max_queued_messages {}",
            self.max_queued_messages.unwrap_or(1_000_000)
        );
        let _ = writeln!(conf, "max_queued_bytes 0");
        let _ = writeln!(conf, "listener {port} 127.0.0.1");
        if self.users.is_empty() {
            let _ = writeln!(conf, "allow_anonymous true");
        } else {
            let passwd = dir.join("passwd");
            let users: Vec<(&str, &str)> = self
                .users
                .iter()
                .map(|(u, p)| (u.as_str(), p.as_str()))
                .collect();
            password_file(&passwd, &users)?;
            let _ = writeln!(conf, "allow_anonymous false");
            let _ = writeln!(conf, "password_file {}", passwd.display());
        }
        if let Some(acl) = &self.acl {
            let path = dir.join("acl");
            std::fs::write(&path, acl)?;
            let _ = writeln!(conf, "acl_file {}", path.display());
        }
        if let Some(tls) = &self.tls {
            let _ = writeln!(conf, "cafile {}", tls.ca_cert.display());
            let _ = writeln!(conf, "certfile {}", tls.server_cert.display());
            let _ = writeln!(conf, "keyfile {}", tls.server_key.display());
            if self.require_client_cert {
                let _ = writeln!(conf, "require_certificate true");
            }
        }
        std::fs::write(dir.join("mosquitto.conf"), conf)?;
        Ok(())
    }
}

/// A shipped Mosquitto configuration made runnable by a test: the n-th `listener` line listens
/// on `ports[n]` at 127.0.0.1, and each directive named in `files` gets the test's path instead
/// of its own: a directive listed k times must appear exactly k times (once per listener of a
/// configuration with `per_listener_settings true`), its i-th appearance taking the i-th path
/// listed for it. A listener or directive without its entry, or the other way round, is an
/// error, and so is any other line that names a path, so the configuration under test is the
/// shipped one, relocated.
pub fn adapt_config(text: &str, ports: &[u16], files: &[(&str, &Path)]) -> Result<String> {
    let mut out = String::new();
    let mut listeners = 0usize;
    let mut used: Vec<bool> = vec![false; files.len()];
    for line in text.lines() {
        let directive = line.split_whitespace().next().unwrap_or("");
        let replacement = if directive == "listener" {
            let port = ports.get(listeners).ok_or_else(|| {
                ServiceError(format!(
                    "listener {} has no port (the test gave {})",
                    listeners + 1,
                    ports.len()
                ))
            })?;
            listeners += 1;
            Some(format!("listener {port} 127.0.0.1"))
        } else if files.iter().any(|(d, _)| *d == directive) {
            let next = files
                .iter()
                .enumerate()
                .find(|(i, (d, _))| *d == directive && !used[*i])
                .map(|(i, _)| i)
                .ok_or_else(|| {
                    ServiceError(format!(
                        "`{directive}` appears more often than the test relocates it"
                    ))
                })?;
            used[next] = true;
            Some(format!("{directive} {}", files[next].1.display()))
        } else {
            None
        };
        match replacement {
            Some(r) => out.push_str(&r),
            None if !line.starts_with('#') && line.contains('/') => {
                return Err(ServiceError(format!(
                    "{line:?} names a path that the test does not relocate"
                )));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    if listeners != ports.len() {
        return Err(ServiceError(format!(
            "the configuration has {listeners} listeners, the test gave {} ports",
            ports.len()
        )));
    }
    if let Some(i) = used.iter().position(|u| !u) {
        return Err(ServiceError(format!(
            "the configuration has fewer `{}` lines than the test relocates",
            files[i].0
        )));
    }
    Ok(out)
}

/// Mosquitto on the shipped two-listener configuration (`docs/examples/mosquitto/fieldlink.conf`
/// and its `acl`), relocated by [`adapt_config`]: the gateways' users on the first listener
/// ([`Mosquitto::port`]), the cloud's on the second ([`ShippedBroker::cloud_port`]), both with
/// TLS from `ca` and `server`, password files written into `dir`.
pub struct ShippedBroker {
    pub broker: Mosquitto,
    pub cloud_port: u16,
}

impl ShippedBroker {
    pub fn start(
        dir: &Path,
        ca: &Path,
        server: &TlsFiles,
        gateways: &[(&str, &str)],
        cloud: (&str, &str),
    ) -> Result<ShippedBroker> {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/mosquitto");
        let passwd = dir.join("passwd");
        password_file(&passwd, gateways)?;
        let cloud_passwd = dir.join("cloud-passwd");
        password_file(&cloud_passwd, &[cloud])?;
        let acl = examples.join("acl");
        let mut files = Vec::new();
        for pw in [passwd, cloud_passwd] {
            files.extend([
                ("cafile", ca.to_path_buf()),
                ("certfile", server.server_cert.clone()),
                ("keyfile", server.server_key.clone()),
                ("password_file", pw),
                ("acl_file", acl.clone()),
            ]);
        }
        let conf = std::fs::read_to_string(examples.join("fieldlink.conf"))?;
        let cloud_port = free_port();
        let broker = Mosquitto::builder()
            .config(move |port| {
                let files: Vec<(&str, &Path)> =
                    files.iter().map(|(d, p)| (*d, p.as_path())).collect();
                adapt_config(&conf, &[port, cloud_port], &files)
            })
            .start()?;
        Ok(ShippedBroker { broker, cloud_port })
    }
}

/// Writes a Mosquitto password file holding `users` (name, password), hashed by
/// `mosquitto_passwd` as an operator would.
pub fn password_file(path: &Path, users: &[(&str, &str)]) -> Result<()> {
    std::fs::write(path, "")?;
    let tool = find_binary("mosquitto_passwd", &["/usr/bin"], "mosquitto")?;
    for (user, password) in users {
        let status = Command::new(&tool)
            .arg("-b")
            .arg(path)
            .arg(user)
            .arg(password)
            .status()?;
        if !status.success() {
            return Err(ServiceError(format!("mosquitto_passwd failed for {user}")));
        }
    }
    Ok(())
}

/// A running Mosquitto broker; stopped (cleanly) on drop.
pub struct Mosquitto {
    binary: PathBuf,
    conf: PathBuf,
    port: u16,
    tls: bool,
    child: Option<ChildGuard>,
    dir: TempDir,
}

impl Mosquitto {
    /// A plain broker: anonymous access, no TLS.
    pub fn start() -> Result<Mosquitto> {
        MosquittoBuilder::default().start()
    }

    pub fn builder() -> MosquittoBuilder {
        MosquittoBuilder::default()
    }

    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:PORT`, or `mqtts://…` when serving TLS (always `mqtt://` for a
    /// configuration the test wrote with [`MosquittoBuilder::config`]).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The broker's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.exited().is_none())
    }

    /// Stops the broker cleanly (SIGTERM); its persistent sessions and queued messages are
    /// saved and come back with [`Mosquitto::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.stop(Duration::from_secs(10));
        }
    }

    /// Kills the broker with SIGKILL; what it had not saved is lost, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill();
        }
    }

    /// Starts the broker again on the same port with the same persistence directory.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.start_process()
    }

    fn start_process(&mut self) -> Result<()> {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = ChildGuard::spawn("mosquitto", &mut cmd, Signal::SIGTERM)?;
        if wait_for_listener(self.port, START_TIMEOUT) && child.exited().is_none() {
            self.child = Some(child);
            return Ok(());
        }
        child.kill();
        Err(ServiceError(format!(
            "mosquitto did not listen on port {} within {START_TIMEOUT:?}; its log:\n{}",
            self.port,
            self.log()
        )))
    }

    /// The broker process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.pid())
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapt_config_relocates_the_listener_and_named_files_and_nothing_else() {
        let text = "# a comment may name /etc/x\nallow_anonymous false\nlistener 8883\n\
                    acl_file /etc/mosquitto/acl\nrequire_certificate true\n";
        let acl = Path::new("/tmp/t/acl");
        let out = adapt_config(text, &[4242], &[("acl_file", acl)]).unwrap();
        assert_eq!(
            out,
            "# a comment may name /etc/x\nallow_anonymous false\nlistener 4242 127.0.0.1\n\
             acl_file /tmp/t/acl\nrequire_certificate true\n"
        );
        // A path the test would not relocate, a missing directive, a repeated one, a listener
        // without a port, a port without a listener.
        let stray = format!("{text}cafile /etc/ca.pem\n");
        assert!(adapt_config(&stray, &[1], &[("acl_file", acl)]).is_err());
        assert!(adapt_config(text, &[1], &[("acl_file", acl), ("keyfile", acl)]).is_err());
        let twice = format!("{text}acl_file /etc/other\n");
        assert!(adapt_config(&twice, &[1], &[("acl_file", acl)]).is_err());
        assert!(adapt_config(
            &format!("{text}listener 1884\n"),
            &[1],
            &[("acl_file", acl)]
        )
        .is_err());
        assert!(adapt_config(text, &[1, 2], &[("acl_file", acl)]).is_err());
    }

    #[test]
    fn adapt_config_gives_each_listener_its_port_and_each_appearance_its_path() {
        let text = "per_listener_settings true\nlistener 8883\npassword_file /etc/gw\n\
                    listener 8884\npassword_file /etc/cloud\n";
        let (gw, cloud) = (Path::new("/t/gw"), Path::new("/t/cloud"));
        let out = adapt_config(
            text,
            &[10, 20],
            &[("password_file", gw), ("password_file", cloud)],
        )
        .unwrap();
        assert_eq!(
            out,
            "per_listener_settings true\nlistener 10 127.0.0.1\npassword_file /t/gw\n\
             listener 20 127.0.0.1\npassword_file /t/cloud\n"
        );
    }
}
