//! The signer page's agreement text, kept rendered and compressed (issue 14 §2).
//!
//! A sent document never changes, so its HTML is rendered once and kept as a raw DEFLATE stream
//! that ends on a byte boundary without a final block (a sync flush, RFC 1951 §3.2.3). A page is
//! then put together per request without compressing the agreement again: the gzip header, the
//! page's own head (title, signer, form tokens: a few kilobytes) as a stored block, the kept
//! stream, the page's tail as the final stored block, and the CRC-32 of the whole, combined from
//! the parts' CRCs (RFC 1952). Every browser asks for gzip, so a signer on a phone downloads
//! about a third of the page's bytes (15 KB of 45 KB for the example BAA: the head and tail go
//! uncompressed, so nothing is compressed per request); a client that does not ask gets the
//! HTML inflated from the same kept stream.
//!
//! [`DocCache`] bounds what is kept by bytes and evicts a random entry when full: under a cyclic
//! walk over more documents than fit (a load test cycling through every link, or a morning of
//! reminders), oldest-out or least-recently-used would miss on every view, while random eviction
//! keeps hitting in proportion to what fits (3,000 links cycled through a cache with room for
//! ~2,600 of them: 1,151 pages/s with oldest-out, 1,837/s with random eviction). A miss costs a
//! render (the model read from the store, tera, deflate), never a wrong page: entries are found by agreement
//! id and used only when the sent document's SHA-256 matches, and are immutable. (Keyed by the
//! SHA-256 alone, agreements sent from identical intakes — identical PDFs — would evict each
//! other: the first load test of this cache did exactly that.)

use std::collections::HashMap;
use std::io::Read;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use axum::body::Bytes;
use flate2::{Compress, Compression, FlushCompress};

/// A document's HTML as a raw DEFLATE stream ending on a byte boundary, not final. Shared
/// ([`Bytes`]): every page sends it as it is kept, without a copy ([`Gzipped`]).
pub struct Deflated {
    stream: Bytes,
    crc: crc32fast::Hasher,
}

/// A stored block marked final, with no data: closes a kept stream on its own.
const EMPTY_FINAL_BLOCK: [u8; 5] = [1, 0, 0, 0xff, 0xff];

