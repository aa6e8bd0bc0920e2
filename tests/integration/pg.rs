//! A throwaway PostgreSQL cluster for the tests: `initdb` in a temp directory (as the
//! `postgres` user when the tests run as root, as on CI), listening on 127.0.0.1 only on a free
//! port, its unix socket in the temp directory. Started once per test process; each test gets
//! its own database. A watchdog shell stops the cluster and removes its directory when the test
//! process is gone.
//!
//! `COUNTERSIGN_TEST_BACKEND=postgres` makes [`crate::app::spawn_app`] run every server on
//! PostgreSQL (one database per data directory, so a restarted server finds its data again);
//! `.ci/run` lists the tests about sled itself that it skips there, each with its reason.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

struct Cluster {
    port: u16,
    dir: PathBuf,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static BY_DIR: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();

/// True when the suite runs its servers on PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var("COUNTERSIGN_TEST_BACKEND").is_ok_and(|v| v == "postgres")
}

fn bin_dir() -> Result<PathBuf, String> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("PostgreSQL is not installed (/usr/lib/postgresql: {e}); apt-get install postgresql"))?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort();
    found.pop().ok_or_else(|| "no initdb under /usr/lib/postgresql/*/bin".to_string())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `sh -c script`, as `postgres` when running as root.
fn shell(script: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "sh", "-c", script]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }
}

fn start() -> Result<Cluster, String> {
    let bin = bin_dir()?;
    let dir = tempfile::Builder::new().prefix("countersign-pg-").tempdir().map_err(|e| e.to_string())?.keep();
    if is_root() {
        let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status().is_ok_and(|s| s.success());
        if !ok {
            return Err(format!("cannot give {} to the postgres user", dir.display()));
        }
    }
    let d = dir.display();
    let b = bin.display();
    let out = shell(&format!(
        "{b}/initdb -D {d}/data -U postgres -A trust -E UTF8 --locale=C --no-sync >{d}/initdb.log 2>&1"
    ))
    .status()
    .map_err(|e| format!("initdb: {e}"))?;
    if !out.success() {
        let log = std::fs::read_to_string(dir.join("initdb.log")).unwrap_or_default();
        return Err(format!("initdb failed: {log}"));
    }
    let port = crate::smtp::free_port();
    // The watchdog: runs the server until this test process is gone, then stops it and
    // removes the directory. fsync off: a test cluster need not survive a power cut.
    let me = std::process::id();
    let script = format!(
        "{b}/postgres -D {d}/data -p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={d} \
         -c fsync=off -c full_page_writes=off -c max_connections=400 -c shared_buffers=32MB >{d}/server.log 2>&1 & \
         pg=$!; while [ -d /proc/{me} ] && kill -0 $pg 2>/dev/null; do sleep 1; done; \
         kill -INT $pg 2>/dev/null; wait $pg; rm -rf {d}"
    );
    shell(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("postgres: {e}"))?;
    let cluster = Cluster { port, dir };
    let admin = cluster.url("postgres");
    let mut last = String::new();
    for _ in 0..300 {
        match postgres::Client::connect(&admin, postgres::NoTls) {
            Ok(_) => return Ok(cluster),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(cluster.dir.join("server.log")).unwrap_or_default();
    Err(format!("the test cluster did not accept connections: {last}\n{log}"))
}

impl Cluster {
    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

/// A new, empty database on the test cluster (started on first use); its URL.
pub fn database() -> String {
    let cluster = match CLUSTER.get_or_init(start) {
        Ok(c) => c,
        Err(e) => panic!("test PostgreSQL cluster: {e}"),
    };
    let mut raw = [0u8; 8];
    getrandom::fill(&mut raw).expect("random");
    let name = format!("t_{}", hex::encode(raw));
    let mut admin = postgres::Client::connect(&cluster.url("postgres"), postgres::NoTls).expect("admin connection");
    admin.batch_execute(&format!("CREATE DATABASE {name}")).expect("create database");
    cluster.url(&name)
}

/// The database of a data directory (made on first use): a server restarted on the same
/// directory finds its data again.
pub fn database_for(data: &Path) -> String {
    let mut map = BY_DIR.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    map.entry(data.to_path_buf()).or_insert_with(database).clone()
}
