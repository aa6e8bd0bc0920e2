//! The archive search index: finds agreements by counterparty, kind, state, status, dates and
//! free text, page by page, without decoding stored records per request.
//!
//! The index lives in memory. The caller builds it at start from the store (one [`Entry`] per
//! agreement, from the record and its intake facts) or reads it from the snapshot the last
//! clean stop wrote ([`Index::read_snapshot`], `app::snapshot`), wraps it in a `RwLock`, and calls
//! [`Index::upsert`] / [`Index::remove`] after every committed change. It keeps of each entry
//! only what it filters and sorts on, and answers ids: [`Index::search`] the page's
//! ([`Hits`]), [`Index::export`] every match's, in order. The app layer (`app::listing`) reads
//! those entries from the store to make the [`Page`] of `GET /api/v1/agreements` and, with
//! [`to_csv`], `GET /api/v1/agreements/export.csv`.
//!
//! # Matching
//!
//! Names are compared after [`fold`] (lowercase, accents stripped, `ß`→`ss`, `ø`→`o`, …) with runs
//! of whitespace collapsed to one space, so `Nunez`, `nuñez` and `NUNEZ` all find `Marta Núñez
//! Clinic`. The folded strings are computed once per entry, at [`Index::upsert`].
//!
//! A search is one linear scan. Dates, timestamps, kind, status and a state bit mask sit in a
//! compact array that is read first; the text filters only for rows that pass those. A row
//! holds its folded title and parties as three numbers in a dictionary of distinct strings
//! ([`Dict`]): a query's `counterparty` and `q` terms are looked for once in each distinct
//! string before the scan (whatever the other filters; the dictionary is small where names
//! repeat), with a substring finder built once per query, and a row then passes or not by its
//! numbers. The ids live in one buffer ([`Ids`]): at 100,000 rows, one allocation per row made
//! a text search mostly cache misses (`perf`: 78 % of a `counterparty` search through the
//! server). Matches after the cursor go through a bounded selection: once `limit` are kept, a
//! match costs one comparison with the worst kept, and only the page is sorted. 100,000 entries
//! answer in a few milliseconds, `total` included (`benches/search.rs`).
//!
//! | parameter        | matches                                                                      |
//! |------------------|------------------------------------------------------------------------------|
//! | `counterparty`   | folded substring of either party's legal name                                |
//! | `q`              | every whitespace-separated term is a folded substring of the title or a party |
//! | `kind`           | `baa` or `dua` (case-insensitive)                                            |
//! | `state`          | any of the entry's intake state codes (two letters, case-insensitive)        |
//! | `status`         | the snake_case status (`executed`, `partially_signed`, …)                    |
//! | `effective_from` | `effective_date >= value` (YYYY-MM-DD)                                       |
//! | `effective_to`   | `effective_date <= value` (YYYY-MM-DD)                                       |
//! | `renewal_before` | `renewal_date < value`; entries without a renewal date never match           |
//!
//! A parameter given as an empty (or all-whitespace) string counts as not given, as HTML forms
//! send empty fields. Entry dates are expected as YYYY-MM-DD: an `effective_date` that is not
//! sorts and filters as 0000-00-00, a `renewal_date` that is not as absent.
//!
//! # Order and cursor
//!
//! `sort` is one of `effective_date`, `renewal_date`, `updated_at`, `counterparty`, each
//! optionally prefixed by `-` for descending; the default is `-updated_at`. Ties are broken by
//! `id` ascending, so the order is total. Entries without a renewal date come last under both
//! `renewal_date` and `-renewal_date`. `counterparty` orders by the folded legal names, first
//! party then second: when the organisation running Countersign is always on the same side, the
//! constant name drops out and the order is that of the other party.
//!
//! `next_cursor` is a keyset cursor: opaque base64url of the sort, the last item's sort key and
//! its id. The next page is every entry that matches *at the time of that request* and sorts
//! strictly after that (key, id), so:
//!
//! * entries that match and do not change while a client pages are each returned exactly once,
//!   in order, whatever is inserted, updated or removed elsewhere meanwhile (a cursor is not an
//!   offset, so nothing shifts);
//! * an entry inserted, or updated, so that it sorts before the cursor is not returned by later
//!   pages (no repeat); one inserted or moved after the cursor is returned when its turn comes;
//! * an entry whose key crosses the cursor while a client pages is returned twice (moved from
//!   before to after) or not at all (after to before). Under the default `-updated_at`, every
//!   update moves an entry to the front, so an entry updated mid-walk that was not yet returned is
//!   not returned by that walk;
//! * an entry updated so that it starts or stops matching the filters is treated like an
//!   insertion or a removal at its position;
//! * `total` counts every match at the time of each request, so it changes when matches do;
//! * removing the entry a cursor points at does not matter: the cursor keeps its key, not a
//!   position.
//!
//! `next_cursor` is `null` exactly when nothing matches after the page's last item. A cursor is
//! checked against the sort (one made for another sort is a `/cursor` error) but not against
//! the filters: with other filters it still means "after this key". It is opaque, not secret: it
//! decodes to the last item's id and sort key (for `counterparty`, the folded legal names).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::BuildHasher;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use memchr::memmem::Finder;
use serde::{Deserialize, Serialize};

use crate::domain::agreement::Life;

mod snapshot;

/// Default page size.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest page size.
pub const MAX_LIMIT: usize = 500;
/// Longest `q` or `counterparty` accepted, in characters.
pub const MAX_TEXT: usize = 200;
/// Longest cursor accepted, in bytes.
const MAX_CURSOR: usize = 2048;

/// The kinds of agreement.
pub const KINDS: [&str; 2] = ["baa", "dua"];
/// The snake_case statuses (`domain::agreement::Status::as_str`).
pub const STATUSES: &[&str] = &[
    "draft",
    "awaiting_approval",
    "sent",
    "partially_signed",
    "executed",
    "declined",
    "voided",
    "expired",
    "terminated",
    "closed",
];
/// The accepted values of `sort`.
pub const SORTS: [&str; 8] = [
    "effective_date",
    "-effective_date",
    "renewal_date",
    "-renewal_date",
    "updated_at",
    "-updated_at",
    "counterparty",
    "-counterparty",
];

/// An agreement as the index takes it in and as a page lists it (the app layer builds it from
/// the stored summary: `app::service::entry`). The index keeps only what it filters and sorts
/// on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    /// `baa` or `dua`.
    pub kind: String,
    pub title: String,
    /// Legal names: upstream party, downstream party.
    pub parties: [String; 2],
    /// snake_case status.
    pub status: String,
    /// Intake state codes.
    pub states: Vec<String>,
    /// YYYY-MM-DD.
    pub effective_date: String,
    /// YYYY-MM-DD.
    pub renewal_date: Option<String>,
    /// Unix seconds.
    pub executed_at: Option<u64>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub updated_at: u64,
    pub final_sha256: Option<String>,
    /// Who created it (`sales` keys list their own): the index keeps it, so that list is an
    /// index filter ([`Query::created_by`]), not a decode of every agreement. Not part of the
    /// API's entry shape.
    #[serde(default, skip_serializing)]
    pub created_by: String,
}

/// The query string of `GET /api/v1/agreements` (and of `export.csv`, which ignores `limit`
/// and `cursor`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    pub counterparty: Option<String>,
    pub kind: Option<String>,
    pub state: Option<String>,
    pub status: Option<String>,
    pub effective_from: Option<String>,
    pub effective_to: Option<String>,
    pub renewal_before: Option<String>,
    pub q: Option<String>,
    pub sort: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// Only the entries this creator made (a `sales` viewer lists their own): set by the
    /// caller, never read from a query string.
    #[serde(skip)]
    pub created_by: Option<String>,
}

/// One page of ids, as the index answers a search: the caller reads their entries from the
/// store (`app::listing`'s `Service::search` makes the [`Page`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hits {
    pub ids: Vec<String>,
    /// Every match, on every page.
    pub total: usize,
    /// Pass as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// One page of results.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub items: Vec<Entry>,
    /// Every match, on every page.
    pub total: usize,
    /// Pass as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// The searchable set of agreements. Not synchronised: the caller wraps it in a `RwLock`.
#[derive(Debug, Default)]
pub struct Index {
    /// What every search reads first, in one compact array: the scan chases no pointer until a
    /// row passes the fixed-size filters.
    hot: Vec<Hot>,
    /// Each row's folded title, first and second party, as positions in `dict`, at the same
    /// positions as `hot`.
    parts: Vec<[u32; 3]>,
    /// Every distinct folded title and party name the rows hold, once.
    dict: Dict,
    /// The ids, at the same positions as `hot`.
    ids: Ids,
    /// The rest of each row, at the same positions as `hot`.
    rows: Vec<Row>,
    /// The state codes (trimmed, uppercased) that have no bit of their own in
    /// `Hot::states_mask`, by row id, for the rows that have any (few or none: every US state,
    /// DC and territory has its own bit).
    odd_states: HashMap<Box<str>, Box<[Box<str>]>>,
    /// Every creator a row names, once: rows hold a position here. Creators are people and
    /// API keys, a few hundred at most, so the list only grows.
    creators: Vec<Box<str>>,
    creator_at: HashMap<Box<str>, u32>,
    /// Row positions, hashed by the rows' ids: each id is kept once, in `ids`.
    by_id: hashbrown::HashTable<usize>,
    hasher: std::hash::RandomState,
    /// Parent agreement id → the ids of the agreements naming it as their parent, in id order
    /// (the subcontractor chain, see [`super::lifecycle`]).
    children: HashMap<Box<str>, std::collections::BTreeSet<String>>,
}

/// An entry ready to go into an index ([`Index::prepare`]).
#[derive(Debug)]
pub struct Prepared {
    hot: Hot,
    id: String,
    /// The folded title, first party and second party.
    parts: [String; 3],
    created_at: u64,
    created_by: String,
    odd_states: Option<Box<[Box<str>]>>,
    life: Life,
}

/// The fixed-size facts of an entry that searches filter and sort on.
#[derive(Debug, Clone, Copy)]
struct Hot {
    updated_at: u64,
    /// The first 8 bytes of the folded names (`party0 \n party1`), big-endian and
    /// zero-padded: orders most pairs of `counterparty` keys without reading the strings.
    names_prefix: u64,
    /// Bit [`state_bit`] set for each state code: a quick "certainly not" for `state`.
    states_mask: u64,
    /// YYYYMMDD; 0 when `effective_date` is not YYYY-MM-DD.
    effective: u32,
    /// YYYYMMDD; 0 when `renewal_date` is absent (or not YYYY-MM-DD).
    renewal: u32,
    /// Position in [`KINDS`], `u8::MAX` for any other kind.
    kind: u8,
    /// Position in [`STATUSES`], `u8::MAX` for any other status.
    status: u8,
}

/// Whether a buffer holding `dead` bytes nothing uses is worth rewriting.
fn worth_compacting(dead: usize, len: usize) -> bool {
    dead > 1 << 16 && dead > len / 2
}

