//! Runs the `fieldlink-demo` binary as a child process, as a person would from a terminal.
//!
//! Shared by several test binaries, each of which uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long a test waits for something that should happen within seconds, before failing
/// instead of hanging. Generous: the machine is shared and debug builds are slow.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// A running demo.
pub struct Demo {
    child: Child,
    data_dir: PathBuf,
    banner: String,
    dashboard: String,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

/// How a demo ended.
pub struct Stopped {
    pub success: bool,
    /// Everything printed on stdout and stderr.
    pub output: String,
}

impl Demo {
    /// Starts the demo with its data in `data_dir` and HTTP on a free port; returns once it
    /// printed that everything runs.
    pub fn start(data_dir: &Path) -> Demo {
        Demo::start_with(data_dir, &[])
    }

    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fieldlink-demo"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--http", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, as a terminal's foreground job: `interrupt` signals the
            // whole group, as Ctrl-C does.
            .process_group(0)
            .spawn()
            .expect("fieldlink-demo starts");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let mut demo = Demo {
            child,
            data_dir: data_dir.to_path_buf(),
            banner: String::new(),
            dashboard: String::new(),
            lines,
            stderr: Some(stderr),
        };
        loop {
            match demo.lines.recv_timeout(PATIENCE) {
                Ok(line) => {
                    if let Some(url) = line.trim().strip_prefix("dashboard") {
                        demo.dashboard = url.trim().to_string();
                    }
                    let done = line.starts_with("Press Ctrl-C");
                    demo.banner.push_str(&line);
                    demo.banner.push('\n');
                    if done {
                        break;
                    }
                }
                Err(_) => {
                    let _ = demo.child.kill();
                    let _ = demo.child.wait();
                    let stderr = demo.take_stderr();
                    panic!(
                        "the demo did not report that it runs; stdout:\n{}\nstderr:\n{stderr}",
                        demo.banner
                    );
                }
            }
        }
        assert!(
            demo.dashboard.starts_with("http://127.0.0.1:"),
            "no dashboard URL in:\n{}",
            demo.banner
        );
        demo
    }

    fn take_stderr(&mut self) -> String {
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }

    /// What the demo printed when it started.
    pub fn banner(&self) -> &str {
        &self.banner
    }

    /// The dashboard URL it printed, e.g. `http://127.0.0.1:40123/`.
    pub fn dashboard(&self) -> &str {
        &self.dashboard
    }

    /// Stops the `socat` child that carries the weather station's serial line (the cable
    /// pulled); returns whether there was one.
    pub fn cut_serial_line(&self) -> bool {
        let parent = self.child.id().to_string();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return false;
        };
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid …; comm may hold spaces, so split after the last ')'.
            let Some((head, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let ppid = rest.split_whitespace().nth(1);
            if head.ends_with("(socat") && ppid == Some(parent.as_str()) {
                return kill(Pid::from_raw(pid), Signal::SIGTERM).is_ok();
            }
        }
        false
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Sends SIGINT to the demo's process group, as Ctrl-C in a terminal does, and waits for
    /// the process to exit.
    pub fn interrupt(mut self) -> Stopped {
        kill(Pid::from_raw(-(self.child.id() as i32)), Signal::SIGINT).unwrap();
        let deadline = std::time::Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the demo did not exit after SIGINT");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut output = std::mem::take(&mut self.banner);
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            output.push_str(&line);
            output.push('\n');
        }
        output.push_str(&self.take_stderr());
        Stopped {
            success: status.success(),
            output,
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `GET path` on the demo's HTTP server with a bearer token; returns the status and the body.
pub fn http_get(base: &str, path: &str, token: &str) -> (u16, String) {
    use std::io::Write;
    let authority = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut stream = std::net::TcpStream::connect(&authority).expect("HTTP connects");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    )
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

impl Demo {
    /// The operator token the demo printed.
    pub fn token(&self) -> String {
        self.banner
            .lines()
            .find_map(|l| l.trim().strip_prefix("token"))
            .map(|t| t.trim().to_string())
            .expect("the demo prints a token")
    }
}
