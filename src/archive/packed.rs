//! An index [`Entry`] without its id, packed into one allocation (issue 14 §6: memory at
//! 100,000 agreements).
//!
//! An `Entry` as Rust lays it out is ~300 bytes of `String`/`Vec`/`Option` headers plus about
//! eleven heap blocks (every string its own, each rounded up by the allocator): ~800 bytes per
//! agreement, most of the index. Searches never read it: they filter and sort on the index's
//! fixed-size facts and folded text, and build `Entry` values only for the page they answer.
//! So the index keeps it packed and unpacks on demand ([`Packed::entry`]), which also makes the
//! start-up build cheaper (one allocation per row instead of eleven; rows a quarter the size
//! to move as the vector grows).
//!
//! Encoding, in [`Entry`]'s field order without `id`: strings as a LEB128 length and UTF-8
//! bytes; `states` as a count and that many strings; options as a tag byte (0 none, 1 some)
//! and the value; integers as LEB128; `final_sha256` as a tag (0 none; 1 the string as it came;
//! 2 the 32 bytes of 64 lowercase hex digits). It lives only in memory: nothing stores it, so it
//! can change with any release.

use std::borrow::Cow;

use super::search::Entry;

/// See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Packed(Box<[u8]>);

impl Packed {
    /// `e` packed, all but its id.
    pub(super) fn new(e: &Entry) -> Packed {
        let mut b = Vec::with_capacity(
            24 + e.kind.len()
                + e.title.len()
                + e.parties[0].len()
                + e.parties[1].len()
                + e.status.len()
                + e.states.iter().map(|s| s.len() + 1).sum::<usize>()
                + e.effective_date.len()
                + e.renewal_date.as_ref().map_or(0, String::len)
                + e.created_by.len()
                + 32,
        );
        put_str(&mut b, &e.kind);
        put_str(&mut b, &e.title);
        put_str(&mut b, &e.parties[0]);
        put_str(&mut b, &e.parties[1]);
        put_str(&mut b, &e.status);
        put_uint(&mut b, e.states.len() as u64);
        for s in &e.states {
            put_str(&mut b, s);
        }
        put_str(&mut b, &e.effective_date);
        match &e.renewal_date {
            None => b.push(0),
            Some(s) => {
                b.push(1);
                put_str(&mut b, s);
            }
        }
        match e.executed_at {
            None => b.push(0),
            Some(t) => {
                b.push(1);
                put_uint(&mut b, t);
            }
        }
        put_uint(&mut b, e.created_at);
        put_uint(&mut b, e.updated_at);
        match &e.final_sha256 {
            None => b.push(0),
            Some(s) => match lower_hex32(s) {
                Some(raw) => {
                    b.push(2);
                    b.extend_from_slice(&raw);
                }
                None => {
                    b.push(1);
                    put_str(&mut b, s);
                }
            },
        }
        put_str(&mut b, &e.created_by);
        Packed(b.into_boxed_slice())
    }

    /// The entry again, with `id`: equal to the one packed.
    pub(super) fn entry(&self, id: &str) -> Entry {
        let mut r = Reader(&self.0);
        let kind = r.string();
        let title = r.string();
        let parties = [r.string(), r.string()];
        let status = r.string();
        let n = r.uint();
        // Each state takes at least its length byte: a count beyond the bytes left is not ours.
        let mut states = Vec::with_capacity(usize::try_from(n).unwrap_or(0).min(r.0.len()));
        for _ in 0..n {
            states.push(r.string());
        }
        let effective_date = r.string();
        let renewal_date = r.tag().then(|| r.string());
        let executed_at = r.tag().then(|| r.uint());
        let created_at = r.uint();
        let updated_at = r.uint();
        let final_sha256 = match r.byte() {
            0 => None,
            2 => Some(hex::encode(r.take(32))),
            _ => Some(r.string()),
        };
        let created_by = r.string();
        Entry {
            id: id.to_string(),
            kind,
            title,
            parties,
            status,
            states,
            effective_date,
            renewal_date,
            executed_at,
            created_at,
            updated_at,
            final_sha256,
            created_by,
        }
    }

