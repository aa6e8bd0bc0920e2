//! Crash rounds (issue 11 §4): the real `countersign serve` binary, many signing flows at once
//! over HTTP, `kill -9` at a random moment, a restart on the same data directory, and checks:
//!
//! - every signature the client saw acknowledged (a 200 to the signing POST) is recorded;
//! - every agreement's status is what its audit events say (`sent`, one `signed` per signed
//!   signer, `completed`), and the signers' statuses agree;
//! - `GET /api/v1/audit/verify` passes after each restart, and `countersign audit verify` on the
//!   directory after the last kill;
//! - the outbox owes nothing: the queue drains, no message failed, every message marked sent
//!   reached the (loopback) SMTP server, and none arrived more often than the documented
//!   duplicate allows (one more delivery per crash at most: a crash between an attempt and its
//!   outcome).
//!
//! The randomness (kill moments) comes from one seed, printed at the start: rerun a failing
//! series with `CRASH_SEED=… scripts/crash-rounds N`. The short form runs in the suite; the long
//! form is `scripts/crash-rounds N` (this file's ignored test).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fuzz::Rng;
use crate::helpers::*;
use crate::smtp::{SmtpServer, eventually, plain_part};

struct Server {
    child: Child,
    base: String,
    key: String,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// `(status, body)`, or `None` when the server is gone (connection refused or cut).
fn call(
    http: &ureq::Agent,
    method: &str,
    url: &str,
    key: Option<&str>,
    body: Option<&[(&str, &str)]>,
) -> Option<(u16, String)> {
    let mut b = ureq::http::Request::builder().method(method).uri(url).header("User-Agent", "crash-rounds/1");
    if let Some(k) = key {
        b = b.header("Authorization", format!("Bearer {k}"));
    }
    let req = match body {
        Some(fields) => {
            let enc: Vec<String> = fields.iter().map(|(k, v)| format!("{}={}", k, url_encode(v))).collect();
            b.header("Content-Type", "application/x-www-form-urlencoded").body(enc.join("&").into_bytes())
        }
        None => b.body(Vec::new()),
    }
    .expect("request");
    let mut r = http.run(req).ok()?;
    let status = r.status().as_u16();
    let text = r.body_mut().with_config().limit(50 * 1024 * 1024).read_to_string().ok()?;
    Some((status, text))
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn post_json(http: &ureq::Agent, url: &str, key: &str, body: &str) -> Option<(u16, String)> {
    let req = ureq::http::Request::builder()
        .method("POST")
        .uri(url)
        .header("Authorization", format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .body(body.as_bytes().to_vec())
        .expect("request");
    let mut r = http.run(req).ok()?;
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().ok()?;
    Some((status, text))
}

fn start(bin: &Path, data: &Path, port: u16, config: &Path, log: &Path) -> Server {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log file");
    let child = Command::new(bin)
        .args(["serve", "--config"])
        .arg(config)
        .arg("--data")
        .arg(data)
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("the server binary starts");
    let base = format!("http://127.0.0.1:{port}");
    let http = agent();
    let key_file = data.join("bootstrap-admin.key");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(key) = std::fs::read_to_string(&key_file) {
            let key = key.trim().to_string();
            if !key.is_empty()
                && call(&http, "GET", &format!("{base}/api/v1/agreements?limit=1"), Some(&key), None)
                    .is_some_and(|(s, _)| s == 200)
            {
                return Server { child, base, key };
            }
        }
        assert!(Instant::now() < deadline, "the server did not come up on {base} within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the client saw acknowledged: (agreement id, signer id).
type Acked = Arc<Mutex<Vec<(String, String)>>>;

/// The signing link mailed to `email`, if it has arrived.
fn link_for(smtp: &SmtpServer, email: &str) -> Option<String> {
    smtp.messages().iter().rev().find_map(|m| {
        if !m.header("To").is_some_and(|t| t.contains(email)) {
            return None;
        }
        let text = plain_part(&m.parsed())?;
        text.split_whitespace().find(|w| w.starts_with("http") && w.contains("/sign/")).map(String::from)
    })
}

/// One flow: create, send, then each signer in order opens their link and signs. Returns when
/// the agreement is executed or the server went away.
fn flow(http: &ureq::Agent, srv_base: &str, key: &str, smtp: &SmtpServer, tag: &str, acked: &Acked, down: &AtomicBool) {
    let mut v = example_json(BAA);
    let emails = [format!("priya.{tag}@northwind.example"), format!("zoe.{tag}@lakeside.example")];
    v["signers"][0]["email"] = emails[0].clone().into();
    v["signers"][1]["email"] = emails[1].clone().into();
    v["services"] = format!("Appointment reminders, flow {tag}").into();
    let Some((201, body)) = post_json(http, &format!("{srv_base}/api/v1/agreements"), key, &v.to_string()) else {
        return;
    };
    let Ok(created) = serde_json::from_str::<Value>(&body) else { return };
    let id = created["id"].as_str().unwrap_or_default().to_string();
    let signer_ids: Vec<String> = created["signers"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["id"].as_str().map(String::from)).collect())
        .unwrap_or_default();
    if call(http, "POST", &format!("{srv_base}/api/v1/agreements/{id}/send"), Some(key), Some(&[])).map(|r| r.0)
        != Some(200)
    {
        return;
    }
    for (i, email) in emails.iter().enumerate() {
        // the link arrives through the outbox and SMTP; poll for it while the server is up
        let link = loop {
            if down.load(Ordering::SeqCst) {
                return;
            }
            if let Some(l) = link_for(smtp, email) {
                break l;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let Some((200, html)) = call(http, "GET", &link, None, None) else { return };
        let csrf = html.split("name=\"csrf\" value=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or_default();
        let fields = [
            ("action", "sign"),
            ("consent", "yes"),
            ("typed_name", "Test Signer"),
            ("typed_title", "Officer"),
            ("csrf", csrf),
        ];
        match call(http, "POST", &link, None, Some(&fields)) {
            Some((200, _)) => {
                acked.lock().expect("acked").push((id.clone(), signer_ids.get(i).cloned().unwrap_or_default()));
            }
            _ => return,
        }
    }
}

fn get_json(http: &ureq::Agent, srv: &Server, path: &str) -> Value {
    let (status, body) = call(http, "GET", &format!("{}{path}", srv.base), Some(&srv.key), None)
        .unwrap_or_else(|| panic!("GET {path}: the restarted server does not answer"));
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
}

/// The checks after a restart; `kills` is how many times the server was killed so far.
fn check(srv: &Server, smtp: &SmtpServer, acked: &Acked, kills: usize, round: usize) -> BTreeMap<String, usize> {
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let http = agent();
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = match &cursor {
            Some(c) => get_json(&http, srv, &format!("/api/v1/agreements?limit=500&cursor={}", url_encode(c))),
            None => get_json(&http, srv, "/api/v1/agreements?limit=500"),
        };
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut by_id: HashMap<String, Value> = HashMap::new();
    for it in &items {
        let id = it["id"].as_str().expect("id").to_string();
        by_id.insert(id.clone(), get_json(&http, srv, &format!("/api/v1/agreements/{id}")));
    }
    // 1. every acknowledged signature is there
    for (id, signer) in acked.lock().expect("acked").iter() {
        let a = by_id
            .get(id)
            .unwrap_or_else(|| panic!("round {round}: agreement {id} with an acknowledged signature is gone"));
        let s = a["signers"]
            .as_array()
            .and_then(|ss| ss.iter().find(|s| s["id"] == signer.as_str()))
            .cloned()
            .unwrap_or_default();
        assert_eq!(s["status"], "signed", "round {round}: {id} signer {signer} was acknowledged but is {s}");
        assert!(s["signed_at"].is_string(), "round {round}: {id} signer {signer} has no signed_at");
    }
    // 2. every agreement's state is explained by its events
    for (id, a) in &by_id {
        let events = get_json(&http, srv, &format!("/api/v1/agreements/{id}/audit"));
        let kinds: Vec<String> = events["items"]
            .as_array()
            .map(|e| e.iter().filter_map(|x| x["kind"].as_str().map(String::from)).collect())
            .unwrap_or_default();
        let count = |k: &str| kinds.iter().filter(|x| *x == k).count();
        let signers = a["signers"].as_array().cloned().unwrap_or_default();
        let signed = signers.iter().filter(|s| s["status"] == "signed").count();
        assert_eq!(count("created"), 1, "round {round}: {id} events {kinds:?}");
        assert_eq!(count("signed"), signed, "round {round}: {id}: {signed} signers signed, events {kinds:?}");
        let expected = match (count("sent"), signed, count("completed")) {
            (0, 0, 0) => "draft",
            (1, 0, 0) => "sent",
            (1, n, 0) if n < signers.len() => "partially_signed",
            (1, n, 1) if n == signers.len() => "executed",
            other => panic!("round {round}: {id}: events {kinds:?} explain no state ({other:?})"),
        };
        assert_eq!(a["status"], expected, "round {round}: {id}: events {kinds:?}");
        *statuses.entry(expected.to_string()).or_default() += 1;
        if expected == "executed" {
            assert!(a["final_sha256"].is_string(), "round {round}: {id} executed without a final document");
        }
    }
    // 3. the hash chains verify
    let v = get_json(&http, srv, "/api/v1/audit/verify");
    assert_eq!(v["ok"], true, "round {round}: audit verify: {v}");
    // 4. the outbox owes nothing and repeats nothing beyond the documented duplicate
    eventually(60, &format!("round {round}: the outbox queue drains after the restart"), || {
        get_json(&http, srv, "/api/v1/outbox?status=queued")["items"].as_array().is_some_and(|a| a.is_empty())
    });
    let all = get_json(&http, srv, "/api/v1/outbox");
    let mut received: BTreeMap<String, usize> = BTreeMap::new();
    for m in smtp.messages() {
        let id = m.header("Message-ID").unwrap_or_default();
        *received.entry(id.trim().trim_matches(['<', '>']).to_string()).or_default() += 1;
    }
    for m in all["items"].as_array().cloned().unwrap_or_default() {
        // `skipped`: a reminder no longer wanted, or a staff notice with no staff address
        assert!(m["status"] == "sent" || m["status"] == "skipped", "round {round}: a message is not delivered: {m}");
        if m["status"] == "skipped" {
            continue;
        }
        let mid = m["message_id"].as_str().unwrap_or_default();
        assert!(received.contains_key(mid), "round {round}: marked sent but never received: {m}");
    }
    let extra: usize = received.values().map(|n| n - 1).sum();
    assert!(
        extra <= kills,
        "round {round}: {extra} duplicate deliveries after {kills} kills (at most one per crash): {received:?}"
    );
    statuses.insert("duplicate deliveries".into(), extra);
    statuses
}

/// Runs `rounds` kill-and-restart rounds with `workers` concurrent flows; returns the number of
/// acknowledged signatures checked. Each round kills the server `min_kill_ms` plus up to
/// `max_kill_ms` (random) after the round's first acknowledged signature.
pub fn crash_rounds(rounds: usize, workers: usize, seed: u64, min_kill_ms: u64, max_kill_ms: u64) -> usize {
    eprintln!(
        "crash rounds: {rounds} rounds, {workers} workers, seed {seed} (CRASH_SEED={seed} replays the kill moments)"
    );
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_countersign"));
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let port = free_port();
    let smtp = Arc::new(SmtpServer::start());
    let config = dir.path().join("countersign.toml");
    let mut f = std::fs::File::create(&config).expect("config");
    write!(
        f,
        "public_base_url = \"http://127.0.0.1:{port}\"\n\n[smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nfrom = \"Countersign <countersign@sign.example.com>\"\n\n[delivery]\npoll_ms = 50\n",
        smtp.port
    )
    .expect("config");
    drop(f);
    let mut rng = Rng::new(seed);
    let acked: Acked = Arc::new(Mutex::new(Vec::new()));
    let flows = Arc::new(AtomicUsize::new(0));
    let mut kills = 0;
    for round in 1..=rounds {
        let srv = start(&bin, &data, port, &config, &log);
        if round > 1 {
            let seen = check(&srv, &smtp, &acked, kills, round - 1);
            eprintln!("round {}: checked after restart: {seen:?}", round - 1);
        }
        let down = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        for w in 0..workers {
            let (base, key, smtp, acked, down, flows) =
                (srv.base.clone(), srv.key.clone(), smtp.clone(), acked.clone(), down.clone(), flows.clone());
            handles.push(std::thread::spawn(move || {
                let http = agent();
                let mut n = 0;
                while !down.load(Ordering::SeqCst) {
                    flow(&http, &base, &key, &smtp, &format!("r{round}w{w}n{n}"), &acked, &down);
                    flows.fetch_add(1, Ordering::SeqCst);
                    n += 1;
                }
            }));
        }
        // The random moment: first wait (polling, at most 3 minutes) until this round has
        // acknowledged a signature, so every round kills flows that are mid-way however slow
        // the machine is; then `min_kill_ms` plus a random part, somewhere in the middle of
        // creating, sending, signing and mailing.
        let acked_before = acked.lock().expect("acked").len();
        let t0 = Instant::now();
        while acked.lock().expect("acked").len() == acked_before && t0.elapsed() < Duration::from_secs(180) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let after = min_kill_ms + rng.below(max_kill_ms as usize) as u64;
        std::thread::sleep(Duration::from_millis(after));
        let after = t0.elapsed().as_millis();
        let mut srv = srv;
        down.store(true, Ordering::SeqCst);
        srv.child.kill().expect("kill -9");
        let _ = srv.child.wait();
        kills += 1;
        for h in handles {
            h.join().expect("worker");
        }
        eprintln!(
            "round {round}: killed after {after} ms; {} signatures acknowledged so far, {} flows",
            acked.lock().expect("acked").len(),
            flows.load(Ordering::SeqCst)
        );
    }
    // a last restart to check the last round, then kill -9 and verify offline with the CLI
    let mut srv = start(&bin, &data, port, &config, &log);
    let seen = check(&srv, &smtp, &acked, kills, rounds);
    eprintln!("round {rounds}: checked after restart: {seen:?}");
    srv.child.kill().expect("kill -9");
    let _ = srv.child.wait();
    let out = Command::new(&bin).args(["audit", "verify", "--data"]).arg(&data).output().expect("audit verify runs");
    assert!(
        out.status.success(),
        "countersign audit verify after the last kill: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let n = acked.lock().expect("acked").len();
    eprintln!("crash rounds: {rounds} rounds passed, {n} acknowledged signatures all present, seed {seed}");
    n
}

fn seed_from_env() -> u64 {
    std::env::var("CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(7)
    })
}

#[test]
fn signatures_survive_kill_9_and_restarts_with_state_audit_and_outbox_intact() {
    let acked = crash_rounds(2, 3, seed_from_env(), 0, 1500);
    // the short form must have exercised something: at least one signature went through
    assert!(acked > 0, "no signature was acknowledged in two rounds");
}

/// The long form: `scripts/crash-rounds N` (CRASH_ROUNDS, CRASH_SEED, CRASH_WORKERS, and the
/// kill window CRASH_MIN_MS + up to CRASH_MAX_MS after the round's first signature).
#[test]
#[ignore = "long: run with scripts/crash-rounds N"]
fn many_crash_rounds() {
    let rounds = std::env::var("CRASH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let workers = std::env::var("CRASH_WORKERS").ok().and_then(|s| s.parse().ok()).unwrap_or(6);
    let min = std::env::var("CRASH_MIN_MS").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let max = std::env::var("CRASH_MAX_MS").ok().and_then(|s| s.parse().ok()).unwrap_or(3000);
    crash_rounds(rounds, workers, seed_from_env(), min, max);
}
