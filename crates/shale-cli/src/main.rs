//! The `shale` program: everything is in the library (`lib.rs`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = shale_cli::run_cli(std::env::args_os().collect());
    ExitCode::from(code.clamp(0, 255) as u8)
}
