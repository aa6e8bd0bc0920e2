//! A real server on 127.0.0.1:0 with a temp sled data dir (or, with
//! `COUNTERSIGN_TEST_BACKEND=postgres`, a database on the test cluster: see [`crate::pg`]),
//! driven over HTTP.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use countersign::clock::{Clock, ManualClock};
use countersign::config::Config;

pub struct TestApp {
    pub base: String,
    pub key: String,
    pub data: PathBuf,
    pub clock: ManualClock,
    pub http: ureq::Agent,
    /// The server's service, for what only it can tell (how many sender passes have run).
    /// Weak: stopping the server waits for the last strong reference, so the test must not
    /// hold one.
    service: std::sync::Weak<countersign::app::service::Service>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Known to the hang watchdog while the server runs (and while it stops).
    _watched: crate::watchdog::Registration,
}

impl TestApp {
    /// The running server's service, for work only it can do in a test (acting as a person
    /// would through the web app). Drop it before stopping the server.
    pub fn service(&self) -> std::sync::Arc<countersign::app::service::Service> {
        self.service.upgrade().expect("the server runs")
    }

    /// Whether this server's start read its search index from the last stop's snapshot.
    pub fn index_from_snapshot(&self) -> bool {
        self.service().index_from_snapshot.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A first-administrator setup path (`/setup/<token>`) minted in this server's own store,
    /// sled or PostgreSQL, as `serve` does on an empty store; panics when someone exists.
    pub fn setup_path(&self) -> String {
        let people = countersign::people::Directory::new(self.service());
        let url = people.setup_link().expect("setup link").expect("nobody exists yet, so a link");
        url.split_once("/setup/").map(|(_, t)| format!("/setup/{t}")).expect("a setup path")
    }

    /// Returns once the mail sender has finished `n` more passes than when called: after it,
    /// the sender has looked at the outbox at least once since the caller's last change.
    /// Each pass is asked for (the sender's wake, as a commit that queued mail would): with the
    /// default 30 s poll, counting on passes nobody asked for raced the start-up passes.
    pub fn sender_passes(&self, n: u64) {
        use std::sync::atomic::Ordering;
        let service = self.service.upgrade().expect("the server runs");
        let passes = || service.sender_passes.load(Ordering::SeqCst);
        let start = passes();
        for i in 1..=n {
            service.mail_wake.notify_one();
            crate::smtp::eventually(10, "mail sender passes", || passes() >= start + i);
        }
    }
}

/// A fixed start time: 2027-01-04T12:00:00Z.
pub const T0: u64 = 1_799_064_000;

/// Starts a server on a fresh temp data dir.
pub fn spawn_app() -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app_at(dir.path(), ManualClock::at(T0));
    (app, dir)
}

/// Starts a server on `data` (restart tests reuse a dir) with the given clock.
pub fn spawn_app_at(data: &Path, clock: ManualClock) -> TestApp {
    spawn_app_on(data, clock, "127.0.0.1:0")
}

/// Starts a server on a given address: a restarted server must come back where its emailed
/// links point.
pub fn spawn_app_on(data: &Path, clock: ManualClock, addr: &str) -> TestApp {
    spawn_app_with(data, clock, addr, |_| {})
}

/// The application state on `data` without the HTTP server (so without the sender and tick
/// tasks: what it queues stays queued), on the suite's backend: the same sled directory or
/// PostgreSQL database a server spawned on `data` uses. Links point at 127.0.0.1:9.
pub fn offline_state(
    data: &Path,
    clock: &ManualClock,
    configure: impl FnOnce(&mut Config),
) -> countersign::http::AppState {
    let mut config = Config {
        data_dir: data.to_path_buf(),
        public_base_url: Some("http://127.0.0.1:9".into()),
        ..Config::default()
    };
    if crate::pg::on_postgres() {
        config.database_url = Some(crate::pg::database_for(data).into());
    }
    configure(&mut config);
    let clock: Arc<dyn Clock> = Arc::new(clock.clone());
    let store = open_store_when_free(&config);
    countersign::http::state::build_state_on(config, store, clock).expect("state").0
}

/// The store `config` names, opened as a server or offline state would. A restart in this
/// process may find sled's lock still held for a moment by the last handle's I/O threads (see
/// `helpers::sled_open_when_free`): wait for it, at most 30 s.
fn open_store_when_free(config: &Config) -> Arc<dyn countersign::store::Store> {
    let started = std::time::Instant::now();
    loop {
        match countersign::app::open_store(config) {
            Err(countersign::app::OpenError::Locked(_)) if started.elapsed().as_secs() < 30 => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            other => break other.expect("store opens"),
        }
    }
}

