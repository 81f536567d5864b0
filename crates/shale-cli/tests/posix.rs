//! POSIX conformance of a mounted live volume: runs the `pjdfstest` suite
//! (crates.io) against it and fails on any failed case. Needs root,
//! /dev/fuse, `pjdfstest` on PATH and the users `nobody` and `tests`
//! (`.ci/run` sets all of these up); elsewhere the test says what is
//! missing and stops.

use std::path::Path;
use std::process::Command;

mod common;
use common::Env;

const CONFIG: &str = r#"
[features]
utime_now = {}
utimensat = {}
rename_ctime = {}
posix_fallocate = {}

[settings]
naptime = 0.001
allow_remount = false

[dummy_auth]
entries = [["nobody", "nogroup"], ["tests", "tests"]]
"#;

fn missing() -> Option<&'static str> {
    if !Path::new("/dev/fuse").exists() || unsafe { libc::geteuid() } != 0 {
        return Some("needs /dev/fuse and root");
    }
    if Command::new("pjdfstest").arg("--version").output().is_err() {
        return Some("needs pjdfstest on PATH (cargo install pjdfstest)");
    }
    let users = Command::new("id").arg("tests").output();
    if !users.is_ok_and(|o| o.status.success()) {
        return Some("needs a user and group named `tests`");
    }
    None
}

#[test]
fn pjdfstest_passes_on_a_live_volume() {
    if let Some(why) = missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let env = Env::new();
    env.ok(&["volume", "create", "posix"]);
    std::fs::create_dir_all(env.path("mnt")).unwrap();
    std::fs::create_dir_all(env.path("secondary")).unwrap();
    std::fs::write(env.path("pjdfstest.toml"), CONFIG).unwrap();
    let m = env.s("mnt");
    env.ok(&["mount", &m, "--volume", "posix"]);
    std::fs::create_dir(env.path("mnt/run")).unwrap();
    let out = Command::new("pjdfstest")
        .arg("-c")
        .arg(env.path("pjdfstest.toml"))
        .arg("-p")
        .arg(env.path("mnt/run"))
        .arg("-s")
        .arg(env.path("secondary"))
        .current_dir(env.path("mnt/run"))
        .output()
        .unwrap();
    let _ = Command::new("fusermount3").arg("-u").arg(&m).output();
    let text = String::from_utf8_lossy(&out.stdout);
    let summary = text
        .lines()
        .find(|l| l.starts_with("Summary:"))
        .unwrap_or("no summary");
    eprintln!("pjdfstest: {summary}");
    let failed: Vec<&str> = text.lines().filter(|l| l.ends_with("FAILED")).collect();
    assert!(
        out.status.success() && failed.is_empty(),
        "pjdfstest: {summary}\n{}\n{}",
        failed.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
    env.ok(&["verify", "--read-data"]);
}
