//! Prints the last `cargo bench -p redress-bench` run as markdown tables, one per group.
//!
//! ```text
//! cargo run -p redress-bench --release --bin bench-report [-- <criterion dir>]
//! ```
//! The directory defaults to the workspace's `target/criterion`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/criterion"));
    match redress_bench::report::load(&dir) {
        Ok(entries) if !entries.is_empty() => {
            print!("{}", redress_bench::report::render(&entries));
            ExitCode::SUCCESS
        }
        Ok(_) => {
            eprintln!("no criterion results under {}", dir.display());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("cannot read {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}