/// Rewrites `buf` with only what `spans` point at, in their order, once dead bytes are most of
/// it (amortised O(1) per byte appended).
fn compact(buf: &mut String, spans: &mut [Span], dead: &mut usize) {
    if !worth_compacting(*dead, buf.len()) {
        return;
    }
    let mut out = String::with_capacity(buf.len() - *dead);
    for span in spans {
        let start = out.len();
        out.push_str(&buf[span.start..span.end]);
        *span = Span { start, end: out.len() };
    }
    *buf = out;
    *dead = 0;
}

/// Every row's id, in one buffer: no row holds a heap block of its own, so the index is a few
/// large blocks, which the allocator returns whole, rather than 100,000s of small ones pinning
/// the pages around them. A replaced or removed row's id stays in the buffer, counted as dead,
/// until dead bytes outweigh live ones and the buffer is rewritten in row order (amortised
/// O(1) per change).
#[derive(Debug, Default)]
struct Ids {
    buf: String,
    /// Per row: where its id is in `buf`.
    spans: Vec<Span>,
    dead: usize,
}

#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    fn len(self) -> usize {
        self.end - self.start
    }
}

impl Ids {
    fn append(&mut self, id: &str) -> Span {
        let start = self.buf.len();
        self.buf.push_str(id);
        Span { start, end: self.buf.len() }
    }

    fn push(&mut self, id: &str) {
        let span = self.append(id);
        self.spans.push(span);
    }

    fn swap_remove(&mut self, i: usize) {
        self.dead += self.spans.swap_remove(i).len();
        self.compact();
    }

    /// Rewrites the buffer without dead bytes once they are most of it.
    fn compact(&mut self) {
        compact(&mut self.buf, &mut self.spans, &mut self.dead);
    }

    fn id(&self, i: usize) -> &str {
        let s = self.spans[i];
        &self.buf[s.start..s.end]
    }
}

/// Every distinct folded title and party name the rows hold, once, each with a number (its
/// position) that the rows hold instead: a dictionary, as column stores keep repeated values.
/// The organisation running Countersign is a party to nearly every agreement, a kind's title
/// is mostly the same, and a vendor's name comes back with each of its agreements. At 100,000
/// seeded agreements (their parties drawn from a few thousand names) the rows' text took
/// 10.7 MB held row by row, and the dictionary holds ~50 KB. A distinct string costs ~28
/// bytes beside its text (its span, count and hash slot). Were every title and party
/// distinct, the index would be ~8 MB larger at 100,000 than held row by row; with the titles
/// and the organisation's name shared and every vendor's name its own, ~3 MB smaller.
///
/// A text filter reads each distinct string once per query ([`Plan::text_filter`]), and a
/// row is then tested by its three numbers.
///
/// A string is counted once per row part naming it and dropped when none does; its number is
/// reused. Its bytes stay in the buffer, counted as dead, until dead bytes outweigh live ones
/// and the buffer is rewritten (the numbers do not change).
#[derive(Debug, Default)]
struct Dict {
    buf: String,
    /// Per number: where its string is in `buf`; empty for a free number.
    spans: Vec<Span>,
    /// Per number: how many row parts name it; 0 for a free number. A count that reaches
    /// `u32::MAX` stays there (its string is kept for good).
    refs: Vec<u32>,
    free: Vec<u32>,
    /// The numbers in use, hashed by their strings.
    at: hashbrown::HashTable<u32>,
    hasher: std::hash::RandomState,
    dead: usize,
}

impl Dict {
    fn get(&self, n: u32) -> &str {
        let s = self.spans[n as usize];
        &self.buf[s.start..s.end]
    }

    /// How many numbers are in use or free: every number is below it.
    fn len(&self) -> usize {
        self.spans.len()
    }

    /// The number in use whose string is `s` (`hash` its hash).
    fn find(&self, hash: u64, s: &str) -> Option<u32> {
        self.at.find(hash, |&n| self.get(n) == s).copied()
    }

    /// Hashes number `n` (`hash` its string's hash), which is not hashed yet.
    fn link(&mut self, hash: u64, n: u32) {
        let (buf, spans, hasher) = (&self.buf, &self.spans, &self.hasher);
        self.at.insert_unique(hash, n, |&m| {
            let sp = spans[m as usize];
            hasher.hash_one(&buf[sp.start..sp.end])
        });
    }

    /// The number of `s`, counted once more; added when new.
    fn add(&mut self, s: &str) -> u32 {
        let hash = self.hasher.hash_one(s);
        if let Some(n) = self.find(hash, s) {
            let r = &mut self.refs[n as usize];
            *r = r.saturating_add(1);
            return n;
        }
        let start = self.buf.len();
        self.buf.push_str(s);
        let span = Span { start, end: self.buf.len() };
        let n = match self.free.pop() {
            Some(n) => {
                self.spans[n as usize] = span;
                self.refs[n as usize] = 1;
                n
            }
            None => {
                // More than 4 billion distinct strings cannot be held in memory anyway.
                debug_assert!(self.spans.len() < u32::MAX as usize, "numbers for every string");
                let n = u32::try_from(self.spans.len()).unwrap_or(u32::MAX);
                self.spans.push(span);
                self.refs.push(1);
                n
            }
        };
        self.link(hash, n);
        n
    }

    /// Counts `n` once less; drops its string when nothing names it.
    fn release(&mut self, n: u32) {
        let Some(r) = self.refs.get_mut(n as usize) else { return };
        if *r == u32::MAX || *r == 0 {
            return;
        }
        *r -= 1;
        if *r > 0 {
            return;
        }
        let hash = self.hasher.hash_one(self.get(n));
        if let Ok(slot) = self.at.find_entry(hash, |&m| m == n) {
            slot.remove();
        }
        self.dead += self.spans[n as usize].len();
        self.spans[n as usize] = Span { start: 0, end: 0 };
        self.free.push(n);
        self.compact();
    }

    /// Rewrites the buffer without dead bytes once they are most of it.
    fn compact(&mut self) {
        compact(&mut self.buf, &mut self.spans, &mut self.dead);
    }

    /// Per number, whether its string holds `f`'s needle (free numbers: no).
    fn holding(&self, f: &Finder<'_>) -> Vec<bool> {
        (0..self.spans.len()).map(|n| self.refs[n] > 0 && f.find(self.get(n as u32).as_bytes()).is_some()).collect()
    }
}

/// What a row holds beyond the hot array, its text's numbers and its id: 64 bytes and no heap
/// block of its own (one for a parent's id). The rest of the entry (title, parties, dates as
/// written, digests) is not kept: the store has it, and a search reads it for the page it
/// answers only.
#[derive(Debug)]
struct Row {
    /// Unix seconds (retention counts from it).
    created_at: u64,
    /// Position in `Index::creators`.
    creator: u32,
    /// Renewal, retention and chain facts (see [`super::lifecycle`]).
    life: Life,
}

/// The folded title, first and second party of an entry, and the first 8 bytes of its names
/// (`party0 \n party1`) as [`Hot::names_prefix`] holds them.
fn parts_of(entry: &Entry) -> ([String; 3], u64) {
    let parts = [search_key(&entry.title), search_key(&entry.parties[0]), search_key(&entry.parties[1])];
    let prefix = names_prefix(&parts[1], &parts[2]);
    (parts, prefix)
}

/// [`prefix`] of `party0 \n party1`, without joining them.
fn names_prefix(p0: &str, p1: &str) -> u64 {
    let mut b = [0u8; 8];
    let joined = p0.bytes().chain(std::iter::once(b'\n')).chain(p1.bytes());
    for (slot, byte) in b.iter_mut().zip(joined) {
        *slot = byte;
    }
    u64::from_be_bytes(b)
}

impl Prepared {
    /// The agreement's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn new(entry: Entry, life: Life) -> Prepared {
        let (parts, names_prefix) = parts_of(&entry);
        let mut states_mask = 0;
        let mut odd: Vec<Box<str>> = Vec::new();
        for code in &entry.states {
            let code = code.trim().to_ascii_uppercase();
            let (bit, alone) = state_bit(&code);
            states_mask |= bit;
            if !alone {
                odd.push(code.into());
            }
        }
        let hot = Hot {
            updated_at: entry.updated_at,
            names_prefix,
            states_mask,
            effective: date_num(&entry.effective_date).unwrap_or(0),
            renewal: entry.renewal_date.as_deref().and_then(date_num).unwrap_or(0),
            kind: position_ci(&KINDS, &entry.kind),
            status: position_ci(STATUSES, &entry.status),
        };
        let odd_states = (!odd.is_empty()).then(|| odd.into_boxed_slice());
        Prepared {
            hot,
            id: entry.id,
            parts,
            created_at: entry.created_at,
            created_by: entry.created_by,
            odd_states,
            life,
        }
    }
}

/// One indexed agreement, read in place: its id, status, creator and creation time (the rest
/// of its entry is the store's).
#[derive(Clone, Copy)]
pub struct Listed<'a> {
    index: &'a Index,
    i: usize,
}

/// Its id only: not the index it points into.
impl std::fmt::Debug for Listed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Listed").field(&self.id()).finish()
    }
}

impl<'a> Listed<'a> {
    pub fn id(self) -> &'a str {
        self.index.ids.id(self.i)
    }

    /// The snake_case status; empty for a status not in [`STATUSES`] (the app makes none).
    pub fn status(self) -> &'static str {
        STATUSES.get(usize::from(self.index.hot[self.i].status)).copied().unwrap_or_default()
    }

    /// Unix seconds.
    pub fn created_at(self) -> u64 {
        self.index.rows[self.i].created_at
    }

    /// Who created it.
    pub fn created_by(self) -> &'a str {
        let c = self.index.rows[self.i].creator;
        self.index.creators.get(c as usize).map_or("", |c| c)
    }
    /// Everything the row holds, for tests that compare two indexes.
    #[cfg(test)]
    pub(crate) fn held(self) -> String {
        let row = &self.index.rows[self.i];
        let text = self.index.parts[self.i].map(|n| self.index.dict.get(n));
        format!(
            "{} {:?} {:?} {} {} {:?}",
            self.id(),
            self.index.hot[self.i],
            text,
            row.created_at,
            self.created_by(),
            self.index.odd_states.get(self.id())
        )
    }
}

/// Where `value` is in `list`, ignoring ASCII case; `u8::MAX` when absent.
fn position_ci(list: &[&str], value: &str) -> u8 {
    list.iter().position(|k| k.eq_ignore_ascii_case(value)).and_then(|i| u8::try_from(i).ok()).unwrap_or(u8::MAX)
}

/// The first 8 bytes of `s`, big-endian, zero-padded: for strings without NUL bytes,
/// `prefix(a) < prefix(b)` implies `a < b`, and `a < b` implies `prefix(a) <= prefix(b)`.
fn prefix(s: &str) -> u64 {
    let mut b = [0u8; 8];
    let n = s.len().min(8);
    b[..n].copy_from_slice(&s.as_bytes()[..n]);
    u64::from_be_bytes(b)
}

