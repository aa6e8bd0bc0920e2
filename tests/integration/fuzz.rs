//! The stable fuzz harness (issue 11 §3): a seeded mutation loop over a committed corpus
//! (`tests/corpus/`) and over real documents made at start-up, one target per parser.
//!
//! Shared by the bounded pass in the test suite (`fuzzing.rs`) and the long runs
//! (`cargo run --release --example fuzz -- TARGET N [SEED]`, which includes this file). It uses
//! only the library's public API, `std`, `serde_json`, `axum`, `libc` and `tempfile`, so it compiles in
//! both places.
//!
//! Each execution runs under `catch_unwind`: a panic is counted (and its input kept) instead of
//! ending the run; each execution is timed, and the slowest is reported — by the thread's CPU
//! time (what the case costs, whatever else the machine runs) and by the wall clock. The randomness is one
//! xorshift generator seeded from the command line, so a run is replayed exactly by its seed.

#![allow(dead_code)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use countersign::render::{Mode, Options, Renderer};
use countersign::seal::SealKeys;
use countersign::secret::Secret;
use countersign::signing::token::{KeyRing, Purpose};

/// xorshift64*: small, fast, and the same sequence on every machine for a seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform-enough in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// What one target's run found.
#[derive(Debug, Default)]
pub struct Outcome {
    pub target: String,
    pub executions: u64,
    pub panics: u64,
    /// Executions whose oracle failed (a result the target must never give).
    pub wrong: u64,
    pub elapsed: Duration,
    /// The slowest execution by the thread's CPU time: the 100 ms budget applies to this, since
    /// on a shared machine the wall clock also counts time the thread spent waiting for a core.
    pub slowest: Duration,
    /// The slowest execution by the wall clock.
    pub slowest_wall: Duration,
    /// The first failing input and what went wrong, to replay by hand.
    pub first_failure: Option<(Vec<u8>, String)>,
}

impl Outcome {
    pub fn line(&self) -> String {
        let per_sec = self.executions as f64 / self.elapsed.as_secs_f64().max(1e-9);
        format!(
            "{}: {} executions in {:.1} s ({:.0}/s), slowest {:.2} ms CPU ({:.2} ms wall), {} panics, {} wrong results",
            self.target,
            self.executions,
            self.elapsed.as_secs_f64(),
            per_sec,
            self.slowest.as_secs_f64() * 1e3,
            self.slowest_wall.as_secs_f64() * 1e3,
            self.panics,
            self.wrong
        )
    }
}

/// Tokens that mean something to the parsers, spliced into inputs.
const JSON_WORDS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "null",
    "true",
    "false",
    "-0",
    "1e999",
    "18446744073709551616",
    "\\u0000",
    "\\ud800",
    "\\\"",
    "{{ x }}",
    "{% if %}",
    "<script>",
    "\u{202e}",
    "\u{0}",
    "\"kind\":\"dua\"",
    "\"states\":[]",
];
const PDF_WORDS: &[&str] = &[
    "%%EOF",
    "startxref",
    "xref",
    "trailer",
    "obj",
    "endobj",
    "stream",
    "endstream",
    "<<",
    ">>",
    "/ByteRange",
    "/Contents",
    "/Type /Page",
    "/Pages",
    "/Root",
    "/Prev",
    "/Size 0",
    "/Length 99999999",
    "/Kids [",
    "0 0 R",
    "4294967295",
    "-1",
    "/XRefStm",
    "/ObjStm",
    "/Filter /FlateDecode",
    "[0 1 2 3]",
    "<00>",
];
const FORM_WORDS: &[&str] = &[
    "&",
    "=",
    "%",
    "%00",
    "%ZZ",
    "%FF",
    "+",
    "action=sign",
    "consent=yes",
    "typed_name=",
    "csrf=",
    "&&==",
    "%E2%80%AE",
    "typed_name=a&typed_name=b",
    "reason=",
];

/// One mutation of `input` (a copy), with `words` as the dictionary and `others` to splice from.
pub fn mutate(rng: &mut Rng, input: &[u8], words: &[&str], others: &[Vec<u8>]) -> Vec<u8> {
    let mut v = input.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let len = v.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(i..i, bytes);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                v.drain(i..i + n);
            }
            4 if len > 0 => {
                // duplicate a range somewhere else
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(256));
                let piece = v[i..i + n].to_vec();
                let j = rng.below(len + 1);
                v.splice(j..j, piece);
            }
            5 | 6 => {
                let i = rng.below(len + 1);
                let w = rng.pick(words).as_bytes().to_vec();
                v.splice(i..i, w);
            }
            7 if !others.is_empty() => {
                // splice: the head of this input, the tail of another
                let o = rng.pick(others);
                let i = rng.below(len + 1);
                let j = rng.below(o.len() + 1);
                v.truncate(i);
                v.extend_from_slice(&o[j..]);
            }
            8 if len > 0 => {
                let i = rng.below(len);
                v.truncate(i);
            }
            _ => {}
        }
    }
    v
}