impl Deflated {
    /// Compresses `html` (default level: once per sent document, so size wins over speed).
    pub fn new(html: &str) -> Result<Deflated, flate2::CompressError> {
        let input = html.as_bytes();
        let mut c = Compress::new(Compression::default(), false);
        let mut stream = Vec::with_capacity(input.len() / 4 + 64);
        // A sync flush is complete once all input is taken and the call left output room
        // (zlib's convention: a full buffer means more may be pending).
        loop {
            stream.reserve(4096 + (input.len() - c.total_in() as usize) / 3);
            let done = c.total_in() as usize;
            c.compress_vec(&input[done..], &mut stream, FlushCompress::Sync)?;
            if c.total_in() as usize == input.len() && stream.len() < stream.capacity() {
                break;
            }
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(input);
        // Trimmed to its length: `Bytes::from(Vec)` keeps the vector's spare capacity (up to
        // the loop's last reserve), which the cache, counting `len`, would not see.
        Ok(Deflated { stream: Bytes::from(stream.into_boxed_slice()), crc })
    }

    /// The compressed size: what the cache counts.
    pub fn len(&self) -> usize {
        self.stream.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stream.is_empty()
    }

    /// The HTML again (for a client that does not accept gzip).
    pub fn inflate(&self) -> std::io::Result<String> {
        let closed = [&self.stream[..], &EMPTY_FINAL_BLOCK[..]].concat();
        let mut html = String::with_capacity(self.crc.total_len() as usize);
        flate2::read::DeflateDecoder::new(closed.as_slice()).read_to_string(&mut html)?;
        Ok(html)
    }
}

/// Appends `data` as stored (uncompressed) DEFLATE blocks; starts and ends on a byte boundary.
fn stored(out: &mut Vec<u8>, data: &[u8], last: bool) {
    if data.is_empty() {
        if last {
            out.extend_from_slice(&EMPTY_FINAL_BLOCK);
        }
        return;
    }
    let mut chunks = data.chunks(usize::from(u16::MAX)).peekable();
    while let Some(chunk) = chunks.next() {
        let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
        out.push(u8::from(last && chunks.peek().is_none()));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

/// `head`, the kept document and `tail` as one gzip member (see [`GzipBuilder`]).
pub fn gzip(head: &[u8], doc: &Deflated, tail: &[u8]) -> Gzipped {
    let mut g = GzipBuilder::default();
    g.head().extend_from_slice(head);
    g.finish(doc, |t| t.extend_from_slice(tail))
}

/// Where a stored block's header goes before its data: BFINAL/BTYPE, LEN, NLEN (RFC 1951 §3.2.4).
const STORED_HEADER: usize = 5;
/// The gzip header: ID1 ID2, CM = deflate, no flags, no modification time, XFL 0, OS unknown.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// A gzip member put together in three parts: the gzip header and the page's head as a stored
/// block; the kept document's stream, shared; the tail as the final stored block and the gzip
/// trailer. The head and tail are written straight into their parts (a skeleton fills them in
/// place), each after a stored block's header that is completed once its length is known, so
/// nothing is copied twice.
pub struct GzipBuilder {
    first: Vec<u8>,
}

impl Default for GzipBuilder {
    /// The gzip header and the head's block header to come; the writer of the head reserves
    /// what it needs.
    fn default() -> GzipBuilder {
        let mut first = Vec::new();
        first.extend_from_slice(&GZIP_HEADER);
        first.extend_from_slice(&[0; STORED_HEADER]);
        GzipBuilder { first }
    }
}

impl GzipBuilder {
    /// The head's bytes are appended here (append only: what is already there is the gzip
    /// header and the block's header to be completed).
    pub fn head(&mut self) -> &mut Vec<u8> {
        &mut self.first
    }

    /// The member: `doc`, then the tail written by `write_tail` (which reserves what it needs,
    /// plus the trailer's 8 bytes).
    pub fn finish(self, doc: &Deflated, write_tail: impl FnOnce(&mut Vec<u8>)) -> Gzipped {
        let start = GZIP_HEADER.len() + STORED_HEADER;
        let mut first = self.first;
        debug_assert!(first.len() >= start, "the head was appended to, not cut");
        let mut crc = crc32fast::Hasher::new();
        crc.update(&first[start..]);
        close_stored(&mut first, GZIP_HEADER.len(), false);
        let mut last = Vec::new();
        last.extend_from_slice(&[0; STORED_HEADER]);
        write_tail(&mut last);
        crc.combine(&doc.crc);
        let mut t = crc32fast::Hasher::new();
        t.update(&last[STORED_HEADER..]);
        crc.combine(&t);
        close_stored(&mut last, 0, true);
        let size = crc.total_len();
        last.extend_from_slice(&crc.finalize().to_le_bytes());
        // ISIZE: the length modulo 2^32 (RFC 1952 §2.3.1).
        last.extend_from_slice(&((size & 0xffff_ffff) as u32).to_le_bytes());
        Gzipped { parts: [Bytes::from(first), doc.stream.clone(), Bytes::from(last)], next: 0 }
    }
}

/// Completes the stored block whose header was left at `at` and whose data runs to the end of
/// `buf`: its header written in place, or, for data longer than one stored block holds, the
/// data re-framed as several blocks (a head or tail of over 64 KiB: values are bounded, so
/// never in practice, but never a wrong stream either).
fn close_stored(buf: &mut Vec<u8>, at: usize, last: bool) {
    let data = at + STORED_HEADER;
    match u16::try_from(buf.len() - data) {
        Ok(len) => {
            buf[at] = u8::from(last);
            buf[at + 1..at + 3].copy_from_slice(&len.to_le_bytes());
            buf[at + 3..data].copy_from_slice(&(!len).to_le_bytes());
        }
        Err(_) => {
            let body = buf.split_off(data);
            buf.truncate(at);
            stored(buf, &body, last);
        }
    }
}

/// A signer page's gzip member as a response body of three frames. hyper queues them and writes
/// them with its headers in one `writev`, so the kept document (12 KB of the example's 15 KB)
/// is never copied per request: assembling it into one vector was 4 % of the page's CPU under
/// load (perf, 2026-12-02). The exact length is known, so the answer has a `Content-Length`.
pub struct Gzipped {
    parts: [Bytes; 3],
    next: usize,
}

impl Gzipped {
    /// The member as one vector (tests; a client reads the same bytes).
    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<u8> {
        self.parts.concat()
    }
}

impl http_body::Body for Gzipped {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        while let Some(part) = this.parts.get_mut(this.next) {
            this.next += 1;
            if !part.is_empty() {
                return Poll::Ready(Some(Ok(http_body::Frame::data(std::mem::take(part)))));
            }
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.parts.iter().skip(self.next).all(Bytes::is_empty)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.parts.iter().skip(self.next).map(|p| p.len() as u64).sum())
    }
}

/// Whether an `Accept-Encoding` header value accepts gzip (RFC 9110 §12.5.3): the weight given
/// to `gzip` or `x-gzip` if either is listed, else the weight of `*`; a weight of zero refuses.
pub fn accepts_gzip(value: &str) -> bool {
    let (mut named, mut any) = (None::<bool>, None::<bool>);
    for item in value.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let zero = parts.any(|p| {
            let p = p.trim();
            p.get(..2).is_some_and(|k| k.eq_ignore_ascii_case("q="))
                && p.get(2..).and_then(|q| q.trim().parse::<f32>().ok()).is_some_and(|q| q <= 0.0)
        });
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            named = Some(named.unwrap_or(false) || !zero);
        } else if coding == "*" {
            any = Some(any.unwrap_or(false) || !zero);
        }
    }
    named.or(any).unwrap_or(false)
}