/// The states, DC and the inhabited territories, sorted: each has its own bit of
/// `Hot::states_mask`, so for these codes the mask alone answers `state` exactly and the search
/// does not read the row. Any other code shares one of the last eight bits and is checked
/// against the row's codes.
const STATE_CODES: [&str; 56] = [
    "AK", "AL", "AR", "AS", "AZ", "CA", "CO", "CT", "DC", "DE", "FL", "GA", "GU", "HI", "IA", "ID", "IL", "IN", "KS",
    "KY", "LA", "MA", "MD", "ME", "MI", "MN", "MO", "MP", "MS", "MT", "NC", "ND", "NE", "NH", "NJ", "NM", "NV", "NY",
    "OH", "OK", "OR", "PA", "PR", "RI", "SC", "SD", "TN", "TX", "UT", "VA", "VI", "VT", "WA", "WI", "WV", "WY",
];

/// A code's bit in `Hot::states_mask`, and whether that bit is its alone.
fn state_bit(code: &str) -> (u64, bool) {
    match STATE_CODES.binary_search(&code) {
        Ok(i) => (1 << i, true),
        Err(_) => {
            let h = code.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
            (1 << (STATE_CODES.len() as u32 + h % (64 - STATE_CODES.len() as u32)), false)
        }
    }
}

impl Index {
    pub fn new() -> Index {
        Index::default()
    }

    /// Adds the entry, or replaces the one with the same id (without lifecycle facts: see
    /// [`Index::upsert_life`]).
    pub fn upsert(&mut self, e: Entry) {
        self.upsert_life(e, Life::default());
    }

    /// Adds the entry with its lifecycle facts (renewal, retention, parent), or replaces the one
    /// with the same id.
    pub fn upsert_life(&mut self, e: Entry, life: Life) {
        self.upsert_prepared(Index::prepare(e, life));
    }

    /// The work of [`Index::upsert_life`] that needs no index (folding the text, the fixed-size
    /// facts): done apart, on any thread, so a rebuild can prepare rows in parallel.
    pub fn prepare(e: Entry, life: Life) -> Prepared {
        Prepared::new(e, life)
    }

    /// [`Index::upsert_life`] of a row prepared by [`Index::prepare`].
    ///
    /// What the index keeps of `p` is allocated here, on the thread that holds the index: the
    /// parent's id and the odd state codes are copied, not moved. A row prepared on another
    /// thread was allocated in that thread's malloc arena; kept there, the few thousand parent
    /// ids of a rebuild would each pin a page among the freed decoding garbage of the
    /// preparing threads, which `malloc_trim` could then not return.
    pub fn upsert_prepared(&mut self, p: Prepared) {
        let creator = self.creator(&p.created_by);
        let mut life = p.life;
        life.parent = life.parent.as_deref().map(Box::from);
        let odd = p.odd_states.map(|codes| codes.iter().map(|c| Box::from(&**c)).collect());
        let row = Row { created_at: p.created_at, creator, life };
        // Counted before an old row's are released: a string both name is kept, not dropped
        // and added again.
        let parts = p.parts.each_ref().map(|t| self.dict.add(t));
        self.insert_row(p.hot, &p.id, parts, odd, row);
    }

    /// The position of `who` in `creators`, added when new.
    fn creator(&mut self, who: &str) -> u32 {
        if let Some(&c) = self.creator_at.get(who) {
            return c;
        }
        // More than 4 billion creators cannot be held anyway.
        let c = u32::try_from(self.creators.len()).unwrap_or(u32::MAX);
        self.creators.push(who.into());
        self.creator_at.insert(who.into(), c);
        c
    }

    /// Adds a row with its fixed-size facts, folded title and parties (dictionary numbers,
    /// already counted for it) and odd state codes, or replaces the one with the same id.
    fn insert_row(&mut self, hot: Hot, id: &str, parts: [u32; 3], odd: Option<Box<[Box<str>]>>, row: Row) {
        if let Some(p) = &row.life.parent {
            self.children.entry(p.clone()).or_default().insert(id.to_string());
        }
        match odd {
            Some(codes) => {
                self.odd_states.insert(id.into(), codes);
            }
            None => {
                self.odd_states.remove(id);
            }
        }
        match self.position(id) {
            Some(i) => {
                self.hot[i] = hot;
                for n in std::mem::replace(&mut self.parts[i], parts) {
                    self.dict.release(n);
                }
                let old = std::mem::replace(&mut self.rows[i], row);
                let now = self.rows[i].life.parent.clone();
                self.unlink_child(id, &old, now.as_deref());
            }
            None => {
                let (ids, hasher) = (&self.ids, &self.hasher);
                self.by_id.insert_unique(hasher.hash_one(id), self.rows.len(), |&j| hasher.hash_one(ids.id(j)));
                self.hot.push(hot);
                self.parts.push(parts);
                self.ids.push(id);
                self.rows.push(row);
            }
        }
    }

    /// Drops `old` (the row of `id`) from its parent's children unless it still names that
    /// parent (`now`).
    fn unlink_child(&mut self, id: &str, old: &Row, now: Option<&str>) {
        let Some(p) = old.life.parent.as_deref() else { return };
        if now == Some(p) {
            return;
        }
        if let Some(set) = self.children.get_mut(p) {
            set.remove(id);
            if set.is_empty() {
                self.children.remove(p);
            }
        }
    }

    /// Removes the entry with this id, if any.
    pub fn remove(&mut self, id: &str) {
        let ids = &self.ids;
        let Ok(slot) = self.by_id.find_entry(self.hasher.hash_one(id), |&i| ids.id(i) == id) else { return };
        let (i, _) = slot.remove();
        let last = self.rows.len() - 1;
        self.hot.swap_remove(i);
        for n in self.parts.swap_remove(i) {
            self.dict.release(n);
        }
        self.ids.swap_remove(i);
        self.odd_states.remove(id);
        let old = self.rows.swap_remove(i);
        self.unlink_child(id, &old, None);
        if i < self.rows.len() {
            // The last row moved to `i`: its slot says `last`, and is there (every row has one).
            let moved = self.ids.id(i);
            let slot = self.by_id.find_mut(self.hasher.hash_one(moved), |&j| j == last);
            debug_assert!(slot.is_some(), "the moved row {moved} has a slot");
            if let Some(p) = slot {
                *p = i;
            }
        }
    }

    /// Where the row with this id is.
    fn position(&self, id: &str) -> Option<usize> {
        let ids = &self.ids;
        self.by_id.find(self.hasher.hash_one(id), |&i| ids.id(i) == id).copied()
    }

    fn listed(&self, i: usize) -> Listed<'_> {
        Listed { index: self, i }
    }

    /// Every entry with its lifecycle facts, in no particular order.
    pub fn lives(&self) -> impl Iterator<Item = (Listed<'_>, &Life)> {
        self.rows.iter().enumerate().map(|(i, r)| (self.listed(i), &r.life))
    }

    /// One entry with its lifecycle facts.
    pub fn get_life(&self, id: &str) -> Option<(Listed<'_>, &Life)> {
        self.position(id).map(|i| (self.listed(i), &self.rows[i].life))
    }

    /// The ids of the entries naming `id` as their parent, in id order.
    pub fn children(&self, id: &str) -> impl Iterator<Item = &str> {
        self.children.get(id).into_iter().flatten().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The agreement with this id, if indexed.
    pub fn get(&self, id: &str) -> Option<Listed<'_>> {
        self.position(id).map(|i| self.listed(i))
    }

    /// Brings renewal dates to `today`. An auto-renewing term rolls forward as days pass, so an
    /// executed agreement's renewal date depends on the day its entry was made (see
    /// `app::service::entry`); rows whose date has moved since get the new one. Returns how
    /// many moved.
    pub fn refresh_renewals(&mut self, today: crate::domain::intake::Date) -> usize {
        let executed = position_ci(STATUSES, "executed");
        let mut moved = 0;
        for (hot, row) in self.hot.iter_mut().zip(&self.rows) {
            if hot.status != executed || !row.life.auto_renew {
                continue;
            }
            let num = row.life.renewal_date(today).map_or(0, |d| d.number());
            if num != hot.renewal {
                hot.renewal = num;
                moved += 1;
            }
        }
        moved
    }

    fn key(&self, i: usize, field: Field) -> Key<'_> {
        let h = &self.hot[i];
        match field {
            Field::EffectiveDate => Key::Num(u64::from(h.effective)),
            Field::RenewalDate => Key::Opt((h.renewal != 0).then_some(u64::from(h.renewal))),
            Field::UpdatedAt => Key::Num(h.updated_at),
            Field::Counterparty => {
                let [_, p0, p1] = self.parts[i];
                Key::Str(h.names_prefix, Names::Row(&self.dict, [p0, p1]))
            }
        }
    }

    fn cmp(&self, sort: Sort, a: usize, b: usize) -> Ordering {
        sort.cmp(self.key(a, sort.field), Lazy::Id(&self.ids, a), self.key(b, sort.field), Lazy::Id(&self.ids, b))
    }

    /// The position of the creator a query asks for: `Ok(None)` when it asks for none,
    /// `Err(())` when it names one no row has (nothing matches).
    fn creator_of(&self, plan: &Plan) -> Result<Option<u32>, ()> {
        match plan.created_by.as_deref() {
            None => Ok(None),
            Some(who) => self.creator_at.get(who).copied().map(Some).ok_or(()),
        }
    }

    fn matches(&self, plan: &Plan, text: &TextFilter, creator: Option<u32>, i: usize) -> bool {
        plan.matches_hot(&self.hot[i])
            && creator.is_none_or(|c| self.rows[i].creator == c)
            && text.matches(self.parts[i])
            && plan.state.as_ref().is_none_or(|(_, code, exact)| {
                *exact || self.odd_states.get(self.ids.id(i)).is_some_and(|codes| codes.iter().any(|s| **s == **code))
            })
    }

    /// One page: `total` counts all matches; `ids` are up to `limit` matches after the cursor,
    /// in order. A query that fails [`Query::validate`] answers an empty page: validate first.
    pub fn search(&self, q: &Query) -> Hits {
        let Ok(plan) = Plan::new(q) else { return Hits::default() };
        let Ok(creator) = self.creator_of(&plan) else { return Hits::default() };
        let text = plan.text_filter(&self.dict);
        let (sort, limit) = (plan.sort, plan.limit);
        let mut total = 0;
        let mut after_cursor = 0;
        // The best `limit` matches after the cursor seen so far, unordered, plus newcomers. Once
        // it has been cut back, `worst` is the last of those kept: a match that does not sort
        // before it cannot be on the page, and costs one comparison.
        let mut best: Vec<usize> = Vec::with_capacity(2 * limit);
        let mut worst: Option<usize> = None;
        for i in 0..self.hot.len() {
            if !self.matches(&plan, &text, creator, i) {
                continue;
            }
            total += 1;
            if let Some(after) = &plan.after
                && sort.cmp(self.key(i, sort.field), Lazy::Id(&self.ids, i), after.key.as_key(), Lazy::Str(&after.id))
                    != Ordering::Greater
            {
                continue;
            }
            after_cursor += 1;
            if let Some(w) = worst
                && self.cmp(sort, i, w) != Ordering::Less
            {
                continue;
            }
            best.push(i);
            if best.len() >= 2 * limit {
                best.select_nth_unstable_by(limit - 1, |&a, &b| self.cmp(sort, a, b));
                best.truncate(limit);
                worst = best.last().copied();
            }
        }
        best.sort_unstable_by(|&a, &b| self.cmp(sort, a, b));
        best.truncate(limit);
        let next_cursor = match best.last() {
            Some(&last) if after_cursor > limit => {
                Some(encode_cursor(sort, self.key(last, sort.field), self.ids.id(last)))
            }
            _ => None,
        };
        Hits { ids: best.into_iter().map(|i| self.ids.id(i).to_owned()).collect(), total, next_cursor }
    }

    /// The ids of every match, in order, for `export.csv`: the filters and `sort` apply;
    /// `limit` and `cursor` do not. A query that fails [`Query::validate`] answers nothing.
    pub fn export(&self, q: &Query) -> Vec<String> {
        let Ok(plan) = Plan::new(q) else { return Vec::new() };
        let Ok(creator) = self.creator_of(&plan) else { return Vec::new() };
        let text = plan.text_filter(&self.dict);
        let mut found: Vec<usize> = (0..self.rows.len()).filter(|&i| self.matches(&plan, &text, creator, i)).collect();
        found.sort_unstable_by(|&a, &b| self.cmp(plan.sort, a, b));
        found.into_iter().map(|i| self.ids.id(i).to_owned()).collect()
    }
}