/// The store a server spawned on `data` uses (the sled directory, or its PostgreSQL
/// database), opened by the test while no server runs there.
pub fn open_store(data: &Path) -> Arc<dyn countersign::store::Store> {
    if crate::pg::on_postgres() {
        let url = crate::pg::database_for(data);
        Arc::new(countersign::store::postgres::PgStore::open(&url, data).expect("the database opens"))
    } else {
        Arc::new(crate::helpers::sled_store_when_free(data).expect("the store opens"))
    }
}

/// Loads a backup into the (empty) store a server spawned on `data` will use.
pub fn restore_into(data: &Path, backup: &[u8]) {
    if crate::pg::on_postgres() {
        let store = countersign::store::postgres::PgStore::open(&crate::pg::database_for(data), data).expect("opens");
        store.restore(std::io::Cursor::new(backup)).expect("restores");
    } else {
        let store = crate::helpers::sled_store_when_free(data).expect("opens");
        store.restore(std::io::Cursor::new(backup)).expect("restores");
    }
}

/// Rewrites event `seq` (from 1) of agreement `id` with `change`, behind the service's back, in
/// the store a server spawned on `data` uses (none may run there): tampering `audit verify`
/// must catch.
pub fn tamper_event(data: &Path, id: &str, seq: u64, change: impl FnOnce(&mut Vec<u8>)) {
    if crate::pg::on_postgres() {
        use countersign::store::Store;
        let store = countersign::store::postgres::PgStore::open(&crate::pg::database_for(data), data).expect("opens");
        let chains = store.raw_chains().expect("chains");
        let (_, events) = chains.into_iter().find(|(a, _)| a == id).expect("the agreement's chain");
        let mut raw = events.get(seq as usize - 1).cloned().expect("the event");
        change(&mut raw);
        store.tamper_event(id, seq, &raw).expect("tamper");
    } else {
        let store = crate::helpers::sled_store_when_free(data).expect("opens");
        let mut raw = store.raw_event(id, seq).expect("the event");
        change(&mut raw);
        store.tamper_event(id, seq, &raw).expect("tamper");
    }
}

/// Starts a server with configuration changes (SMTP, retry schedule) applied on top.
pub fn spawn_app_with(data: &Path, clock: ManualClock, addr: &str, configure: impl FnOnce(&mut Config)) -> TestApp {
    let watched = crate::watchdog::register();
    let std_listener = std::net::TcpListener::bind(addr).expect("bind");
    std_listener.set_nonblocking(true).expect("nonblocking");
    let addr = std_listener.local_addr().expect("addr");
    let mut config = Config {
        data_dir: data.to_path_buf(),
        bind: addr,
        public_base_url: Some(format!("http://{addr}")),
        ..Config::default()
    };
    if crate::pg::on_postgres() {
        config.database_url = Some(crate::pg::database_for(data).into());
    }
    configure(&mut config);
    let dyn_clock: Arc<dyn Clock> = Arc::new(clock.clone());
    let store = open_store_when_free(&config);
    let (state, key, _) = countersign::http::state::build_state_on(config, store, dyn_clock).expect("state builds");
    let service = Arc::downgrade(&state.service);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
            countersign::http::run(listener, state, async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
    });
    let http: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).max_idle_connections(0).build().into();
    TestApp {
        base: format!("http://{addr}"),
        key,
        data: data.to_path_buf(),
        clock,
        http,
        service,
        stop: Some(tx),
        thread: Some(thread),
        _watched: watched,
    }
}