/// Runs `exec` `n` times on inputs from `make`; panics and oracle failures are counted.
fn run_loop(
    target: &str,
    n: u64,
    seed: u64,
    mut make: impl FnMut(&mut Rng) -> Vec<u8>,
    exec: impl Fn(&[u8]) -> Result<(), String>,
) -> Outcome {
    let mut rng = Rng::new(seed);
    let mut out = Outcome { target: target.to_string(), ..Outcome::default() };
    let start = Instant::now();
    for _ in 0..n {
        let input = make(&mut rng);
        let (t, cpu) = (Instant::now(), thread_cpu());
        let r = catch_unwind(AssertUnwindSafe(|| exec(&input)));
        out.slowest = out.slowest.max(thread_cpu().saturating_sub(cpu));
        out.slowest_wall = out.slowest_wall.max(t.elapsed());
        out.executions += 1;
        let failure = match r {
            Ok(Ok(())) => None,
            Ok(Err(why)) => {
                out.wrong += 1;
                Some(why)
            }
            Err(_) => {
                out.panics += 1;
                Some("panicked".to_string())
            }
        };
        if let Some(why) = failure
            && out.first_failure.is_none()
        {
            out.first_failure = Some((input, why));
        }
    }
    out.elapsed = start.elapsed();
    out
}

/// CPU time this thread has used (CLOCK_THREAD_CPUTIME_ID).
#[allow(unsafe_code)] // one libc call; std has no per-thread CPU clock
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a valid pointer; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(u64::try_from(ts.tv_sec).unwrap_or(0), u32::try_from(ts.tv_nsec).unwrap_or(0))
}

pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Every file of `tests/corpus/<name>/`, sorted so a seed replays the same run.
pub fn corpus(name: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir().join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).collect()
}

pub const TARGETS: &[&str] = &["intake", "token", "render", "pdf-append", "seal-verify", "form"];

/// Runs one target for `n` executions from `seed`.
pub fn run(target: &str, n: u64, seed: u64) -> Outcome {
    match target {
        "intake" => intake(n, seed),
        "token" => token(n, seed),
        "render" => render(n, seed),
        "pdf-append" => pdf_append(n, seed),
        "seal-verify" => seal_verify(n, seed),
        "form" => form(n, seed),
        other => panic!("unknown fuzz target {other:?}; targets: {}", TARGETS.join(", ")),
    }
}

/// The intake parser on mutated intakes (raw bytes, and as text when they are UTF-8).
fn intake(n: u64, seed: u64) -> Outcome {
    let seeds = corpus("intake");
    run_loop(
        "intake",
        n,
        seed,
        |rng| {
            let base = rng.pick(&seeds).clone();
            mutate(rng, &base, JSON_WORDS, &seeds)
        },
        |input| {
            let text = String::from_utf8_lossy(input);
            let _ = countersign::app::load_intake(&text);
            Ok(())
        },
    )
}

fn test_ring() -> KeyRing {
    KeyRing::new(vec![
        ("old".to_string(), Secret::new(vec![7u8; 32])),
        ("k2".to_string(), Secret::new((0u8..48).collect())),
    ])
    .expect("key ring")
}

/// The token parser and verifier: mutations of real tokens, as text and as decoded payloads.
/// Oracle: only a token byte-for-byte equal to an issued one verifies.
fn token(n: u64, seed: u64) -> Outcome {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let ring = test_ring();
    let mut issued: Vec<String> = Vec::new();
    for (i, agreement) in ["ag_0123456789abcdef", "ag_x", &"a".repeat(64)].iter().enumerate() {
        for purpose in [Purpose::Sign, Purpose::Download] {
            issued.push(ring.issue(agreement, i as u16, purpose, 2_000_000_000, i as u32 * 7));
        }
    }
    issued.extend(corpus("token").iter().map(|b| String::from_utf8_lossy(b).trim().to_string()));
    let seeds: Vec<Vec<u8>> = issued.iter().map(|t| t.as_bytes().to_vec()).collect();
    let words = &["-", "_", "=", "A", "/", "+", "%2e", "\u{0}", "..", "AAAA"];
    run_loop(
        "token",
        n,
        seed,
        |rng| {
            let base = rng.pick(&seeds).clone();
            if rng.chance(2) {
                // structure-aware: mutate the decoded payload and tag, then re-encode
                let raw = URL_SAFE_NO_PAD.decode(&base).unwrap_or_default();
                URL_SAFE_NO_PAD.encode(mutate(rng, &raw, &["\u{0}", "\u{ff}"], &[])).into_bytes()
            } else {
                mutate(rng, &base, words, &seeds)
            }
        },
        |input| {
            let Ok(text) = std::str::from_utf8(input) else { return Ok(()) };
            match ring.verify(text, 1_900_000_000) {
                Ok(c) if !issued.iter().any(|t| t == text) => Err(format!("an altered token verified: {c:?}")),
                _ => Ok(()),
            }
        },
    )
}