/// Documents kept for the signer page, bounded by their compressed bytes.
pub struct DocCache<T> {
    inner: Mutex<Inner<T>>,
    budget: usize,
}

struct Inner<T> {
    /// Agreement id → (sent SHA-256, entry, bytes).
    map: HashMap<String, (String, Arc<T>, usize)>,
    /// The keys of `map`, for picking one to evict.
    keys: Vec<String>,
    /// xorshift64 state for that pick (not security: which entry costs a re-render).
    rng: u64,
    bytes: usize,
}

impl<T> DocCache<T> {
    pub fn new(budget: usize) -> DocCache<T> {
        let inner = Inner { map: HashMap::new(), keys: Vec::new(), rng: 0x9e37_79b9_7f4a_7c15, bytes: 0 };
        DocCache { inner: Mutex::new(inner), budget }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // A cache: a panic elsewhere cannot leave an entry half-written (entries are immutable,
        // and the map, keys and byte count are updated together below without panicking).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, agreement: &str, sha256: &str) -> Option<Arc<T>> {
        let inner = self.lock();
        let (sha, entry, _) = inner.map.get(agreement)?;
        (sha == sha256).then(|| entry.clone())
    }

    /// Keeps `entry` (costing `bytes`), dropping other entries at random beyond the budget.
    pub fn insert(&self, agreement: &str, sha256: &str, entry: Arc<T>, bytes: usize) {
        let mut inner = self.lock();
        if let Some((_, _, old)) = inner.map.insert(agreement.to_string(), (sha256.to_string(), entry, bytes)) {
            inner.bytes -= old;
        } else {
            inner.keys.push(agreement.to_string());
        }
        inner.bytes += bytes;
        self.evict(&mut inner, agreement);
    }

    /// Adds `bytes` to what the entry of `agreement` costs (something made for it after it was
    /// kept), when the entry is still that document's; then evicts as [`DocCache::insert`] does.
    pub fn charge(&self, agreement: &str, sha256: &str, bytes: usize) {
        let mut inner = self.lock();
        match inner.map.get_mut(agreement) {
            Some((sha, _, cost)) if sha == sha256 => *cost += bytes,
            _ => return,
        }
        inner.bytes += bytes;
        self.evict(&mut inner, agreement);
    }