impl Query {
    /// Checks every parameter; errors name the parameter as a pointer (`/limit`) with a reason.
    pub fn validate(&self) -> Result<(), Vec<(String, String)>> {
        Plan::new(self).map(|_| ())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    EffectiveDate,
    RenewalDate,
    UpdatedAt,
    Counterparty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sort {
    field: Field,
    desc: bool,
}

impl Sort {
    fn parse(s: &str) -> Option<Sort> {
        let (desc, name) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let field = match name {
            "effective_date" => Field::EffectiveDate,
            "renewal_date" => Field::RenewalDate,
            "updated_at" => Field::UpdatedAt,
            "counterparty" => Field::Counterparty,
            _ => return None,
        };
        Some(Sort { field, desc })
    }

    fn name(self) -> &'static str {
        let i = match self.field {
            Field::EffectiveDate => 0,
            Field::RenewalDate => 2,
            Field::UpdatedAt => 4,
            Field::Counterparty => 6,
        };
        SORTS[i + usize::from(self.desc)]
    }

    /// The total order: the key in the sort's direction (missing renewal dates last either
    /// way), then id ascending.
    fn cmp(self, a: Key<'_>, a_id: Lazy<'_>, b: Key<'_>, b_id: Lazy<'_>) -> Ordering {
        let dir = |o: Ordering| if self.desc { o.reverse() } else { o };
        let by_key = match (a, b) {
            (Key::Num(x), Key::Num(y)) => dir(x.cmp(&y)),
            (Key::Str(px, x), Key::Str(py, y)) => dir(px.cmp(&py).then_with(|| x.cmp(&y))),
            (Key::Opt(x), Key::Opt(y)) => match (x, y) {
                (Some(x), Some(y)) => dir(x.cmp(&y)),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            },
            // Keys of one sort are of one shape (the cursor is checked against the sort).
            _ => Ordering::Equal,
        };
        by_key.then_with(|| a_id.get().cmp(b_id.get()))
    }
}

/// A sort key: a date (YYYYMMDD) or a timestamp; a renewal date, missing or not; folded names
/// with their [`prefix`].
#[derive(Debug, Clone, Copy)]
enum Key<'a> {
    Num(u64),
    Opt(Option<u64>),
    Str(u64, Names<'a>),
}

/// A string read only when a comparison gets to it: a row's id (the row is not touched until
/// then), or a given string.
#[derive(Debug, Clone, Copy)]
enum Lazy<'a> {
    Id(&'a Ids, usize),
    Str(&'a str),
}

impl<'a> Lazy<'a> {
    fn get(self) -> &'a str {
        match self {
            Lazy::Id(ids, i) => ids.id(i),
            Lazy::Str(s) => s,
        }
    }
}

/// The `counterparty` sort key, `party0 \n party1` (folded): a row's two parties, read from
/// the dictionary only when a comparison gets to them, or a cursor's, split at its first `\n`.
/// Since `\n` sorts before every character of a folded name, the joined strings are in the
/// order of the pairs, so keys are compared as pairs.
#[derive(Debug, Clone, Copy)]
enum Names<'a> {
    Row(&'a Dict, [u32; 2]),
    Given(&'a str, &'a str),
}

impl Names<'_> {
    fn pair(&self) -> (&str, &str) {
        match *self {
            Names::Row(d, [p0, p1]) => (d.get(p0), d.get(p1)),
            Names::Given(p0, p1) => (p0, p1),
        }
    }

    /// The key as one string, as a cursor carries it.
    fn joined(&self) -> String {
        let (p0, p1) = self.pair();
        format!("{p0}\n{p1}")
    }

    /// Two rows' keys compare by number first: equal numbers are equal strings.
    fn cmp(&self, other: &Names<'_>) -> Ordering {
        if let (Names::Row(d, [a0, a1]), Names::Row(_, [b0, b1])) = (self, other) {
            return match (a0 == b0, a1 == b1) {
                (true, true) => Ordering::Equal,
                (true, false) => d.get(*a1).cmp(d.get(*b1)),
                (false, _) => d.get(*a0).cmp(d.get(*b0)),
            };
        }
        self.pair().cmp(&other.pair())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OwnedKey {
    Num(u64),
    Opt(Option<u64>),
    /// The names' prefix and the names, split at the first `\n`.
    Str(u64, String, String),
}

impl OwnedKey {
    fn as_key(&self) -> Key<'_> {
        match self {
            OwnedKey::Num(n) => Key::Num(*n),
            OwnedKey::Opt(n) => Key::Opt(*n),
            OwnedKey::Str(p, p0, p1) => Key::Str(*p, Names::Given(p0, p1)),
        }
    }
}

#[derive(Debug)]
struct After {
    key: OwnedKey,
    id: String,
}

/// The cursor's payload, before base64url.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CursorRepr {
    /// Format version.
    v: u8,
    /// The sort it was made for.
    s: String,
    /// The last item's key: a number (YYYYMMDD date or unix seconds), `null` (no renewal date)
    /// or a string (folded names).
    k: serde_json::Value,
    /// The last item's id.
    i: String,
}

fn encode_cursor(sort: Sort, key: Key<'_>, id: &str) -> String {
    let k = match key {
        Key::Num(n) | Key::Opt(Some(n)) => serde_json::Value::from(n),
        Key::Opt(None) => serde_json::Value::Null,
        Key::Str(_, s) => serde_json::Value::String(s.joined()),
    };
    let repr = CursorRepr { v: 1, s: sort.name().to_owned(), k, i: id.to_owned() };
    // Serialising strings and numbers cannot fail.
    let json = serde_json::to_vec(&repr).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// Why a `cursor` is refused (the finding's reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum CursorError {
    #[error("not a cursor from this API")]
    Foreign,
    #[error("made for sort={made_for}, not sort={asked}: start again without a cursor")]
    OtherSort { made_for: String, asked: String },
}

fn decode_cursor(cursor: &str, sort: Sort) -> Result<After, CursorError> {
    let foreign = || CursorError::Foreign;
    if cursor.len() > MAX_CURSOR {
        return Err(foreign());
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim_end_matches('=')).map_err(|_| foreign())?;
    let repr: CursorRepr = serde_json::from_slice(&bytes).map_err(|_| foreign())?;
    if repr.v != 1 {
        return Err(foreign());
    }
    if repr.s != sort.name() {
        return Err(CursorError::OtherSort { made_for: repr.s, asked: sort.name().to_string() });
    }
    let key = match (sort.field, repr.k) {
        (Field::EffectiveDate | Field::UpdatedAt, serde_json::Value::Number(n)) => {
            OwnedKey::Num(n.as_u64().ok_or_else(foreign)?)
        }
        (Field::RenewalDate, serde_json::Value::Number(n)) => OwnedKey::Opt(Some(n.as_u64().ok_or_else(foreign)?)),
        (Field::RenewalDate, serde_json::Value::Null) => OwnedKey::Opt(None),
        (Field::Counterparty, serde_json::Value::String(s)) => {
            let (p0, p1) = s.split_once('\n').unwrap_or((&s, ""));
            OwnedKey::Str(prefix(&s), p0.to_owned(), p1.to_owned())
        }
        _ => return Err(foreign()),
    };
    Ok(After { key, id: repr.i })
}

/// A validated query, ready to match rows.
#[derive(Debug)]
struct Plan {
    /// Substring finders over the folded text, built once per query.
    counterparty: Option<Finder<'static>>,
    terms: Vec<Finder<'static>>,
    kind: Option<u8>,
    /// The code's bit, the code, and whether the bit alone answers ([`state_bit`]).
    state: Option<(u64, String, bool)>,
    status: Option<u8>,
    effective_from: Option<u32>,
    effective_to: Option<u32>,
    renewal_before: Option<u32>,
    sort: Sort,
    limit: usize,
    after: Option<After>,
    created_by: Option<String>,
}