/// Arbitrary text for free-text fields: printable runs, template and markup syntax, HTML,
/// controls, bidi marks, long words.
pub fn hostile_text(rng: &mut Rng) -> String {
    const PIECES: &[&str] = &[
        "{{ intake.kind }}",
        "{% raw %}",
        "{% endraw %}",
        "{# c #}",
        "{{",
        "}}",
        "{%",
        "%}",
        "<b>",
        "</p>",
        "<script>alert(1)</script>",
        "&amp;",
        "&",
        "**bold**",
        "_x_",
        "# Heading",
        "- item",
        "1. one",
        "> quote",
        "`code`",
        "```",
        "[a](http://x)",
        "![i](x.png)",
        "|a|b|",
        "---",
        "\\",
        "\u{202e}",
        "\u{200b}",
        "\u{0}",
        "\u{7}",
        "\r\n",
        "\t",
        "Zoë",
        "Łukasz",
        "ß",
        "–",
        "“q”",
        "ＡＢ",
        "😀",
        "ﬁ",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "Acme, Inc.",
        " ",
        "(",
        ")",
        "'",
        "\"",
        "$",
        "%",
        "^",
        "~",
        "|",
    ];
    let mut s = String::new();
    for _ in 0..1 + rng.below(8) {
        if rng.chance(3) {
            let len = 1 + rng.below(20);
            for _ in 0..len {
                // mostly ASCII letters and spaces, sometimes any scalar value
                let c = match rng.below(10) {
                    0 => char::from_u32(rng.below(0x3_0000) as u32).unwrap_or('?'),
                    1 => ' ',
                    _ => (b'a' + rng.below(26) as u8) as char,
                };
                s.push(c);
            }
        } else {
            let piece: &&str = rng.pick(PIECES);
            s.push_str(piece);
        }
    }
    s
}

const FREE_TEXT: &[&str] = &[
    "/covered_entity/legal_name",
    "/covered_entity/address/street",
    "/covered_entity/address/city",
    "/covered_entity/privacy_contact/name",
    "/business_associate/legal_name",
    "/business_associate/address/street",
    "/business_associate/security_contact/name",
    "/signers/0/name",
    "/signers/0/title",
    "/signers/1/name",
    "/signers/1/title",
    "/services",
    "/use_cases/0",
    "/use_cases/1",
    "/subcontractors/0/legal_name",
    "/subcontractors/0/services",
    "/data_recipient/legal_name",
    "/data_recipient/privacy_contact/name",
    "/project_description",
    "/permitted_recipients/0",
    "/data_elements/0",
    "/exhibits/0/title",
    "/exhibits/0/text",
];

/// The template renderer on intakes that parse, with arbitrary strings in free-text fields.
/// A value the parser refuses (say, a control character) is replaced by its printable
/// characters, so nearly every case reaches the renderer. Oracle: an intake that parses
/// renders to a PDF (a template error on valid input is a bug).
fn render(n: u64, seed: u64) -> Outcome {
    let renderer = Renderer::builtin().expect("templates");
    let bases: Vec<serde_json::Value> =
        corpus("intake").iter().filter_map(|b| serde_json::from_slice(b).ok()).collect();
    let bases: Vec<serde_json::Value> =
        bases.into_iter().filter(|v| countersign::app::load_intake(&v.to_string()).is_ok()).collect();
    assert!(!bases.is_empty(), "the intake corpus has valid intakes");
    let parsed = std::cell::Cell::new(0u64);
    let mut out = run_loop(
        "render",
        n,
        seed,
        |rng| {
            let mut v = rng.pick(&bases).clone();
            for _ in 0..1 + rng.below(4) {
                let field = rng.pick(FREE_TEXT);
                let mut text = hostile_text(rng);
                if rng.chance(4) {
                    text.retain(|c| !c.is_control());
                }
                if let Some(slot) = v.pointer_mut(field) {
                    *slot = serde_json::Value::String(text);
                }
            }
            v.to_string().into_bytes()
        },
        |input| {
            let text = std::str::from_utf8(input).map_err(|e| e.to_string())?;
            match countersign::app::load_intake(text) {
                Ok(intake) => {
                    parsed.set(parsed.get() + 1);
                    let mode = if input.len() % 2 == 0 { Mode::Draft } else { Mode::ForSignature };
                    let r = renderer.render(&intake, Options { mode, version: 1 }).map_err(|e| e.to_string())?;
                    if !r.pdf.starts_with(b"%PDF-") {
                        return Err("rendered bytes are not a PDF".into());
                    }
                    Ok(())
                }
                Err(_) => Ok(()),
            }
        },
    );
    // how many cases reached the renderer is part of the figure
    out.target = format!("render ({} of the cases parsed and rendered)", parsed.get());
    out
}

