//! Shared test helpers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use countersign::domain::intake::Intake;
use countersign::render::{Options, Rendered, Renderer};

pub fn example_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/intake").join(name)
}

pub fn example_text(name: &str) -> String {
    std::fs::read_to_string(example_path(name)).expect("example intake exists")
}

pub fn example_json(name: &str) -> serde_json::Value {
    serde_json::from_str(&example_text(name)).expect("example is JSON")
}

pub const BAA: &str = "baa-tx-ca.json";
pub const DUA: &str = "dua-ny-research.json";

pub fn intake(text: &str) -> Intake {
    match countersign::app::load_intake(text) {
        Ok(i) => i,
        Err(f) => panic!("intake should parse: {f:?}"),
    }
}

pub fn intake_from(v: &serde_json::Value) -> Intake {
    intake(&v.to_string())
}

pub fn render(i: &Intake, opts: Options) -> Rendered {
    Renderer::builtin().expect("templates load").render(i, opts).expect("renders")
}

/// Runs `pdftotext` on the bytes and returns the text.
pub fn pdftotext(pdf: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("doc.pdf");
    std::fs::write(&path, pdf).expect("write pdf");
    let out = Command::new("pdftotext")
        .arg("-enc")
        .arg("UTF-8")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext runs (apt-get install poppler-utils)");
    assert!(out.status.success(), "pdftotext failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf8")
}

/// Runs `qpdf --check` and asserts it passes.
pub fn assert_qpdf_ok(pdf: &[u8]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("doc.pdf");
    std::fs::write(&path, pdf).expect("write pdf");
    let out = Command::new("qpdf").arg("--check").arg(&path).output().expect("qpdf runs (apt-get install qpdf)");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "qpdf --check failed:\n{text}");
    assert!(text.contains("No syntax or stream encoding errors found"), "qpdf --check:\n{text}");
}

/// Page count per `pdfinfo`.
pub fn page_count(pdf: &[u8]) -> usize {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("doc.pdf");
    std::fs::write(&path, pdf).expect("write pdf");
    let out = Command::new("pdfinfo").arg(&path).output().expect("pdfinfo runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Pages:").map(|n| n.trim().parse().expect("number")))
        .expect("pdfinfo prints Pages:")
}

/// Folds whitespace so text that wrapped across lines still matches.
pub fn fold(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Runs the countersign binary. On the PostgreSQL pass, with `COUNTERSIGN_DATABASE_URL` naming
/// the database of the `--data` directory (the one a server spawned there uses), as an operator
/// of instances on PostgreSQL would set it.
pub fn countersign(args: &[&str], cwd: &Path) -> Output {
    countersign_command(args, cwd).output().expect("binary runs")
}

/// [`countersign`] not yet run, for a test that sets more of its environment.
pub fn countersign_command(args: &[&str], cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_countersign"));
    cmd.args(args).current_dir(cwd).env_remove("COUNTERSIGN_DATABASE_URL");
    if crate::pg::on_postgres()
        && let Some(data) = args.iter().position(|a| *a == "--data").and_then(|i| args.get(i + 1))
    {
        cmd.env("COUNTERSIGN_DATABASE_URL", crate::pg::database_for(&cwd.join(data)));
    }
    cmd
}

pub fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// sled lets go of its file lock a moment after the last handle in this process is dropped (its
/// I/O threads hold the file until their writes end), as a restart would find it: these wait for
/// that event, at most 30 s, instead of failing on the lock.
pub fn sled_open_when_free(path: &std::path::Path) -> sled::Db {
    let started = std::time::Instant::now();
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(e) if started.elapsed().as_secs() < 30 && e.to_string().contains("lock") => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            Err(e) => panic!("sled opens {}: {e}", path.display()),
        }
    }
}

/// [`SledStore::open`](countersign::store::sled_store::SledStore::open) once sled's lock is free
/// (see [`sled_open_when_free`]): any other answer, success or error, as it comes.
pub fn sled_store_when_free(
    dir: &std::path::Path,
) -> Result<countersign::store::sled_store::SledStore, countersign::store::StoreError> {
    let started = std::time::Instant::now();
    loop {
        match countersign::store::sled_store::SledStore::open(dir) {
            Err(countersign::store::StoreError::Locked(_)) if started.elapsed().as_secs() < 30 => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            other => return other,
        }
    }
}
