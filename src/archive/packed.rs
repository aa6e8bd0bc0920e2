//! An index [`Entry`] without its id, packed (issue 14 §6: memory at 100,000 agreements).
//!
//! An `Entry` as Rust lays it out is ~300 bytes of `String`/`Vec`/`Option` headers plus about
//! eleven heap blocks (every string its own, each rounded up by the allocator): ~800 bytes per
//! agreement, most of the index. Searches never read it: they filter and sort on the index's
//! fixed-size facts and folded text, and build `Entry` values only for the page they answer.
//! So the index keeps it packed, every row's in one buffer (`search::Packs`), and unpacks on
//! demand ([`Packed::entry`]).
//!
//! Encoding: see [`pack`]. Only the index snapshot stores it (`app::snapshot`), and a snapshot
//! is read only by the build that wrote it, so the encoding can change with any release.

use super::search::{Entry, KINDS, STATUSES};
use crate::domain::compact::{Reader, put_opt_u64, put_sha, put_str, put_u64};

/// The titles Countersign gives agreements (`render::context::title`), packed as one byte: a
/// dictionary for the encoding only, so any other title is kept as it is.
const TITLES: [&str; 3] =
    ["Business Associate Agreement", "Subcontractor Business Associate Agreement", "Data Use Agreement"];

/// Appends `e` packed, all but its id, to `w` ([`Packed`] reads it).
///
/// Beyond [`crate::domain::compact`]'s fields: the kind, title and status as their position in
/// [`KINDS`], [`TITLES`] and [`STATUSES`] plus one (0 and the string for any other), and the effective and
/// renewal dates as YYYYMMDD plus one or two when they are written YYYY-MM-DD (0 and the string
/// otherwise; for the renewal date 0 is none and 1 the string). Each is exactly reversible.
pub(super) fn pack(e: &Entry, w: &mut Vec<u8>) {
    // Room for the usual entry at once: its free strings and ~70 bytes of codes and numbers.
    let strings = e.parties[0].len() + e.parties[1].len() + e.created_by.len();
    w.reserve(strings + e.states.iter().map(|s| s.len() + 1).sum::<usize>() + 80);
    put_code(w, &KINDS, &e.kind);
    put_code(w, &TITLES, &e.title);
    put_str(w, &e.parties[0]);
    put_str(w, &e.parties[1]);
    put_code(w, STATUSES, &e.status);
    put_u64(w, e.states.len() as u64);
    for s in &e.states {
        put_str(w, s);
    }
    match canonical_date(&e.effective_date) {
        Some(n) => put_u64(w, u64::from(n) + 1),
        None => {
            w.push(0);
            put_str(w, &e.effective_date);
        }
    }
    match e.renewal_date.as_deref() {
        None => w.push(0),
        Some(d) => match canonical_date(d) {
            Some(n) => put_u64(w, u64::from(n) + 2),
            None => {
                w.push(1);
                put_str(w, d);
            }
        },
    }
    put_opt_u64(w, e.executed_at);
    put_u64(w, e.created_at);
    put_u64(w, e.updated_at);
    put_sha(w, e.final_sha256.as_deref());
    put_str(w, &e.created_by);
}

/// `value`'s position in `list` plus one, or 0 and the string.
fn put_code(w: &mut Vec<u8>, list: &[&str], value: &str) {
    match list.iter().position(|k| *k == value) {
        Some(i) => put_u64(w, i as u64 + 1),
        None => {
            w.push(0);
            put_str(w, value);
        }
    }
}

/// YYYYMMDD when `s` is a date written YYYY-MM-DD (so that [`date_string`] gives `s` back).
fn canonical_date(s: &str) -> Option<u32> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !digits(0..4) || !digits(5..7) || !digits(8..10) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    Some(num(0..4) * 10_000 + num(5..7) * 100 + num(8..10))
}

fn date_string(n: u64) -> Result<String, String> {
    if n > 99_999_999 {
        return Err(format!("date {n} out of range"));
    }
    Ok(format!("{:04}-{:02}-{:02}", n / 10_000, n / 100 % 100, n % 100))
}

