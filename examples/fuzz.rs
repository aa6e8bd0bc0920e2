//! Long fuzz runs on the stable toolchain (issue 11 §3): the seeded mutation loop of
//! `tests/integration/fuzz.rs` for one target and a number of executions.
//!
//! ```sh
//! cargo run --release --example fuzz -- TARGET N [SEED]   # TARGET: intake, token, render, pdf-append, seal-verify, form, all
//! ```
//!
//! Prints executions, time, the slowest case (by the thread's CPU time, and by the wall clock)
//! and the panics; exits 1 on a panic, a wrong result or a case over 100 ms of CPU time, and
//! prints the first failing input (hex) to replay.

#[path = "../tests/integration/fuzz.rs"]
mod fuzz;

use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(target), Some(n)) = (args.first(), args.get(1).and_then(|n| n.parse::<u64>().ok())) else {
        eprintln!("usage: fuzz TARGET N [SEED]   (targets: {}, all)", fuzz::TARGETS.join(", "));
        return ExitCode::from(2);
    };
    let seed = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    // panics are counted and reported by the loop; the default hook would print each one
    std::panic::set_hook(Box::new(|_| {}));
    let targets: Vec<&str> = if target == "all" { fuzz::TARGETS.to_vec() } else { vec![target.as_str()] };
    let mut failed = false;
    for t in targets {
        println!("{t}: seed {seed}, {n} executions");
        let out = fuzz::run(t, n, seed);
        println!("{}", out.line());
        if let Some((input, why)) = &out.first_failure {
            println!("  first failure: {why}\n  input ({} bytes): {}", input.len(), hex::encode(input));
        }
        failed |= out.panics > 0 || out.wrong > 0 || out.slowest > Duration::from_millis(100);
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