pub struct Resp {
    pub status: u16,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn collect(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Resp {
    let mut r = r.expect("request completes");
    let status = r.status().as_u16();
    let headers = r.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let body = r.body_mut().with_config().limit(50 * 1024 * 1024).read_to_vec().expect("body");
    Resp { status, body, headers }
}

impl TestApp {
    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") { path.to_string() } else { format!("{}{path}", self.base) }
    }
    fn auth(&self) -> String {
        format!("Bearer {}", self.key)
    }
    pub fn get(&self, path: &str) -> Resp {
        collect(self.http.get(self.url(path)).header("Authorization", self.auth()).call())
    }
    pub fn get_anon(&self, path: &str) -> Resp {
        collect(self.http.get(self.url(path)).call())
    }
    pub fn get_with_key(&self, path: &str, key: &str) -> Resp {
        collect(self.http.get(self.url(path)).header("Authorization", format!("Bearer {key}")).call())
    }
    pub fn post(&self, path: &str, body: &str) -> Resp {
        collect(
            self.http
                .post(self.url(path))
                .header("Authorization", self.auth())
                .header("Content-Type", "application/json")
                .send(body),
        )
    }
    pub fn put(&self, path: &str, body: &str) -> Resp {
        collect(
            self.http
                .put(self.url(path))
                .header("Authorization", self.auth())
                .header("Content-Type", "application/json")
                .send(body),
        )
    }
    pub fn patch(&self, path: &str, body: &str) -> Resp {
        collect(
            self.http
                .patch(self.url(path))
                .header("Authorization", self.auth())
                .header("Content-Type", "application/json")
                .send(body),
        )
    }
    pub fn form(&self, url: &str, fields: &[(&str, &str)]) -> Resp {
        collect(
            self.http.post(self.url(url)).header("User-Agent", "countersign-test/1").send_form(fields.iter().copied()),
        )
    }

    /// A GET with extra request headers (no key).
    pub fn get_with_headers(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut r = self.http.get(self.url(path)).header("User-Agent", "countersign-test/1");
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        collect(r.call())
    }

    /// Any request with an optional key and body.
    pub fn req(&self, method: &str, path: &str, key: Option<&str>, ctype: &str, body: &[u8]) -> Resp {
        let url = self.url(path);
        let mut b = ureq::http::Request::builder().method(method).uri(&url).header("User-Agent", "countersign-test/1");
        if let Some(k) = key {
            b = b.header("Authorization", format!("Bearer {k}"));
        }
        if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
            b = b.header("Content-Type", ctype);
        }
        let req = b.body(body.to_vec()).expect("request");
        let r = self.http.run(req);
        if let Err(e) = &r {
            panic!("{method} {path}: {e}");
        }
        collect(r)
    }

    /// Creates an API key with a role (as the bootstrap admin); returns (key, id).
    pub fn key_for(&self, role: &str, expires_at: Option<u64>) -> (String, String) {
        let body =
            serde_json::json!({"name": format!("{role} test"), "role": role, "expires_at": expires_at}).to_string();
        let r = self.post("/api/v1/apikeys", &body);
        assert_eq!(r.status, 201, "{}", r.text());
        let v = r.json();
        (v["key"].as_str().expect("key").to_string(), v["id"].as_str().expect("id").to_string())
    }

    /// Creates an agreement from intake text; asserts 201.
    pub fn create(&self, intake: &str) -> serde_json::Value {
        let r = self.post("/api/v1/agreements", intake);
        assert_eq!(r.status, 201, "{}", r.text());
        r.json()
    }

    /// Every `.eml` in the outbox, oldest first: (file name, its headers and decoded text/plain
    /// part), once the mail sender has passed over the outbox since the caller's last change (a
    /// signature's answer comes when its mail is durably queued; the sender writes the copies).
    pub fn outbox(&self) -> Vec<(String, String)> {
        self.sender_passes(2);
        let dir = self.data.join("outbox");
        let mut v: Vec<(String, String)> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
                .map(|e| {
                    let raw = std::fs::read(e.path()).expect("eml");
                    (e.file_name().to_string_lossy().into_owned(), crate::smtp::readable(&raw))
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }

    /// Links of one kind (`/sign/` or `/download/`) mailed to `email`, oldest first.
    pub fn links_for(&self, email: &str, kind: &str) -> Vec<String> {
        self.outbox()
            .into_iter()
            .filter(|(_, t)| t.lines().any(|l| l.starts_with("To:") && l.contains(email)))
            .flat_map(|(_, t)| {
                t.split_whitespace()
                    .filter(|w| w.starts_with("http") && w.contains(kind))
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The most recent signing link for `email`; panics if none.
    pub fn sign_link(&self, email: &str) -> String {
        self.links_for(email, "/sign/").pop().unwrap_or_else(|| panic!("no signing link for {email} in the outbox"))
    }

    /// Opens the signer page and returns (status, html, csrf).
    pub fn open(&self, link: &str) -> (u16, String, String) {
        let r = collect(self.http.get(link).header("User-Agent", "countersign-test/1").call());
        let html = r.text();
        let csrf = html
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_default()
            .to_string();
        (r.status, html, csrf)
    }

    /// Opens and signs; returns the POST response.
    pub fn sign(&self, link: &str, name: &str, title: &str) -> Resp {
        let (status, html, csrf) = self.open(link);
        assert_eq!(status, 200, "{html}");
        self.form(
            link,
            &[("action", "sign"), ("consent", "yes"), ("typed_name", name), ("typed_title", title), ("csrf", &csrf)],
        )
    }

    /// Stops the server (graceful shutdown, sled flushed and closed).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown();
    }
}
