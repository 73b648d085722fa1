//! Records the build date: the agent treats an earlier wall clock as not yet set (no RTC).
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let ms = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => s.trim().parse::<i64>().map(|s| s * 1000).unwrap_or(0),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    };
    println!("cargo:rustc-env=FIELDLINK_BUILD_MS={ms}");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-changed=build.rs");
}