/// The parameter's value, `None` when absent or blank.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl Plan {
    fn new(q: &Query) -> Result<Plan, Vec<(String, String)>> {
        let mut errors: Vec<(String, String)> = Vec::new();
        let mut err = |param: &str, reason: String| errors.push((format!("/{param}"), reason));

        let mut text = |param: &str, v: &Option<String>| -> Option<String> {
            let v = given(v)?;
            if v.chars().count() > MAX_TEXT {
                err(param, format!("longer than {MAX_TEXT} characters"));
                return None;
            }
            Some(search_key(v)).filter(|s| !s.is_empty())
        };
        let counterparty = text("counterparty", &q.counterparty).map(|s| Finder::new(s.as_bytes()).into_owned());
        let terms: Vec<Finder<'static>> =
            text("q", &q.q).map(|s| s.split(' ').map(|t| Finder::new(t).into_owned()).collect()).unwrap_or_default();

        let mut one_of = |param: &str, list: &[&str], v: &Option<String>| -> Option<u8> {
            let v = given(v)?;
            let found = position_ci(list, v);
            if found == u8::MAX {
                err(param, format!("unknown {param} {v:?}: one of {}", list.join(", ")));
                return None;
            }
            Some(found)
        };
        let kind = one_of("kind", &KINDS, &q.kind);
        let status = one_of("status", STATUSES, &q.status);
        let state = given(&q.state).and_then(|v| {
            if v.len() == 2 && v.bytes().all(|b| b.is_ascii_alphabetic()) {
                let code = v.to_ascii_uppercase();
                let (bit, exact) = state_bit(&code);
                Some((bit, code, exact))
            } else {
                err("state", format!("{v:?} is not a two-letter state code"));
                None
            }
        });
        let mut date = |param: &str, v: &Option<String>| -> Option<u32> {
            let v = given(v)?;
            match date_num(v) {
                Some(d) => Some(d),
                None => {
                    err(param, format!("{v:?} is not a date (YYYY-MM-DD)"));
                    None
                }
            }
        };
        let effective_from = date("effective_from", &q.effective_from);
        let effective_to = date("effective_to", &q.effective_to);
        let renewal_before = date("renewal_before", &q.renewal_before);
        if let (Some(from), Some(to)) = (&effective_from, &effective_to)
            && from > to
        {
            err("effective_to", "is before effective_from".into());
        }

        let sort = match given(&q.sort) {
            None => Sort { field: Field::UpdatedAt, desc: true },
            Some(v) => Sort::parse(v).unwrap_or_else(|| {
                err("sort", format!("unknown sort {v:?}: one of {}", SORTS.join(", ")));
                Sort { field: Field::UpdatedAt, desc: true }
            }),
        };
        let limit = match q.limit {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
            Some(n) => {
                err("limit", format!("{n} is not between 1 and {MAX_LIMIT}"));
                DEFAULT_LIMIT
            }
        };
        let after = given(&q.cursor).and_then(|c| match decode_cursor(c, sort) {
            Ok(a) => Some(a),
            Err(reason) => {
                err("cursor", reason.to_string());
                None
            }
        });

        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Plan {
            counterparty,
            terms,
            kind,
            state,
            status,
            effective_from,
            effective_to,
            renewal_before,
            sort,
            limit,
            after,
            created_by: q.created_by.clone(),
        })
    }

    /// The filters on fixed-size facts.
    fn matches_hot(&self, h: &Hot) -> bool {
        self.kind.is_none_or(|k| h.kind == k)
            && self.status.is_none_or(|s| h.status == s)
            && self.effective_from.is_none_or(|d| h.effective >= d)
            && self.effective_to.is_none_or(|d| h.effective <= d)
            && self.renewal_before.is_none_or(|d| h.renewal != 0 && h.renewal < d)
            && self.state.as_ref().is_none_or(|(bit, _, _)| h.states_mask & bit != 0)
    }

    /// The filters on text, resolved against the dictionary: each distinct string is read
    /// once per query, not once per row.
    fn text_filter(&self, dict: &Dict) -> TextFilter {
        TextFilter {
            counterparty: self.counterparty.as_ref().map(|f| dict.holding(f)),
            terms: self.terms.iter().map(|f| dict.holding(f)).collect(),
        }
    }
}

/// A query's text filters as answers per dictionary number ([`Plan::text_filter`]).
struct TextFilter {
    /// Per number: whether the string holds the `counterparty` text.
    counterparty: Option<Vec<bool>>,
    /// Per `q` term, per number: whether the string holds the term.
    terms: Vec<Vec<bool>>,
}

impl TextFilter {
    /// Whether a row with this title, first and second party passes: `counterparty` in either
    /// party, every term in the title or a party.
    fn matches(&self, [title, p0, p1]: [u32; 3]) -> bool {
        let hit = |m: &[bool], n: u32| m.get(n as usize).copied().unwrap_or(false);
        self.counterparty.as_deref().is_none_or(|m| hit(m, p0) || hit(m, p1))
            && self.terms.iter().all(|m| hit(m, title) || hit(m, p0) || hit(m, p1))
    }
}

/// `YYYY-MM-DD`, a real calendar day (any four-digit year), as the number YYYYMMDD.
fn date_num(s: &str) -> Option<u32> {
    crate::domain::time::Date::parse_any_year(s).ok().map(|d| d.number())
}

pub use crate::domain::fold::fold;

/// [`fold`], with runs of whitespace collapsed to one space and the ends trimmed.
fn search_key(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_search_key(&mut out, s);
    out
}

/// Appends [`search_key`] of `s` to `out`.
fn push_search_key(out: &mut String, s: &str) {
    // Control characters count as whitespace, so `\n` (the separator in [`Names`]) sorts
    // before every character left in a key.
    fn push_words<'a>(out: &mut String, words: impl Iterator<Item = &'a str>, lowercase: bool) {
        let start = out.len();
        for word in words.filter(|w| !w.is_empty()) {
            if out.len() > start {
                out.push(' ');
            }
            let at = out.len();
            out.push_str(word);
            if lowercase {
                out[at..].make_ascii_lowercase();
            }
        }
    }
    if s.is_ascii() {
        // In one pass, with nothing allocated: `fold` of ASCII is its lowercase, and an ASCII
        // character is whitespace or control exactly when it is at most a space, or DEL. (The
        // index folds the title and both parties of every agreement; at start-up, 100,000
        // times over.)
        push_words(out, s.split(|c: char| c <= ' ' || c == '\x7f'), true);
    } else {
        let folded = fold(s);
        push_words(out, folded.split(|c: char| c.is_whitespace() || c.is_control()), false);
    }
}

/// The CSV columns, in order.
pub const CSV_HEADER: [&str; 13] = [
    "id",
    "kind",
    "title",
    "upstream_party",
    "downstream_party",
    "status",
    "states",
    "effective_date",
    "renewal_date",
    "executed_at",
    "created_at",
    "updated_at",
    "final_sha256",
];

/// RFC 4180 CSV with a header row ([`CSV_HEADER`]) and CRLF line ends. A field holding `,`, `"`,
/// CR or LF is quoted, its quotes doubled. A field starting with `=`, `+`, `-`, `@`, tab or CR
/// gets a leading `'` so spreadsheets show it as text instead of running it as a formula. States
/// are joined with `;`; timestamps are UTC, `YYYY-MM-DDTHH:MM:SSZ`; absent values are empty.
pub fn to_csv(entries: &[Entry]) -> String {
    let mut out = String::with_capacity(64 + entries.len() * 256);
    write_record(&mut out, CSV_HEADER.iter().copied());
    for e in entries {
        let states = e.states.join(";");
        let executed = e.executed_at.map(iso_utc).unwrap_or_default();
        let created = iso_utc(e.created_at);
        let updated = iso_utc(e.updated_at);
        write_record(
            &mut out,
            [
                e.id.as_str(),
                &e.kind,
                &e.title,
                &e.parties[0],
                &e.parties[1],
                &e.status,
                &states,
                &e.effective_date,
                e.renewal_date.as_deref().unwrap_or(""),
                &executed,
                &created,
                &updated,
                e.final_sha256.as_deref().unwrap_or(""),
            ],
        );
    }
    out
}

fn write_record<'a>(out: &mut String, fields: impl IntoIterator<Item = &'a str>) {
    for (i, f) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let guard = f.starts_with(['=', '+', '-', '@', '\t', '\r']);
        if f.contains([',', '"', '\r', '\n']) {
            out.push('"');
            if guard {
                out.push('\'');
            }
            for c in f.chars() {
                if c == '"' {
                    out.push('"');
                }
                out.push(c);
            }
            out.push('"');
        } else {
            if guard {
                out.push('\'');
            }
            out.push_str(f);
        }
    }
    out.push_str("\r\n");
}

// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
use crate::domain::time::rfc3339 as iso_utc;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    const NAMES: [&str; 16] = [
        "Northwind Health Partners",
        "Marta Núñez Clinic",
        "Łukasz Żółć Labs",
        "Zoë Ångström Health",
        "Acme Billing, Inc.",
        "Contoso \"Care\" LLC",
        "Straße Medical GmbH",
        "Søren Ørsted Analytics",
        "Fabrikam Hospital",
        "Blue Ridge Pediatrics",
        "Đorđe Imaging",
        "Æsir Œnology Data",
        "=HYPERLINK Labs",
        "Harbor  View\nCounseling",
        "Northwind Traders",
        "Cedar Valley Health System",
    ];
    const STATES: [&str; 8] = ["CA", "TX", "NY", "FL", "WA", "IL", "CO", "ma"];

    /// xorshift64*: reproducible corpora without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn entry(rng: &mut Rng, i: usize) -> Entry {
        let p0 = NAMES[rng.below(NAMES.len())];
        let mut p1 = NAMES[rng.below(NAMES.len())];
        if p1 == p0 {
            p1 = NAMES[(rng.below(NAMES.len() - 1) + 1 + NAMES.iter().position(|n| *n == p0).unwrap()) % NAMES.len()];
        }
        let kind = if rng.below(3) == 0 { "dua" } else { "baa" };
        let year = 2022 + rng.below(6);
        let month = 1 + rng.below(12);
        let day = if rng.below(2) == 0 { 1 } else { 15 };
        let effective = format!("{year}-{month:02}-{day:02}");
        let renewal = (rng.below(10) < 7).then(|| format!("{}-{month:02}-{day:02}", year + 1 + rng.below(3)));
        let status = STATUSES[rng.below(STATUSES.len())].to_owned();
        let mut states: Vec<String> = Vec::new();
        for _ in 0..rng.below(4) {
            let s = STATES[rng.below(STATES.len())].to_owned();
            if !states.contains(&s) {
                states.push(s);
            }
        }
        let executed = status == "executed";
        Entry {
            id: format!("ag-{:05}-{:x}", i, rng.next() % 4096),
            kind: kind.to_owned(),
            title: format!("{} between {p0} and {p1}", kind.to_uppercase()),
            parties: [p0.to_owned(), p1.to_owned()],
            status,
            states,
            effective_date: effective,
            renewal_date: renewal,
            executed_at: executed.then(|| 1_700_000_000 + rng.below(1000) as u64),
            created_at: 1_690_000_000 + i as u64,
            // Few distinct values, so ties on the key are common.
            updated_at: 1_700_000_000 + rng.below(40) as u64,
            final_sha256: executed.then(|| format!("{:064x}", rng.next())),
            created_by: format!("person{}@example.org", i % 3),
        }
    }

    pub(super) fn corpus(seed: u64, n: usize) -> Vec<Entry> {
        let mut rng = Rng(seed | 1);
        (0..n).map(|i| entry(&mut rng, i)).collect()
    }

    /// The index with the entries beside it, as the app has them in the store: a search answers
    /// entries, as `Service::search` does.
    #[derive(Debug, Default)]
    pub(super) struct Ix {
        index: Index,
        stored: HashMap<String, Entry>,
    }

    impl std::ops::Deref for Ix {
        type Target = Index;
        fn deref(&self) -> &Index {
            &self.index
        }
    }

    impl Ix {
        fn new() -> Ix {
            Ix::default()
        }

        fn upsert(&mut self, e: Entry) {
            self.stored.insert(e.id.clone(), e.clone());
            self.index.upsert(e);
        }

        fn remove(&mut self, id: &str) {
            self.stored.remove(id);
            self.index.remove(id);
        }

        fn entries(&self, ids: Vec<String>) -> Vec<Entry> {
            ids.iter().map(|id| self.stored[id].clone()).collect()
        }

        fn search(&self, q: &Query) -> Page {
            let h = self.index.search(q);
            Page { items: self.entries(h.ids), total: h.total, next_cursor: h.next_cursor }
        }

        fn export(&self, q: &Query) -> Vec<Entry> {
            self.entries(self.index.export(q))
        }

        /// The entry, when the index has its id.
        fn get(&self, id: &str) -> Option<Entry> {
            self.index.get(id).map(|l| self.stored[l.id()].clone())
        }
    }

    fn index(entries: &[Entry]) -> Ix {
        let mut ix = Ix::new();
        for e in entries {
            ix.upsert(e.clone());
        }
        ix
    }

    fn collapse(s: &str) -> String {
        fold(s).split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// The reference: a plain filter and a full sort, written independently of the index.
    fn reference(entries: &[Entry], q: &Query) -> Vec<Entry> {
        let blank = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
        let mut out: Vec<Entry> = entries
            .iter()
            .filter(|e| {
                let names = [collapse(&e.parties[0]), collapse(&e.parties[1])];
                let hay = [collapse(&e.title), names[0].clone(), names[1].clone()];
                blank(&q.counterparty).is_none_or(|c| names.iter().any(|n| n.contains(&collapse(&c))))
                    && blank(&q.kind).is_none_or(|k| e.kind.eq_ignore_ascii_case(&k))
                    && blank(&q.status).is_none_or(|s| e.status.eq_ignore_ascii_case(&s))
                    && blank(&q.state).is_none_or(|s| e.states.iter().any(|x| x.eq_ignore_ascii_case(&s)))
                    && blank(&q.effective_from).is_none_or(|d| e.effective_date >= d)
                    && blank(&q.effective_to).is_none_or(|d| e.effective_date <= d)
                    && blank(&q.renewal_before).is_none_or(|d| e.renewal_date.as_ref().is_some_and(|r| *r < d))
                    && blank(&q.q).is_none_or(|t| collapse(&t).split(' ').all(|w| hay.iter().any(|h| h.contains(w))))
                    && q.created_by.as_ref().is_none_or(|c| e.created_by == *c)
            })
            .cloned()
            .collect();
        let sort = blank(&q.sort).unwrap_or_else(|| "-updated_at".into());
        let (desc, field) = match sort.strip_prefix('-') {
            Some(f) => (true, f.to_owned()),
            None => (false, sort.clone()),
        };
        out.sort_by(|a, b| {
            let d = |o: Ordering| if desc { o.reverse() } else { o };
            let o = match field.as_str() {
                "effective_date" => d(a.effective_date.cmp(&b.effective_date)),
                "updated_at" => d(a.updated_at.cmp(&b.updated_at)),
                "counterparty" => d((collapse(&a.parties[0]), collapse(&a.parties[1]))
                    .cmp(&(collapse(&b.parties[0]), collapse(&b.parties[1])))),
                "renewal_date" => match (&a.renewal_date, &b.renewal_date) {
                    (Some(x), Some(y)) => d(x.cmp(y)),
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (None, None) => Ordering::Equal,
                },
                other => panic!("sort {other}"),
            };
            o.then_with(|| a.id.cmp(&b.id))
        });
        out
    }

    /// Pages through with `limit`, checking each page; answers the concatenation.
    fn walk(ix: &Ix, q: &Query, limit: usize) -> Vec<Entry> {
        let from_start = q.cursor.is_none();
        let mut q = Query { limit: Some(limit), ..q.clone() };
        let mut all = Vec::new();
        let mut total = None;
        for _ in 0..10_000 {
            assert_eq!(q.validate(), Ok(()));
            let page = ix.search(&q);
            assert!(page.items.len() <= limit);
            if q.cursor.is_some() {
                assert!(!page.items.is_empty(), "a next_cursor leads to more items");
            }
            assert_eq!(*total.get_or_insert(page.total), page.total, "total is stable");
            all.extend(page.items.iter().cloned());
            match page.next_cursor {
                Some(c) => {
                    assert_eq!(page.items.len(), limit, "only the last page is short");
                    q.cursor = Some(c);
                }
                None => {
                    if from_start {
                        assert_eq!(all.len(), page.total, "pages add up to the total");
                    }
                    return all;
                }
            }
        }
        panic!("paging did not end");
    }

    fn ids(entries: &[Entry]) -> Vec<String> {
        entries.iter().map(|e| e.id.clone()).collect()
    }

    pub(super) fn query(f: impl FnOnce(&mut Query)) -> Query {
        let mut q = Query::default();
        f(&mut q);
        q
    }

    fn find(ix: &Ix, q: Query) -> Vec<Entry> {
        ix.export(&q)
    }

    #[test]
    fn text_search_answers_and_entries_stay_right_while_renamed_and_removed_rows_leave_dead_strings_and_they_are_compacted()
     {
        let mut entries = corpus(11, 3_000);
        let mut ix = index(&entries);
        let mut rng = Rng(97);
        let queries = [
            query(|q| q.counterparty = Some("nunez".into())),
            query(|q| q.q = Some("baa  HEALTH".into())),
            query(|q| (q.counterparty, q.sort) = (Some("ångström".into()), Some("-counterparty".into()))),
            query(|q| (q.q, q.state) = (Some("northwind".into()), Some("ca".into()))),
            query(|q| q.q = Some("round 3".into())),
        ];
        // Without compaction the dictionary's buffer would hold every string ever added.
        let mut appended = ix.dict.buf.len();
        for round in 0..6 {
            // Rename a third of the entries (each to a title of its own, so their old strings
            // die) and remove a few.
            for k in 0..entries.len() / 3 {
                let i = rng.below(entries.len());
                let other = entry(&mut rng, i);
                entries[i].parties = other.parties;
                entries[i].title = format!("{} round {round} #{k}", other.title);
                appended += search_key(&entries[i].title).len();
                ix.upsert(entries[i].clone());
            }
            for _ in 0..50 {
                let e = entries.swap_remove(rng.below(entries.len()));
                ix.remove(&e.id);
            }
            for q in &queries {
                assert_eq!(ids(&find(&ix, q.clone())), ids(&reference(&entries, q)), "round {round}: {q:?}");
            }
            let d = &ix.dict;
            assert!(d.dead <= d.buf.len() / 2 || d.dead <= 1 << 16, "dead strings are bounded");
            for e in &entries {
                let row = ix.index.get(&e.id).map(|l| (l.id(), l.status(), l.created_at(), l.created_by()));
                let want = (e.id.as_str(), e.status.as_str(), e.created_at, e.created_by.as_str());
                assert_eq!(row, Some(want), "round {round}: the row's facts moved with it");
            }
            // Each string is counted once per row part naming it, found by its text, and the
            // free numbers are exactly the uncounted ones.
            let mut refs = vec![0u32; d.len()];
            for n in ix.parts.iter().flatten() {
                refs[*n as usize] += 1;
            }
            assert_eq!(refs, d.refs, "round {round}: the counts");
            for n in 0..d.len() as u32 {
                let found = d.at.find(d.hasher.hash_one(d.get(n)), |&m| d.get(m) == d.get(n)).copied();
                assert_eq!(found.is_some_and(|m| m == n), d.refs[n as usize] > 0, "round {round}: {n} {:?}", d.get(n));
            }
            let mut free = d.free.clone();
            free.sort_unstable();
            assert_eq!(free, (0..d.len() as u32).filter(|&n| d.refs[n as usize] == 0).collect::<Vec<_>>());
        }
        let d = &ix.dict;
        assert!(d.buf.len() < appended, "the dictionary was rewritten at least once");
        let live: usize = d.spans.iter().map(|s| s.len()).sum();
        assert_eq!(live + d.dead, d.buf.len(), "every byte is live or counted dead");
        let live: usize = ix.ids.spans.iter().map(|s| s.len()).sum();
        assert_eq!(live + ix.ids.dead, ix.ids.buf.len(), "every id byte is live or counted dead");
    }

    #[test]
    fn a_search_key_folds_and_collapses_whitespace_and_control_characters_as_the_whole_text_rule_does() {
        // The rule as first written: fold the whole text, then split at any whitespace or control
        // character.
        let reference = |s: &str| {
            let folded = fold(s);
            folded
                .split(|c: char| c.is_whitespace() || c.is_control())
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut samples: Vec<String> = [
            "",
            "   ",
            "Acme  Health\tPlan, Inc.",
            "\x00lead\x1ftrail\x7f",
            "UPPER lower MiXeD\r\n\x0b\x0cform",
            "Núñez  Clinic",
            "Straße\u{a0}Øster\u{2003}İstanbul",
            "tab\u{85}next\u{2028}line",
            "한국 Clinic ñ",
        ]
        .map(String::from)
        .to_vec();
        // Every ASCII character between two words, and at either end.
        samples.extend((0u8..=127).map(|b| format!("{0}A{0}b{0}", char::from(b))));
        for s in &samples {
            let mut appended = String::from("kept\n");
            push_search_key(&mut appended, s);
            assert_eq!(search_key(s), reference(s), "{s:?}");
            assert_eq!(appended, format!("kept\n{}", reference(s)), "{s:?}");
        }
    }

    #[test]
    fn fold_strips_accents_and_case() {
        assert_eq!(fold("Marta Núñez Clinic"), "marta nunez clinic");
        assert_eq!(fold("Łukasz Żółć Labs"), "lukasz zolc labs");
        assert_eq!(fold("Zoë Ångström Health"), "zoe angstrom health");
        assert_eq!(fold("Straße STRAẞE"), "strasse strasse");
        assert_eq!(fold("Søren Ørsted"), "soren orsted");
        assert_eq!(fold("Đorđe"), "dorde");
        assert_eq!(fold("Æsir Œnology"), "aesir oenology");
        assert_eq!(fold("NORTHWIND"), "northwind");
        // Already decomposed input folds the same.
        assert_eq!(fold("Nu\u{303}n\u{303}ez"), "nunez");
    }

    #[test]
    fn accents_and_case_do_not_matter() {
        let entries = corpus(7, 300);
        let ix = index(&entries);
        let nunez: HashSet<String> =
            entries.iter().filter(|e| e.parties.iter().any(|p| p.contains("Núñez"))).map(|e| e.id.clone()).collect();
        assert!(nunez.len() > 5, "the corpus has Núñez agreements");
        for needle in ["Nunez", "nuñez", "NUNEZ", "núñez", "marta nunez", "  Marta   NUÑEZ  "] {
            let found: HashSet<String> =
                ids(&find(&ix, query(|q| q.counterparty = Some(needle.into())))).into_iter().collect();
            assert_eq!(found, nunez, "{needle}");
        }
        let zolc = find(&ix, query(|q| q.counterparty = Some("zolc".into())));
        assert!(!zolc.is_empty());
        assert!(zolc.iter().all(|e| e.parties.iter().any(|p| p == "Łukasz Żółć Labs")));
        let angstrom = find(&ix, query(|q| q.q = Some("angstrom zoe".into())));
        assert!(!angstrom.is_empty());
        assert!(angstrom.iter().all(|e| e.title.contains("Zoë Ångström")));
        let strasse = find(&ix, query(|q| q.counterparty = Some("strasse".into())));
        assert!(!strasse.is_empty());
        // Whitespace in names is collapsed: a name with a double space and a newline.
        let harbor = find(&ix, query(|q| q.counterparty = Some("harbor view counseling".into())));
        assert!(!harbor.is_empty());
    }

    #[test]
    fn each_filter() {
        let entries = corpus(11, 400);
        let ix = index(&entries);
        let check = |q: Query, pred: &dyn Fn(&Entry) -> bool| {
            let want: Vec<String> = ids(&reference(&entries, &q));
            let got = find(&ix, q.clone());
            assert_eq!(ids(&got), want, "{q:?}");
            assert!(!got.is_empty(), "{q:?} finds something");
            assert!(got.iter().all(pred), "{q:?}");
            let excluded = entries.len() - got.len();
            assert!(excluded > 0, "{q:?} excludes something");
            assert_eq!(entries.iter().filter(|e| pred(e)).count(), got.len(), "{q:?}");
        };
        check(query(|q| q.counterparty = Some("northwind".into())), &|e| {
            e.parties.iter().any(|p| p.starts_with("Northwind"))
        });
        check(query(|q| q.counterparty = Some("health".into())), &|e| {
            e.parties.iter().any(|p| p.to_lowercase().contains("health"))
        });
        check(query(|q| q.kind = Some("DUA".into())), &|e| e.kind == "dua");
        check(query(|q| q.kind = Some("baa".into())), &|e| e.kind == "baa");
        check(query(|q| q.state = Some("ca".into())), &|e| e.states.iter().any(|s| s == "CA"));
        check(query(|q| q.state = Some("MA".into())), &|e| e.states.iter().any(|s| s == "ma"));
        check(query(|q| q.status = Some("executed".into())), &|e| e.status == "executed");
        check(query(|q| q.status = Some("partially_signed".into())), &|e| e.status == "partially_signed");
        check(query(|q| q.effective_from = Some("2025-01-01".into())), &|e| e.effective_date.as_str() >= "2025-01-01");
        check(query(|q| q.effective_to = Some("2024-06-15".into())), &|e| e.effective_date.as_str() <= "2024-06-15");
        check(
            query(|q| {
                q.effective_from = Some("2024-03-15".into());
                q.effective_to = Some("2024-03-15".into());
            }),
            &|e| e.effective_date == "2024-03-15",
        );
        check(query(|q| q.renewal_before = Some("2026-01-01".into())), &|e| {
            e.renewal_date.as_deref().is_some_and(|r| r < "2026-01-01")
        });
        check(query(|q| q.q = Some("DUA clinic".into())), &|e| e.kind == "dua" && e.title.contains("Núñez Clinic"));
        // Filters combine.
        check(
            query(|q| {
                q.counterparty = Some("northwind".into());
                q.kind = Some("baa".into());
                q.status = Some("executed".into());
            }),
            &|e| e.kind == "baa" && e.status == "executed" && e.parties.iter().any(|p| p.starts_with("Northwind")),
        );
        // Blank parameters are not given.
        let blank = query(|q| {
            q.counterparty = Some(" ".into());
            q.q = Some(String::new());
            q.kind = Some(String::new());
            q.sort = Some(String::new());
            q.cursor = Some(String::new());
        });
        assert_eq!(blank.validate(), Ok(()));
        assert_eq!(ix.search(&blank).total, entries.len());
        // Nothing matches.
        let none = ix.search(&query(|q| q.counterparty = Some("no such party".into())));
        assert_eq!((none.items.len(), none.total, none.next_cursor), (0, 0, None));
    }

    #[test]
    fn paging_with_limit_7_returns_every_match_once_in_order() {
        let entries = corpus(3, 300);
        let ix = index(&entries);
        let filters = [
            Query::default(),
            query(|q| q.counterparty = Some("health".into())),
            query(|q| q.kind = Some("baa".into())),
            query(|q| q.renewal_before = Some("2027-06-01".into())),
        ];
        for sort in SORTS {
            for f in &filters {
                let q = Query { sort: Some(sort.into()), ..f.clone() };
                let want = reference(&entries, &q);
                let got = walk(&ix, &q, 7);
                assert_eq!(ids(&got), ids(&want), "{q:?}");
                assert_eq!(got.iter().map(|e| &e.id).collect::<HashSet<_>>().len(), got.len(), "no repeats");
            }
        }
        // The default sort is -updated_at.
        assert_eq!(
            ids(&walk(&ix, &Query::default(), 7)),
            ids(&walk(&ix, &query(|q| q.sort = Some("-updated_at".into())), 7))
        );
        // The page is the first `limit` of the order; next_cursor only when more follow.
        let first = ix.search(&query(|q| q.limit = Some(10)));
        assert_eq!(first.total, 300);
        assert_eq!(ids(&first.items), ids(&reference(&entries, &Query::default())[..10]));
        let exact = ix.search(&query(|q| {
            q.kind = Some("dua".into());
            q.limit = Some(500);
        }));
        assert_eq!(exact.items.len(), exact.total);
        assert_eq!(exact.next_cursor, None);
        // Exactly `limit` matches: one page, no cursor.
        let exact = ix.search(&query(|q| {
            q.kind = Some("dua".into());
            q.limit = Some(exact.total);
        }));
        assert_eq!(exact.items.len(), exact.total);
        assert_eq!(exact.next_cursor, None);
    }

    #[test]
    fn default_limit_is_50() {
        let ix = index(&corpus(5, 120));
        let page = ix.search(&Query::default());
        assert_eq!((page.items.len(), page.total), (50, 120));
        assert!(page.next_cursor.is_some());
    }

    #[test]
    fn changes_before_the_cursor_neither_repeat_nor_skip() {
        let entries = corpus(21, 300);
        let q = query(|q| {
            q.sort = Some("effective_date".into());
            q.limit = Some(7);
        });
        let want = reference(&entries, &q);
        let mut ix = index(&entries);
        let mut got: Vec<Entry> = Vec::new();
        let mut q = q.clone();
        let mut late = Vec::new();
        for round in 0.. {
            let page = ix.search(&q);
            got.extend(page.items.iter().cloned());
            let Some(cursor) = page.next_cursor else { break };
            q.cursor = Some(cursor);
            // Inserted before everything: never returned by this walk.
            ix.upsert(Entry {
                id: format!("early-{round}"),
                effective_date: "2000-01-01".into(),
                ..entries[0].clone()
            });
            // Already returned entries change in place, or move further back.
            let seen = &got[round % got.len()];
            ix.upsert(Entry { title: format!("{} (amended)", seen.title), status: "voided".into(), ..seen.clone() });
            let last = &got[got.len() - 1];
            ix.upsert(Entry { effective_date: "2001-01-01".into(), ..last.clone() });
            // Removing an already returned entry, even the one the cursor names.
            if round % 5 == 4 {
                ix.remove(&last.id.clone());
            }
            // Inserted after everything: returned at the end.
            let id = format!("late-{round:03}");
            ix.upsert(Entry { id: id.clone(), effective_date: "2099-01-01".into(), ..entries[1].clone() });
            late.push(id);
        }
        let mut expected = ids(&want);
        expected.extend(late);
        assert_eq!(ids(&got), expected);
    }

    #[test]
    fn updates_under_the_default_sort_are_not_repeated() {
        let entries = corpus(22, 200);
        let mut ix = index(&entries);
        let want = ids(&reference(&entries, &Query::default()));
        let mut q = query(|q| q.limit = Some(9));
        let mut got = Vec::new();
        let mut clock = 1_800_000_000;
        loop {
            let page = ix.search(&q);
            got.extend(ids(&page.items));
            let Some(cursor) = page.next_cursor else { break };
            q.cursor = Some(cursor);
            // Updating a returned entry moves it to the front: behind the cursor.
            for e in &page.items[..2] {
                clock += 1;
                ix.upsert(Entry { updated_at: clock, ..e.clone() });
            }
        }
        assert_eq!(got, want);
        // As documented: an entry updated before its turn moves behind the cursor and is not
        // returned by that walk.
        let mut ix = index(&entries);
        let page = ix.search(&query(|q| q.limit = Some(9)));
        let pending = want[50].clone();
        let e = ix.get(&pending).unwrap();
        ix.upsert(Entry { updated_at: clock + 1, ..e });
        let rest = walk(&ix, &query(|q| q.cursor = page.next_cursor.clone()), 9);
        assert!(!ids(&rest).contains(&pending));
        assert_eq!(rest.len(), 200 - 9 - 1);
    }

    #[test]
    fn state_codes_match_exactly() {
        // Every state and territory has a bit of its own; other codes share the last eight.
        let bits: std::collections::HashSet<u64> = STATE_CODES.iter().map(|c| state_bit(c).0).collect();
        assert_eq!(bits.len(), STATE_CODES.len());
        assert!(STATE_CODES.windows(2).all(|w| w[0] < w[1]), "sorted, for the binary search");
        // Two codes that are not states and share a bit must still not match each other.
        let letters = b'A'..=b'Z';
        let others: Vec<String> = letters
            .clone()
            .flat_map(|a| letters.clone().map(move |b| String::from_utf8(vec![a, b]).expect("ASCII")))
            .filter(|c| !state_bit(c).1)
            .collect();
        let (x, twin) = others
            .iter()
            .find_map(|x| {
                others.iter().find(|y| *y != x && state_bit(y) == state_bit(x)).map(|y| (x.clone(), y.clone()))
            })
            .expect("two codes sharing one of eight bits");
        assert!(bits.iter().all(|b| *b != state_bit(&x).0), "not a state's bit");
        let base = corpus(2, 1).remove(0);
        let ix = index(&[
            Entry { id: "twin".into(), states: vec![twin.clone()], ..base.clone() },
            Entry { id: "x".into(), states: vec![x.to_lowercase()], ..base.clone() },
            Entry { id: "ca".into(), states: vec!["NY".into(), " ca ".into()], ..base.clone() },
            Entry { id: "none".into(), states: vec![], ..base },
        ]);
        assert_eq!(ids(&find(&ix, query(|q| q.state = Some("CA".into())))), ["ca"]);
        assert_eq!(ids(&find(&ix, query(|q| q.state = Some("ny".into())))), ["ca"]);
        assert_eq!(ids(&find(&ix, query(|q| q.state = Some(twin.to_lowercase())))), ["twin"]);
        assert_eq!(ids(&find(&ix, query(|q| q.state = Some(x.clone())))), ["x"]);
    }

    #[test]
    fn upsert_replaces_and_remove_keeps_the_rest() {
        let entries = corpus(4, 50);
        let mut ix = index(&entries);
        assert_eq!(ix.len(), 50);
        ix.upsert(Entry { title: "Replaced".into(), ..entries[3].clone() });
        assert_eq!(ix.len(), 50);
        assert_eq!(ix.get(&entries[3].id).map(|e| e.title), Some("Replaced".to_string()));
        assert_eq!(find(&ix, query(|q| q.q = Some("replaced".into()))).len(), 1);
        for e in entries.iter().step_by(3) {
            ix.remove(&e.id);
        }
        ix.remove("absent");
        let left: Vec<&Entry> =
            entries.iter().skip(1).enumerate().filter(|(i, _)| i % 3 != 2).map(|(_, e)| e).collect();
        assert_eq!(ix.len(), entries.len() - entries.len().div_ceil(3));
        for e in &entries {
            assert_eq!(ix.get(&e.id).is_some(), left.iter().any(|l| l.id == e.id), "{}", e.id);
        }
        let mut all = ids(&walk(&ix, &Query::default(), 4));
        all.sort();
        let mut want: Vec<String> = entries.iter().map(|e| e.id.clone()).filter(|id| ix.get(id).is_some()).collect();
        want.sort();
        assert_eq!(all, want);
        for e in &entries {
            ix.remove(&e.id);
        }
        assert!(ix.is_empty());
        assert_eq!(ix.search(&Query::default()).total, 0);
    }

    #[test]
    fn validation_names_each_bad_parameter() {
        let bad = |f: fn(&mut Query)| -> Vec<String> {
            query(f).validate().err().unwrap_or_default().into_iter().map(|(p, _)| p).collect()
        };
        assert_eq!(bad(|q| q.limit = Some(0)), ["/limit"]);
        assert_eq!(bad(|q| q.limit = Some(501)), ["/limit"]);
        assert!(bad(|q| q.limit = Some(500)).is_empty());
        assert!(bad(|q| q.limit = Some(1)).is_empty());
        assert_eq!(bad(|q| q.sort = Some("title".into())), ["/sort"]);
        assert_eq!(bad(|q| q.sort = Some("--updated_at".into())), ["/sort"]);
        assert_eq!(bad(|q| q.kind = Some("nda".into())), ["/kind"]);
        assert_eq!(bad(|q| q.status = Some("signed".into())), ["/status"]);
        assert_eq!(bad(|q| q.state = Some("California".into())), ["/state"]);
        assert_eq!(bad(|q| q.effective_from = Some("2025-02-30".into())), ["/effective_from"]);
        assert_eq!(bad(|q| q.effective_to = Some("2025-1-01".into())), ["/effective_to"]);
        assert_eq!(bad(|q| q.renewal_before = Some("tomorrow".into())), ["/renewal_before"]);
        assert!(bad(|q| q.renewal_before = Some("2024-02-29".into())).is_empty());
        assert_eq!(bad(|q| q.renewal_before = Some("2023-02-29".into())), ["/renewal_before"]);
        assert_eq!(bad(|q| q.renewal_before = Some("2023-13-01".into())), ["/renewal_before"]);
        assert_eq!(
            bad(|q| {
                q.effective_from = Some("2025-02-01".into());
                q.effective_to = Some("2025-01-01".into());
            }),
            ["/effective_to"]
        );
        assert_eq!(bad(|q| q.cursor = Some("not a cursor!".into())), ["/cursor"]);
        assert_eq!(bad(|q| q.cursor = Some(URL_SAFE_NO_PAD.encode("{\"v\":1}"))), ["/cursor"]);
        assert_eq!(bad(|q| q.q = Some("x".repeat(MAX_TEXT + 1))), ["/q"]);
        // Several at once, each named.
        assert_eq!(
            bad(|q| {
                q.limit = Some(0);
                q.sort = Some("x".into());
                q.kind = Some("x".into());
            }),
            ["/kind", "/sort", "/limit"]
        );
        // Unknown parameters are refused when the query string is parsed.
        assert!(serde_json::from_value::<Query>(serde_json::json!({"countreparty": "x"})).is_err());
        assert!(serde_json::from_value::<Query>(serde_json::json!({"counterparty": "x", "limit": 5})).is_ok());
        // A query that fails validation answers nothing.
        let ix = index(&corpus(1, 10));
        assert_eq!(ix.search(&query(|q| q.limit = Some(0))).total, 0);
        assert!(ix.export(&query(|q| q.sort = Some("x".into()))).is_empty());
    }

    #[test]
    fn a_cursor_belongs_to_its_sort() {
        let ix = index(&corpus(9, 40));
        for sort in SORTS {
            let page = ix.search(&query(|q| {
                q.sort = Some(sort.into());
                q.limit = Some(3);
            }));
            let cursor = page.next_cursor.unwrap();
            for other in SORTS {
                let q = query(|q| {
                    q.sort = Some(other.into());
                    q.cursor = Some(cursor.clone());
                });
                assert_eq!(q.validate().is_ok(), other == sort, "{sort} cursor with {other}");
            }
        }
        // Entries without a renewal date come last, and a cursor among them works.
        let entries = corpus(9, 40);
        let q = query(|q| q.sort = Some("-renewal_date".into()));
        let all = walk(&ix, &q, 3);
        assert_eq!(ids(&all), ids(&reference(&entries, &q)));
        let first_none = all.iter().position(|e| e.renewal_date.is_none()).unwrap();
        assert!(all[first_none..].iter().all(|e| e.renewal_date.is_none()));
        assert!(all[..first_none].windows(2).all(|w| w[0].renewal_date >= w[1].renewal_date));
    }

    #[test]
    fn csv_reads_back() {
        let mut entries = corpus(13, 30);
        let tricky = [
            "Acme, Inc.",
            "The \"Quoted\" Co",
            "Line\nBreak Health",
            "Carriage\r\nReturn LLC",
            "=HYPERLINK(\"http://x\")",
            "+1 Health",
            "-minus Labs",
            "@at Clinic",
            "\tTabbed",
            "Núñez, \"Ñ\" & Co",
            "",
        ];
        for (i, name) in tricky.iter().enumerate() {
            entries[i].parties[0] = (*name).to_owned();
            entries[i].title = format!("{name} title");
        }
        entries[0].states = vec![];
        let text = to_csv(&entries);
        assert!(text.ends_with("\r\n"));
        let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(text.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
        assert_eq!(header, CSV_HEADER);
        let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>().unwrap();
        assert_eq!(rows.len(), entries.len());
        let guarded = |s: &str| {
            if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_owned() }
        };
        for (row, e) in rows.iter().zip(&entries) {
            let want = [
                guarded(&e.id),
                guarded(&e.kind),
                guarded(&e.title),
                guarded(&e.parties[0]),
                guarded(&e.parties[1]),
                e.status.clone(),
                e.states.join(";"),
                e.effective_date.clone(),
                e.renewal_date.clone().unwrap_or_default(),
                e.executed_at.map(iso_utc).unwrap_or_default(),
                iso_utc(e.created_at),
                iso_utc(e.updated_at),
                e.final_sha256.clone().unwrap_or_default(),
            ];
            assert_eq!(row.iter().collect::<Vec<_>>(), want.iter().map(String::as_str).collect::<Vec<_>>());
        }
        assert_eq!(&rows[4][3], "'=HYPERLINK(\"http://x\")");
        assert_eq!(&rows[3][3], "Carriage\r\nReturn LLC");
        assert_eq!(to_csv(&[]), CSV_HEADER.join(",") + "\r\n");
    }

    #[test]
    fn timestamps_are_utc() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(iso_utc(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    fn opt<T: std::fmt::Debug + Clone + 'static>(values: &'static [T]) -> impl Strategy<Value = Option<T>> {
        proptest::option::of(proptest::sample::select(values))
    }

    const DATES: [&str; 7] =
        ["2022-01-01", "2023-06-15", "2024-01-01", "2024-07-15", "2025-12-01", "2026-06-01", "2029-01-01"];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        #[test]
        fn paging_equals_the_sorted_filtered_list(
            seed in any::<u64>(),
            n in 0usize..160,
            limit in 1usize..25,
            sort in opt(&SORTS),
            counterparty in opt(&["nunez", "NORTHWIND", "zolc", "health", "a", "strasse", "xyz"]),
            text in opt(&["health labs", "clinic", "dua", "inc", "n"]),
            kind in opt(&["baa", "dua", "BAA"]),
            state in opt(&["ca", "TX", "ma"]),
            status in opt(STATUSES),
            range in (opt(&DATES), opt(&DATES)),
            renewal_before in opt(&DATES),
        ) {
            let entries = corpus(seed, n);
            let ix = index(&entries);
            let (mut from, mut to) = range;
            if let (Some(f), Some(t)) = (from, to) && f > t {
                (from, to) = (Some(t), Some(f));
            }
            let own = |v: Option<&str>| v.map(str::to_owned);
            let q = Query {
                counterparty: own(counterparty),
                kind: own(kind),
                state: own(state),
                status: own(status),
                effective_from: own(from),
                effective_to: own(to),
                renewal_before: own(renewal_before),
                q: own(text),
                sort: own(sort),
                limit: None,
                cursor: None,
                // A quarter of the cases list one creator's (or a creator no entry names).
                created_by: (seed % 4 == 0).then(|| format!("person{}@example.org", seed / 4 % 4)),
            };
            let want = ids(&reference(&entries, &q));
            prop_assert_eq!(ids(&walk(&ix, &q, limit)), want.clone());
            prop_assert_eq!(ids(&ix.export(&q)), want);
        }

        /// Row positions move on every removal (the last row fills the gap): whatever the order
        /// of upserts, replacements and removals, the index is a map of each id's last upsert,
        /// states without a bit of their own included.
        #[test]
        fn upserts_and_removes_in_any_order_leave_a_map_of_each_ids_last_upsert(
            ops in prop::collection::vec((any::<bool>(), 0usize..10, any::<u64>()), 0..60),
        ) {
            const CODES: [&str; 6] = ["CA", " tx ", "ZZ", "x1", "ma", "ZZ "];
            let mut ix = Ix::new();
            let mut model: std::collections::BTreeMap<String, Entry> = Default::default();
            for (remove, n, seed) in ops {
                let id = format!("ag-{n}");
                if remove {
                    ix.remove(&id);
                    model.remove(&id);
                } else {
                    let mut rng = Rng(seed | 1);
                    let mut e = entry(&mut rng, n);
                    e.id = id.clone();
                    e.states = (0..rng.below(3)).map(|_| CODES[rng.below(CODES.len())].to_owned()).collect();
                    ix.upsert(e.clone());
                    model.insert(id, e);
                }
                prop_assert_eq!(ix.len(), model.len());
            }
            for n in 0..10 {
                let id = format!("ag-{n}");
                let row = ix.index.get(&id).map(|l| (l.id().to_owned(), l.status(), l.created_at(), l.created_by().to_owned()));
                let want = model.get(&id).map(|e| (e.id.clone(), e.status.as_str(), e.created_at, e.created_by.clone()));
                prop_assert_eq!(row, want);
            }
            for who in ["person0@example.org", "person2@example.org", "nobody"] {
                let q = Query { created_by: Some(who.into()), ..Query::default() };
                let mut got = ids(&ix.export(&q));
                got.sort();
                let want: Vec<String> = model.values().filter(|e| e.created_by == who).map(|e| e.id.clone()).collect();
                prop_assert_eq!(got, want, "created by {}", who);
            }
            // (A query's code is two letters: `x1` is kept on entries but cannot be asked for.)
            for code in ["zz", "TX", "ca", "QQ", "Ma"] {
                let q = Query { state: Some(code.into()), ..Query::default() };
                let mut got = ids(&ix.export(&q));
                got.sort();
                let want: Vec<String> = model
                    .values()
                    .filter(|e| e.states.iter().any(|s| s.trim().eq_ignore_ascii_case(code)))
                    .map(|e| e.id.clone())
                    .collect();
                prop_assert_eq!(got, want, "state {}", code);
            }
        }
    }
}
