//! The dashboard in a real browser: Debian's Chromium, headless, driven by playwright-core
//! (`demo/browser/dashboard.mjs`) against a running demo. Needs `/usr/bin/chromium` (apt
//! package `chromium`), `node`, and `npm ci` run in `demo/browser`; the test fails with what
//! is missing rather than skipping. The screenshot goes to `test-artifacts/dashboard.png` at
//! the workspace root.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use support::Demo;

const CHROMIUM: &str = "/usr/bin/chromium";

#[test]
fn dashboard_signs_in_shows_device_health_and_live_values_executes_a_write_and_acknowledges_its_alert(
) {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: apt-get install chromium"
    );
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: (cd demo/browser && npm ci)"
    );
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);

    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(&dir.path().join("data"));
    assert!(
        demo.banner().contains("weather station on"),
        "the weather station needs socat (apt-get install socat):\n{}",
        demo.banner()
    );
    let mut node = Command::new("node")
        .arg(browser_dir.join("dashboard.mjs"))
        .current_dir(&browser_dir)
        .env("DASHBOARD_URL", demo.dashboard())
        .env("TOKEN", demo.token())
        .env("SCREENSHOT", &screenshot)
        .env("CHROMIUM", CHROMIUM)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    let mut stdout = String::new();
    let mut cut = false;
    for line in BufReader::new(node.stdout.take().unwrap()).lines() {
        let line = line.expect("node's output");
        if line == "cut the weather line" {
            cut = demo.cut_serial_line();
        }
        stdout.push_str(&line);
        stdout.push('\n');
    }
    let mut stderr = String::new();
    node.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = node.wait().unwrap();
    let stopped = demo.interrupt();
    assert!(
        status.success(),
        "browser test failed:\n{stdout}\n{stderr}\ndemo output:\n{}",
        stopped.output
    );
    assert!(stdout.contains("energy-meter badge: online"), "{stdout}");
    assert!(cut, "no socat child to stop:\n{stdout}");
    assert!(stdout.contains("weather badge: offline"), "{stdout}");
    assert!(stdout.contains("executed"), "{stdout}");
    assert!(stdout.contains("acknowledged"), "{stdout}");
    // The live updates came over a WebSocket whose URL holds no token (it travels as the
    // `fieldlink.bearer.<token>` subprotocol).
    assert!(stdout.contains("websocket: ws://"), "{stdout}");
    assert!(!stdout.contains("token="), "{stdout}");
    assert!(
        screenshot.is_file(),
        "no screenshot at {}",
        screenshot.display()
    );
    assert!(stopped.success, "{}", stopped.output);
}