/// What [`put_code`] wrote: the list's string, or the one that follows.
fn code<'a>(r: &mut Reader<'a>, list: &[&'static str]) -> Result<&'a str, String> {
    match r.u64()? {
        0 => r.str(),
        n => usize::try_from(n - 1).ok().and_then(|i| list.get(i)).copied().ok_or_else(|| format!("no code {n}")),
    }
}

/// What [`pack`] wrote for the effective date (`opt` false) or the renewal date (`opt` true).
fn date(r: &mut Reader<'_>, opt: bool) -> Result<Option<String>, String> {
    match (r.u64()?, opt) {
        (0, false) | (1, true) => r.string().map(Some),
        (0, true) => Ok(None),
        (n, opt) => date_string(n - 1 - u64::from(opt)).map(Some),
    }
}

/// Checks that `b` is exactly one packed entry: walked field by field, so what an index keeps
/// from a snapshot always unpacks.
pub(super) fn check(b: &[u8]) -> Result<(), String> {
    let mut r = Reader(b);
    code(&mut r, &KINDS)?;
    code(&mut r, &TITLES)?;
    // `str`, not `skip_str`: every string is checked to be UTF-8, as unpacking expects.
    for _ in 0..2 {
        r.str()?;
    }
    code(&mut r, STATUSES)?;
    for _ in 0..r.count()? {
        r.str()?;
    }
    date(&mut r, false)?;
    date(&mut r, true)?;
    r.opt_u64()?;
    r.u64()?;
    r.u64()?;
    r.sha()?;
    r.str()?;
    if !r.0.is_empty() {
        return Err("bytes after a packed entry".into());
    }
    Ok(())
}

/// An [`Entry`] without its id, packed by [`pack`]: its bytes, wherever the index keeps them.
/// Searches never read it: they filter and sort on the index's fixed-size facts and folded
/// text, and unpack entries only for the page they answer ([`Packed::entry`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Packed<'a>(pub(super) &'a [u8]);

impl<'a> Packed<'a> {
    /// The entry again, with `id`: equal to the one packed.
    pub(super) fn entry(self, id: &str) -> Entry {
        self.read(|r| {
            let kind = code(r, &KINDS)?.to_string();
            let title = code(r, &TITLES)?.to_string();
            let parties = [r.string()?, r.string()?];
            let status = code(r, STATUSES)?.to_string();
            let n = r.count()?;
            let states = (0..n).map(|_| r.string()).collect::<Result<Vec<_>, _>>()?;
            Ok(Entry {
                id: id.to_string(),
                kind,
                title,
                parties,
                status,
                states,
                effective_date: date(r, false)?.unwrap_or_default(),
                renewal_date: date(r, true)?,
                executed_at: r.opt_u64()?,
                created_at: r.u64()?,
                updated_at: r.u64()?,
                final_sha256: r.sha()?,
                created_by: r.string()?,
            })
        })
        .unwrap_or_else(|| Entry {
            id: id.to_string(),
            kind: String::new(),
            title: String::new(),
            parties: [String::new(), String::new()],
            status: String::new(),
            states: Vec::new(),
            effective_date: String::new(),
            renewal_date: None,
            executed_at: None,
            created_at: 0,
            updated_at: 0,
            final_sha256: None,
            created_by: String::new(),
        })
    }

    /// The title and the two parties' legal names, read in place (no string is allocated).
    pub(super) fn title_and_parties(self) -> (&'a str, [&'a str; 2]) {
        self.read(|r| {
            code(r, &KINDS)?;
            Ok((code(r, &TITLES)?, [r.str()?, r.str()?]))
        })
        .unwrap_or(("", ["", ""]))
    }

    /// The status, read without unpacking the other strings.
    pub(super) fn status(self) -> &'a str {
        self.read(|r| {
            code(r, &KINDS)?;
            code(r, &TITLES)?;
            r.skip_str()?;
            r.skip_str()?;
            code(r, STATUSES)
        })
        .unwrap_or("")
    }

    /// `created_at`, read without unpacking the strings.
    pub(super) fn created_at(self) -> u64 {
        self.read(|r| {
            code(r, &KINDS)?;
            code(r, &TITLES)?;
            r.skip_str()?;
            r.skip_str()?;
            code(r, STATUSES)?;
            for _ in 0..r.count()? {
                r.skip_str()?;
            }
            for opt in [false, true] {
                match (r.u64()?, opt) {
                    (0, false) | (1, true) => r.skip_str()?,
                    _ => {}
                }
            }
            r.opt_u64()?;
            r.u64()
        })
        .unwrap_or(0)
    }

    /// Runs `f` over the bytes. They are always [`pack`]'s own (an index checks what it reads
    /// from a snapshot), so `f` cannot fail; were it to (a bug), debug builds stop, and release
    /// builds log it and answer empty values rather than stop the process.
    fn read<T>(self, f: impl FnOnce(&mut Reader<'a>) -> Result<T, String>) -> Option<T> {
        match f(&mut Reader(self.0)) {
            Ok(v) => Some(v),
            Err(e) => {
                debug_assert!(false, "a packed index entry does not read back: {e}");
                tracing::error!(error = %e, "a packed index entry does not read back");
                None
            }
        }
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

    fn packed(e: &Entry) -> Vec<u8> {
        let mut b = Vec::new();
        pack(e, &mut b);
        b
    }

    #[test]
    fn an_entry_unpacks_to_the_one_packed_with_every_option_and_odd_values() {
        let e = entry();
        let b = packed(&e);
        let p = Packed(&b);
        assert_eq!(p.entry("agr_1"), e);
        assert_eq!(p.status(), "executed");
        assert_eq!(p.title_and_parties(), (e.title.as_str(), [e.parties[0].as_str(), e.parties[1].as_str()]));
        assert_eq!(p.created_at(), e.created_at);
        // Its bytes check; any shorter or longer run of them does not.
        assert_eq!(check(&b), Ok(()));
        for n in 0..b.len() {
            assert!(check(&b[..n]).is_err(), "{n} bytes");
        }
        assert!(check(&[&b[..], &[0]].concat()).is_err());
        // A string that is not UTF-8 is refused, not kept to fail when unpacked.
        let mut bad = b.clone();
        assert_eq!(&bad[..3], &[1, 0, e.title.len() as u8], "the kind's code, then a title of its own");
        bad[3] = 0xff;
        assert!(check(&bad).is_err());
        // A lowercase digest is kept as its 32 bytes, not its 64 digits and their length; known
        // kinds, titles and statuses as one byte, dates written YYYY-MM-DD as a number.
        let upper = packed(&Entry { final_sha256: Some("AB".repeat(32)), ..e.clone() });
        assert_eq!(upper.len() - b.len(), 33);
        let odd = Entry { kind: "Baa".into(), status: "Executed".into(), ..e.clone() };
        assert_eq!(packed(&odd).len() - b.len(), 1 + 3 + 1 + 8);
        for (i, title) in TITLES.iter().enumerate() {
            let t = Entry { title: title.to_string(), ..e.clone() };
            let b2 = packed(&t);
            assert_eq!(b2.len() + e.title.len() + 1, b.len(), "{title} is one byte");
            assert_eq!(b2[1], i as u8 + 1);
            assert_eq!(check(&b2), Ok(()));
            assert_eq!(Packed(&b2).entry("agr_1"), t);
            assert_eq!(Packed(&b2).title_and_parties().0, *title);
            assert_eq!(Packed(&b2).status(), "executed");
            assert_eq!(Packed(&b2).created_at(), e.created_at);
        }
        // A code past the dictionary is refused.
        let mut past = packed(&Entry { title: TITLES[2].into(), ..e.clone() });
        past[1] = TITLES.len() as u8 + 1;
        assert!(check(&past).is_err());
        let dates = Entry { effective_date: "2026-1-1".into(), renewal_date: Some("soon".into()), ..e.clone() };
        assert_eq!(packed(&dates).len(), b.len() + 6 + 2);

        let bare = Entry {
            states: vec![],
            renewal_date: None,
            executed_at: None,
            final_sha256: None,
            created_at: 0,
            title: String::new(),
            created_by: String::new(),
            effective_date: String::new(),
            ..e.clone()
        };
        let b = packed(&bare);
        assert_eq!(Packed(&b).entry("agr_1"), bare);
        assert_eq!(Packed(&b).created_at(), 0);

        // Every value that is not the usual kind comes back as it was.
        let odd_dates =
            ["2026-01-01", "0000-00-00", "9999-99-99", "2026-01-1", "2026/01/01", "", "é", "２０２６-01-01"];
        let digests = ["AB".repeat(32), "ab".repeat(31), "zz".repeat(32), String::new(), "é".repeat(32)];
        for (i, d) in digests.into_iter().enumerate() {
            for date in odd_dates {
                let e = Entry {
                    final_sha256: Some(d.clone()),
                    status: "some_future_status".into(),
                    kind: ["baa", "dua", "BAA", "", "x"][i].into(),
                    effective_date: date.into(),
                    renewal_date: [None, Some(date.to_string())][i % 2].clone(),
                    ..e.clone()
                };
                let b = packed(&e);
                assert_eq!(check(&b), Ok(()), "{e:?}");
                assert_eq!(Packed(&b).entry("agr_1"), e);
                assert_eq!(Packed(&b).status(), "some_future_status");
                assert_eq!(Packed(&b).created_at(), e.created_at);
            }
        }

        // Long strings take multi-byte lengths.
        let long = Entry { title: "x".repeat(70_000), states: vec!["S".repeat(200); 130], ..e.clone() };
        let b = packed(&long);
        assert_eq!(Packed(&b).entry("agr_1"), long);
        assert_eq!(Packed(&b).created_at(), long.created_at);
    }

    #[test]
    fn every_title_countersign_gives_an_agreement_packs_as_one_byte() {
        use crate::domain::intake::{Kind, Relationship};
        let parse =
            |json: &str| crate::domain::parse::parse_intake(json, &crate::render::fonts::printable).expect("parses");
        let baa = parse(include_str!("../../examples/intake/baa-tx-ca.json"));
        let mut sub = baa.clone();
        if let Kind::Baa(b) = &mut sub.kind {
            b.relationship = Relationship::BusinessAssociateToSubcontractor;
        }
        let dua = parse(include_str!("../../examples/intake/dua-ny-research.json"));
        let titles: Vec<&str> = [&baa, &sub, &dua].map(crate::render::context::title).to_vec();
        assert_eq!(titles, TITLES, "the dictionary is the titles the templates give");
    }
}