    /// Drops entries other than `keep`'s at random until the budget holds (or one is left).
    fn evict(&self, inner: &mut Inner<T>, keep: &str) {
        while inner.bytes > self.budget && inner.keys.len() > 1 {
            let mut x = inner.rng;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            inner.rng = x;
            let i = (x % inner.keys.len() as u64) as usize;
            if inner.keys[i] == keep {
                continue;
            }
            let victim = inner.keys.swap_remove(i);
            if let Some((_, _, b)) = inner.map.remove(&victim) {
                inner.bytes -= b;
            }
        }
    }

    /// Entries and bytes kept (for tests and metrics).
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.map.len(), inner.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gunzip(bytes: &[u8]) -> String {
        let mut s = String::new();
        flate2::read::GzDecoder::new(bytes).read_to_string(&mut s).expect("a valid gzip member");
        s
    }

    #[test]
    fn a_page_assembled_around_a_kept_document_decodes_to_the_page_with_a_valid_checksum() {
        let doc: String = (0..2_000).map(|i| format!("<p>Clause {i}: the Business Associate shall …</p>\n")).collect();
        let kept = Deflated::new(&doc).expect("compresses");
        assert!(kept.len() < doc.len() / 4, "{} of {}", kept.len(), doc.len());
        for (head, tail) in [("<html><body>", "</body></html>"), ("", ""), ("é", "ü\u{1F600}")] {
            let page = gzip(head.as_bytes(), &kept, tail.as_bytes()).to_vec();
            // GzDecoder checks the CRC-32 and the length at the end of the member.
            assert_eq!(gunzip(&page), format!("{head}{doc}{tail}"));
        }
        assert_eq!(kept.inflate().expect("inflates"), doc);
    }

    #[test]
    fn parts_longer_than_a_stored_block_are_split_into_several() {
        let kept = Deflated::new("<main>x</main>").expect("compresses");
        let head = "h".repeat(70_000);
        let tail = "t".repeat(140_000);
        assert_eq!(
            gunzip(&gzip(head.as_bytes(), &kept, tail.as_bytes()).to_vec()),
            format!("{head}<main>x</main>{tail}")
        );
        let empty = Deflated::new("").expect("compresses");
        assert_eq!(gunzip(&gzip(b"a", &empty, b"b").to_vec()), "ab");
        assert_eq!(gunzip(&gzip(b"", &empty, b"").to_vec()), "");
        // Exactly one stored block's worth, and one byte more.
        let full = "f".repeat(usize::from(u16::MAX));
        let over = "o".repeat(usize::from(u16::MAX) + 1);
        assert_eq!(
            gunzip(&gzip(full.as_bytes(), &kept, over.as_bytes()).to_vec()),
            format!("{full}<main>x</main>{over}")
        );
        assert_eq!(empty.inflate().expect("inflates"), "");
    }

    #[test]
    fn a_page_body_announces_its_exact_length_and_yields_its_parts_in_order() {
        use http_body::Body;
        let kept = Deflated::new("<main>x</main>").expect("compresses");
        let mut body = gzip(b"head", &kept, b"tail");
        let whole = body.to_vec();
        assert_eq!(body.size_hint().exact(), Some(whole.len() as u64));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut sent = Vec::new();
        while let Poll::Ready(Some(frame)) = Pin::new(&mut body).poll_frame(&mut cx) {
            let data = frame.expect("infallible").into_data().expect("a data frame");
            assert!(!data.is_empty(), "no empty frames");
            sent.extend_from_slice(&data);
            assert_eq!(body.size_hint().exact(), Some((whole.len() - sent.len()) as u64));
        }
        assert!(body.is_end_stream());
        assert_eq!(sent, whole);
        assert_eq!(gunzip(&sent), "head<main>x</main>tail");
    }

