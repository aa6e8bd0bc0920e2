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
//! Encoding: [`Entry`]'s fields in order without `id`, in [`crate::domain::compact`]'s fields
//! (`states` as a count and that many strings). Only the index snapshot stores it
//! (`app::snapshot`), and a snapshot is read only by the build that wrote it, so the encoding
//! can change with any release.

use super::search::Entry;
use crate::domain::compact::{Reader, put_opt_str, put_opt_u64, put_sha, put_str, put_u64};

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
        put_u64(&mut b, e.states.len() as u64);
        for s in &e.states {
            put_str(&mut b, s);
        }
        put_str(&mut b, &e.effective_date);
        put_opt_str(&mut b, e.renewal_date.as_deref());
        put_opt_u64(&mut b, e.executed_at);
        put_u64(&mut b, e.created_at);
        put_u64(&mut b, e.updated_at);
        put_sha(&mut b, e.final_sha256.as_deref());
        put_str(&mut b, &e.created_by);
        Packed(b.into_boxed_slice())
    }

    /// The entry again, with `id`: equal to the one packed.
    pub(super) fn entry(&self, id: &str) -> Entry {
        self.read(|r| {
            let kind = r.string()?;
            let title = r.string()?;
            let parties = [r.string()?, r.string()?];
            let status = r.string()?;
            let n = r.count()?;
            let states = (0..n).map(|_| r.string()).collect::<Result<Vec<_>, _>>()?;
            Ok(Entry {
                id: id.to_string(),
                kind,
                title,
                parties,
                status,
                states,
                effective_date: r.string()?,
                renewal_date: r.opt_string()?,
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

    /// The packed bytes, for the index snapshot.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Bytes [`Packed::bytes`] gave, read back from a snapshot: walked field by field first, so
    /// what is kept always unpacks.
    pub(super) fn from_bytes(b: &[u8]) -> Result<Packed, String> {
        // `str`, not `skip_str`: every string is checked to be UTF-8, as unpacking expects.
        let mut r = Reader(b);
        for _ in 0..5 {
            r.str()?;
        }
        for _ in 0..r.count()? {
            r.str()?;
        }
        r.str()?;
        r.opt_str()?;
        r.opt_u64()?;
        r.u64()?;
        r.u64()?;
        r.sha()?;
        r.str()?;
        if !r.0.is_empty() {
            return Err("bytes after a packed entry".into());
        }
        Ok(Packed(b.into()))
    }

    /// The title and the two parties' legal names, read in place (no string is allocated).
    pub(super) fn title_and_parties(&self) -> (&str, [&str; 2]) {
        self.read(|r| {
            r.skip_str()?;
            Ok((r.str()?, [r.str()?, r.str()?]))
        })
        .unwrap_or(("", ["", ""]))
    }

    /// The status, read without unpacking the other strings.
    pub(super) fn status(&self) -> &str {
        self.read(|r| {
            for _ in 0..4 {
                r.skip_str()?;
            }
            r.str()
        })
        .unwrap_or("")
    }

    /// `created_at`, read without unpacking the strings.
    pub(super) fn created_at(&self) -> u64 {
        self.read(|r| {
            for _ in 0..5 {
                r.skip_str()?;
            }
            for _ in 0..r.count()? {
                r.skip_str()?;
            }
            r.skip_str()?;
            match r.byte()? {
                0 => {}
                1 => r.skip_str()?,
                t => return Err(format!("bad option tag {t}")),
            }
            r.opt_u64()?;
            r.u64()
        })
        .unwrap_or(0)
    }

    /// Runs `f` over the bytes. They are always [`Packed::new`]'s own, so `f` cannot fail; were
    /// it to (a bug), debug builds stop, and release builds log it and answer empty values
    /// rather than stop the process.
    fn read<'a, T>(&'a self, f: impl FnOnce(&mut Reader<'a>) -> Result<T, String>) -> Option<T> {
        match f(&mut Reader(&self.0)) {
            Ok(v) => Some(v),
            Err(e) => {
                debug_assert!(false, "a packed index entry does not read back: {e}");
                tracing::error!(error = %e, "a packed index entry does not read back");
                None
            }
        }
    }

    /// Bytes held, for the tests' accounting.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.0.len()
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
        assert_eq!(p.title_and_parties(), (e.title.as_str(), [e.parties[0].as_str(), e.parties[1].as_str()]));
        // Its bytes read back; any shorter or longer run of them does not.
        assert_eq!(Packed::from_bytes(p.bytes()), Ok(p.clone()));
        for n in 0..p.len() {
            assert!(Packed::from_bytes(&p.bytes()[..n]).is_err(), "{n} bytes");
        }
        assert!(Packed::from_bytes(&[p.bytes(), &[0]].concat()).is_err());
        // A string that is not UTF-8 is refused, not kept to fail when unpacked.
        let mut bad = p.bytes().to_vec();
        assert_eq!(&bad[..4], b"\x03baa", "the kind comes first");
        bad[1] = 0xff;
        assert!(Packed::from_bytes(&bad).is_err());
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