/// Real documents: a draft, a document for signature, the same with pages appended, and that
/// sealed; plus any committed PDFs.
pub struct PdfSeeds {
    pub docs: Vec<Vec<u8>>,
    pub appendix: Vec<u8>,
    pub keys: SealKeys,
    _dir: tempfile::TempDir,
}

pub fn pdf_seeds() -> PdfSeeds {
    let r = Renderer::builtin().expect("templates");
    let intakes = corpus("intake");
    let mut rendered = Vec::new();
    for text in intakes.iter().filter_map(|b| std::str::from_utf8(b).ok()) {
        if let Ok(i) = countersign::app::load_intake(text) {
            rendered.push(r.render(&i, Options { mode: Mode::ForSignature, version: 1 }).expect("renders").pdf);
        }
        if rendered.len() == 2 {
            break;
        }
    }
    let appendix = rendered.last().expect("a rendered PDF").clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = SealKeys::load_or_create(dir.path()).expect("seal keys");
    let appended = countersign::pdf::append::append_pages(&rendered[0], &appendix).expect("appends");
    let sealed = countersign::seal::seal(&appended, &keys, 1_800_000_000).expect("seals");
    let mut docs = vec![rendered[0].clone(), appended, sealed];
    docs.extend(corpus("pdf"));
    PdfSeeds { docs, appendix, keys, _dir: dir }
}

/// The PDF appender on mutated real PDFs. Oracle: on success the input is a byte prefix of
/// the output (an incremental update never rewrites what was signed).
fn pdf_append(n: u64, seed: u64) -> Outcome {
    let s = pdf_seeds();
    run_loop(
        "pdf-append",
        n,
        seed,
        |rng| {
            let base = rng.pick(&s.docs).clone();
            mutate(rng, &base, PDF_WORDS, &s.docs)
        },
        |input| match countersign::pdf::append::append_pages(input, &s.appendix) {
            Ok(out) if !out.starts_with(input) => Err("the appended file does not start with the input".into()),
            _ => Ok(()),
        },
    )
}

/// The seal verifier on mutated sealed PDFs. Oracle: a change inside the signed byte range
/// (the sealed file's first bytes up to the signature) is never reported valid.
fn seal_verify(n: u64, seed: u64) -> Outcome {
    let s = pdf_seeds();
    let sealed = s.docs[2].clone();
    // the first signed byte range ends where `/Contents <` begins; bytes before it are signed
    let signed_prefix = sealed.windows(10).rposition(|w| w == b"/Contents ").unwrap_or(0);
    run_loop(
        "seal-verify",
        n,
        seed,
        |rng| {
            let base = if rng.chance(4) { rng.pick(&s.docs).clone() } else { sealed.clone() };
            mutate(rng, &base, PDF_WORDS, &s.docs)
        },
        |input| {
            let report = countersign::seal::verify(input, &s.keys);
            let changed_early = input.len() >= signed_prefix && input[..signed_prefix] != sealed[..signed_prefix];
            if report.valid && changed_early && input.len() == sealed.len() {
                return Err(format!("a file changed in its signed bytes verified: {}", report.detail));
            }
            Ok(())
        },
    )
}

/// The signer pages' form parser (axum `Form` over the page's own `SignSubmit`): mutated
/// `application/x-www-form-urlencoded` bodies.
fn form(n: u64, seed: u64) -> Outcome {
    use axum::extract::FromRequest;
    let seeds = corpus("form");
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    run_loop(
        "form",
        n,
        seed,
        |rng| {
            let base = rng.pick(&seeds).clone();
            mutate(rng, &base, FORM_WORDS, &seeds)
        },
        |input| {
            let req = axum::http::Request::builder()
                .method("POST")
                .uri("/sign/x")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(axum::body::Body::from(input.to_vec()))
                .map_err(|e| e.to_string())?;
            let _ = rt.block_on(axum::Form::<countersign::http::sign::SignSubmit>::from_request(req, &()));
            Ok(())
        },
    )
}
