//! A hang while a test server runs becomes a failure with evidence: every test server
//! ([`crate::app::TestApp`]) is registered here while it runs, and one watchdog thread checks
//! them every 10 s. A server that has run longer than `COUNTERSIGN_TEST_HANG_SECS` (default
//! 900: the slowest test takes about a minute) means the process is stuck (a deadlock leaves
//! every thread parked, and cargo test would wait for CI's limit). The watchdog then prints
//! which tests are running, the backtrace of every thread (through gdb, when it is installed:
//! `.ci/run` installs it) and aborts the process, so the run fails at once with what a
//! diagnosis needs.
//!
//! It only ever acts on a server older than the limit: no test waits on it, and a normal run
//! never sees it.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Servers running now: registration number → (test name, started).
type Running = Mutex<HashMap<u64, (String, Instant)>>;

/// The running servers; the first call starts the watchdog.
fn running() -> &'static Running {
    static RUNNING: OnceLock<Running> = OnceLock::new();
    RUNNING.get_or_init(|| {
        std::thread::Builder::new().name("test-watchdog".into()).spawn(watch).expect("watchdog thread");
        Mutex::new(HashMap::new())
    })
}

fn lock() -> std::sync::MutexGuard<'static, HashMap<u64, (String, Instant)>> {
    running().lock().unwrap_or_else(|p| p.into_inner())
}

/// Unregisters its server when dropped (the server stopped, or its test panicked).
pub struct Registration(u64);

impl Drop for Registration {
    fn drop(&mut self) {
        lock().remove(&self.0);
    }
}

/// Registers a server started by the calling test (named after its thread, as libtest names
/// it).
pub fn register() -> Registration {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = std::thread::current().name().unwrap_or("(unnamed)").to_string();
    lock().insert(id, (name, Instant::now()));
    Registration(id)
}

fn limit() -> Duration {
    let secs = std::env::var("COUNTERSIGN_TEST_HANG_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(900);
    Duration::from_secs(secs)
}

fn watch() {
    let limit = limit();
    loop {
        std::thread::sleep(Duration::from_secs(10));
        let running: Vec<(String, Duration)> = lock().values().map(|(n, t)| (n.clone(), t.elapsed())).collect();
        if running.iter().any(|(_, age)| *age > limit) {
            say(&format!(
                "\n=== test watchdog: a server has run longer than {}s; the process looks hung ===",
                limit.as_secs()
            ));
            for (name, age) in &running {
                say(&format!("  running: {name} (its server for {}s)", age.as_secs()));
            }
            backtraces();
            say("=== test watchdog: aborting ===");
            std::process::abort();
        }
    }
}

/// Straight to the process's stderr: `eprintln!` in a thread a test started is captured with
/// that test's output, which an abort never prints.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Every thread's backtrace, from gdb attached to this process.
fn backtraces() {
    // Lets gdb attach where Yama's ptrace scope allows only ancestors (harmless elsewhere).
    // SAFETY: prctl with PR_SET_PTRACER reads integers only, passed at the width it reads.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    unsafe {
        libc::prctl(
            libc::PR_SET_PTRACER,
            libc::PR_SET_PTRACER_ANY,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        );
    }
    let pid = std::process::id().to_string();
    // gdb writes straight to this process's own output (the test log): a pipe read by this
    // thread would fill while gdb holds every thread of the process stopped.
    let status = std::process::Command::new("gdb")
        .args(["-p", &pid, "-batch", "-nx", "-ex", "set pagination off", "-ex", "thread apply all bt 40"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .status();
    if let Err(e) = status {
        say(&format!("no backtraces: gdb could not run ({e}); install gdb to get them"));
    }
}
