//! The dashboard in a real browser: Debian's Chromium, headless, driven by playwright-core
//! (`demo/browser/dashboard.mjs`) against a running demo. Needs `/usr/bin/chromium` (apt
//! package `chromium`), `node`, and `npm ci` run in `demo/browser`; the test fails with what
//! is missing rather than skipping. The screenshot goes to `test-artifacts/dashboard.png` at
//! the workspace root.

mod support;

use std::path::Path;
use std::process::Command;

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
    let run = Command::new("node")
        .arg(browser_dir.join("dashboard.mjs"))
        .current_dir(&browser_dir)
        .env("DASHBOARD_URL", demo.dashboard())
        .env("TOKEN", demo.token())
        .env("SCREENSHOT", &screenshot)
        .env("CHROMIUM", CHROMIUM)
        .output()
        .expect("node runs");
    let stopped = demo.interrupt();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "browser test failed:\n{stdout}\n{stderr}\ndemo output:\n{}",
        stopped.output
    );
    assert!(stdout.contains("energy-meter badge: online"), "{stdout}");
    assert!(stdout.contains("executed"), "{stdout}");
    assert!(stdout.contains("acknowledged"), "{stdout}");
    assert!(
        screenshot.is_file(),
        "no screenshot at {}",
        screenshot.display()
    );
    assert!(stopped.success, "{}", stopped.output);
}
