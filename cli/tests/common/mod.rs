//! What the command-line tests share.
#![allow(clippy::unwrap_used)]

use std::process::Command;

/// Runs the `redress` binary with `args`: its exit code, stdout and stderr.
pub(crate) fn redress(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_redress"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}