    #[test]
    fn accept_encoding_is_read_with_its_weights() {
        for yes in [
            "gzip",
            "gzip, deflate, br",
            "br;q=1.0, GZIP;q=0.5",
            "*",
            "x-gzip",
            "deflate, gzip;q=0.001",
            "*;q=0, gzip",
            "gzip; aé",
        ] {
            assert!(accepts_gzip(yes), "{yes}");
        }
        for no in ["", "identity", "deflate, br", "gzip;q=0", "gzip; q=0.0", "br, *;q=0", "gzipx", "gzip;q=0, *", "é;q"]
        {
            assert!(!accepts_gzip(no), "{no}");
        }
    }

    #[test]
    fn the_cache_keeps_entries_within_its_byte_budget_and_the_newest_always() {
        let cache = DocCache::new(100);
        for i in 0..5 {
            cache.insert(&format!("ag_{i}"), &format!("sha{i}"), Arc::new(i), 30);
            assert_eq!(cache.get(&format!("ag_{i}"), &format!("sha{i}")).as_deref(), Some(&i));
        }
        assert_eq!(cache.usage(), (3, 90));
        let kept: Vec<usize> =
            (0..5).filter_map(|i| cache.get(&format!("ag_{i}"), &format!("sha{i}")).map(|e| *e)).collect();
        assert_eq!(kept.len(), 3, "{kept:?}");
        assert!(kept.contains(&4));
        // Keep the test below independent of which entries the random eviction dropped.
        cache.insert("ag_4", "sha4", Arc::new(4), 30);
        cache.insert("ag_3", "sha3", Arc::new(3), 30);
        // Another document under the same agreement (a stale entry) is a miss.
        assert!(cache.get("ag_3", "sha4").is_none());
        // A new document for an agreement replaces its entry (and something else goes).
        cache.insert("ag_4", "sha5", Arc::new(40), 50);
        assert!(cache.usage().1 <= 100);
        assert_eq!(cache.get("ag_4", "sha5").as_deref(), Some(&40));
        assert!(cache.get("ag_4", "sha4").is_none());
    }

    #[test]
    fn a_cyclic_walk_over_more_documents_than_fit_still_mostly_hits() {
        // 1,000 documents of 10 bytes, room for 900: oldest-out would miss on every view.
        let cache = DocCache::new(9_000);
        let (mut hits, mut views) = (0, 0);
        for round in 0..20 {
            for i in 0..1_000 {
                let id = format!("ag_{i}");
                if round >= 10 {
                    views += 1;
                }
                if cache.get(&id, "sha").is_some() {
                    hits += usize::from(round >= 10);
                } else {
                    cache.insert(&id, "sha", Arc::new(i), 10);
                }
            }
        }
        assert!(cache.usage().1 <= 9_000);
        assert!(hits * 10 > views * 7, "{hits} hits in {views} views");
    }

    #[test]
    fn what_is_made_for_an_entry_later_counts_against_the_budget_and_evicts_others() {
        let cache = DocCache::new(100);
        cache.insert("ag_a", "sha_a", Arc::new(1), 40);
        cache.insert("ag_b", "sha_b", Arc::new(2), 40);
        // Charged to another document of the agreement, or to none: nothing changes.
        cache.charge("ag_a", "sha_old", 50);
        cache.charge("ag_gone", "sha", 50);
        assert_eq!(cache.usage(), (2, 80));
        cache.charge("ag_a", "sha_a", 15);
        assert_eq!(cache.usage(), (2, 95));
        // Past the budget the charged entry stays and another goes.
        cache.charge("ag_a", "sha_a", 15);
        assert_eq!(cache.usage(), (1, 70));
        assert!(cache.get("ag_a", "sha_a").is_some());
        // The charge is part of the entry: replacing the entry gives it back.
        cache.insert("ag_a", "sha_a2", Arc::new(3), 10);
        assert_eq!(cache.usage(), (1, 10));
    }

    #[test]
    fn agreements_sent_with_identical_documents_keep_an_entry_each() {
        let cache = DocCache::new(1_000);
        for i in 0..10 {
            cache.insert(&format!("ag_{i}"), "the same sha", Arc::new(i), 10);
        }
        assert_eq!(cache.usage(), (10, 100));
        for i in 0..10 {
            assert_eq!(cache.get(&format!("ag_{i}"), "the same sha").as_deref(), Some(&i));
        }
    }
}
