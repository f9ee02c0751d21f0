//! Helpers to run the real executable.

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The `portcullis` binary with every `PORTCULLIS_*` variable cleared and the
/// database and master key inside `dir`.
pub(crate) fn cli(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PORTCULLIS_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c.current_dir(dir)
        .env(
            "PORTCULLIS_DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.join("p.db").display()),
        )
        .env("PORTCULLIS_KEYS_MASTER_KEY_FILE", dir.join("master.key"))
        .stdin(Stdio::null());
    c
}

/// Runs a command and returns its output.
pub(crate) fn run(c: &mut Command) -> Output {
    c.output().expect("run portcullis")
}

/// Parses stdout as JSON, asserting success.
pub(crate) fn json_ok(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON document")
}

/// A free loopback port (bound then released).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}