    /// The status as packed (for a status the index does not know by number).
    pub(super) fn status(&self) -> Cow<'_, str> {
        let mut r = Reader(&self.0);
        for _ in 0..4 {
            r.skip_str();
        }
        r.str()
    }

    /// `created_at`, read without unpacking the strings.
    pub(super) fn created_at(&self) -> u64 {
        let mut r = Reader(&self.0);
        for _ in 0..5 {
            r.skip_str();
        }
        for _ in 0..r.uint() {
            r.skip_str();
        }
        r.skip_str();
        if r.tag() {
            r.skip_str();
        }
        if r.tag() {
            r.uint();
        }
        r.uint()
    }

    /// Bytes held, for the tests' accounting.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.0.len()
    }
}

/// 64 lowercase hex digits as their 32 bytes; None for anything else (kept as it came, so the
/// entry unpacks to the string packed).
fn lower_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

fn put_uint(b: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        b.push((v as u8) | 0x80);
        v >>= 7;
    }
    b.push(v as u8);
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    put_uint(b, s.len() as u64);
    b.extend_from_slice(s.as_bytes());
}

/// Reads what [`Packed::new`] wrote. The bytes are always its own, so nothing here can meet a
/// malformed value; were one to appear (a bug), reads past the end answer zeros and empty
/// strings, and bytes that are not UTF-8 are replaced, instead of stopping the process.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }

    fn tag(&mut self) -> bool {
        self.byte() != 0
    }

    fn uint(&mut self) -> u64 {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte();
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
        }
        v
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    fn str(&mut self) -> Cow<'a, str> {
        let n = usize::try_from(self.uint()).unwrap_or(usize::MAX);
        String::from_utf8_lossy(self.take(n))
    }

    fn string(&mut self) -> String {
        self.str().into_owned()
    }

    fn skip_str(&mut self) {
        let n = usize::try_from(self.uint()).unwrap_or(usize::MAX);
        self.take(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            id: "agr_1".into(),
            kind: "baa".into(),
            title: "Business Associate Agreement — Núñez Clinic".into(),
            parties: ["Marta Núñez Clinic, P.C.".into(), "Acme Health Data, Inc.".into()],
            status: "executed".into(),
            states: vec!["CA".into(), "tx ".into()],
            effective_date: "2026-01-01".into(),
            renewal_date: Some("2027-01-01".into()),
            executed_at: Some(1_767_225_600),
            created_at: 1_767_000_000,
            updated_at: u64::MAX,
            final_sha256: Some("ab".repeat(32)),
            created_by: "key:sales-1".into(),
        }
    }

    #[test]
    fn an_entry_unpacks_to_the_one_packed_with_every_option_and_odd_values() {
        let e = entry();
        let p = Packed::new(&e);
        assert_eq!(p.entry("agr_1"), e);
        assert_eq!(p.status(), "executed");
        assert_eq!(p.created_at(), e.created_at);
        // A lowercase digest is kept as its 32 bytes, not its 64 digits and their length.
        let upper = Packed::new(&Entry { final_sha256: Some("AB".repeat(32)), ..e.clone() });
        assert_eq!(upper.len() - p.len(), 33);

        let bare = Entry {
            states: vec![],
            renewal_date: None,
            executed_at: None,
            final_sha256: None,
            created_at: 0,
            title: String::new(),
            created_by: String::new(),
            ..e.clone()
        };
        let p = Packed::new(&bare);
        assert_eq!(p.entry("agr_1"), bare);
        assert_eq!(p.created_at(), 0);

        // Digests that are not 64 lowercase hex digits come back as they were.
        for odd in ["AB".repeat(32), "ab".repeat(31), "zz".repeat(32), String::new(), "é".repeat(32)] {
            let e = Entry { final_sha256: Some(odd.clone()), status: "some_future_status".into(), ..e.clone() };
            let p = Packed::new(&e);
            assert_eq!(p.entry("agr_1"), e, "{odd}");
            assert_eq!(p.status(), "some_future_status");
            assert_eq!(p.created_at(), e.created_at);
        }

        // Long strings take multi-byte lengths.
        let long = Entry { title: "x".repeat(70_000), states: vec!["S".repeat(200); 130], ..e.clone() };
        let p = Packed::new(&long);
        assert_eq!(p.entry("agr_1"), long);
        assert_eq!(p.created_at(), long.created_at);
    }
}
