//! A small SMTP server for tests, in process, on 127.0.0.1: enough of RFC 5321 for lettre
//! (EHLO/HELO, AUTH PLAIN, MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT). It can be
//! told to answer the next N messages with a transient 451 after their data, and "down" is a
//! port where nothing listens. Received messages are kept raw, for parsing with mailparse.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// The message as received, dot-unstuffed, CRLF line ends, without the final `.` line.
    pub data: Vec<u8>,
    /// `AUTH PLAIN` user, if the client authenticated.
    pub user: Option<String>,
}

impl Received {
    pub fn parsed(&self) -> mailparse::ParsedMail<'_> {
        mailparse::parse_mail(&self.data).expect("received message is valid MIME")
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.parsed().headers.iter().find(|h| h.get_key().eq_ignore_ascii_case(name)).map(|h| h.get_value())
    }
}

#[derive(Default)]
struct State {
    received: Mutex<Vec<Received>>,
    refuse: AtomicUsize,
    refused: AtomicUsize,
    stop: AtomicBool,
}

pub struct SmtpServer {
    pub port: u16,
    state: Arc<State>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A loopback port with nothing listening on it (an SMTP server that is down).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

impl SmtpServer {
    pub fn start() -> SmtpServer {
        SmtpServer::start_on(0)
    }

    pub fn start_on(port: u16) -> SmtpServer {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind smtp");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(State::default());
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = session(conn, &st);
                });
            }
        });
        SmtpServer { port, state, thread: Some(thread) }
    }

    /// Answer the next `n` messages with `451` after their data (nothing is kept).
    pub fn refuse_next(&self, n: usize) {
        self.state.refuse.store(n, Ordering::SeqCst);
    }

    pub fn refused(&self) -> usize {
        self.state.refused.load(Ordering::SeqCst)
    }

    pub fn messages(&self) -> Vec<Received> {
        self.state.received.lock().expect("lock").clone()
    }

    /// Waits (polling, at most `secs`) until at least `n` messages arrived; returns them all.
    pub fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            assert!(Instant::now() < deadline, "expected {n} message(s), got {}", got.len());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn shutdown(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn session(conn: TcpStream, st: &State) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut out = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    let mut say = |s: &str| out.write_all(s.as_bytes());
    say("220 smtp.test ESMTP ready\r\n")?;
    let (mut from, mut to, mut user) = (String::new(), Vec::new(), None);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || st.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            say("250-smtp.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 AUTH PLAIN\r\n")?;
        } else if upper.starts_with("HELO") {
            say("250 smtp.test\r\n")?;
        } else if upper.starts_with("AUTH PLAIN") {
            use base64::Engine;
            let arg = cmd.split_whitespace().nth(2).unwrap_or("");
            let raw = base64::engine::general_purpose::STANDARD.decode(arg).unwrap_or_default();
            let parts: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
            user = parts.get(1).map(|u| String::from_utf8_lossy(u).into_owned());
            say("235 2.7.0 Authentication successful\r\n")?;
        } else if upper.starts_with("MAIL FROM:") {
            from = cmd[10..].split_whitespace().next().unwrap_or("").trim_matches(['<', '>']).to_string();
            to.clear();
            say("250 2.1.0 Ok\r\n")?;
        } else if upper.starts_with("RCPT TO:") {
            to.push(cmd[8..].trim().trim_matches(['<', '>']).to_string());
            say("250 2.1.5 Ok\r\n")?;
        } else if upper == "DATA" {
            say("354 End data with <CR><LF>.<CR><LF>\r\n")?;
            let mut data = Vec::new();
            let mut l = Vec::new();
            loop {
                l.clear();
                if reader.read_until(b'\n', &mut l)? == 0 {
                    return Ok(());
                }
                if l == b".\r\n" {
                    break;
                }
                let body: &[u8] = if l.starts_with(b"..") { &l[1..] } else { &l };
                data.extend_from_slice(body);
            }
            let refuse = st.refuse.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
            if refuse {
                st.refused.fetch_add(1, Ordering::SeqCst);
                say("451 4.3.0 Temporary local problem, try again later\r\n")?;
            } else {
                let n = {
                    let mut r = st.received.lock().expect("lock");
                    r.push(Received { from: from.clone(), to: to.clone(), data, user: user.clone() });
                    r.len()
                };
                say(&format!("250 2.0.0 Ok: queued as TEST{n}\r\n"))?;
            }
        } else if upper == "RSET" {
            from.clear();
            to.clear();
            say("250 2.0.0 Ok\r\n")?;
        } else if upper == "NOOP" {
            say("250 2.0.0 Ok\r\n")?;
        } else if upper == "QUIT" {
            say("221 2.0.0 Bye\r\n")?;
            return Ok(());
        } else {
            say("502 5.5.2 Command not recognized\r\n")?;
        }
    }
}

/// An `.eml` or received message as text: its headers (decoded), a blank line, and its
/// text/plain part (decoded from quoted-printable or base64).
pub fn readable(raw: &[u8]) -> String {
    let parsed = mailparse::parse_mail(raw).expect("valid MIME");
    let mut out = String::new();
    for h in &parsed.headers {
        out.push_str(&format!("{}: {}\n", h.get_key(), h.get_value()));
    }
    out.push('\n');
    out.push_str(&plain_part(&parsed).unwrap_or_default());
    out
}

/// The first text/plain part, decoded.
pub fn plain_part(p: &mailparse::ParsedMail<'_>) -> Option<String> {
    if p.subparts.is_empty() {
        return (p.ctype.mimetype == "text/plain").then(|| p.get_body().expect("body decodes"));
    }
    p.subparts.iter().find_map(plain_part)
}

/// The first text/html part, decoded.
pub fn html_part(p: &mailparse::ParsedMail<'_>) -> Option<String> {
    if p.subparts.is_empty() {
        return (p.ctype.mimetype == "text/html").then(|| p.get_body().expect("body decodes"));
    }
    p.subparts.iter().find_map(html_part)
}

/// Waits (polling, at most `secs`) until `f` holds.
pub fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
