//! The index as bytes, for the snapshot a server writes when it stops and reads when it starts
//! (`app::snapshot` owns the file, its checks and when it may be used). Every row goes as it is
//! held: its fixed-size facts, folded text, creation time and creator (a position in the list
//! of creators written first), odd state codes and lifecycle facts. Reading it back folds and
//! normalises nothing: it allocates the rows and hashes their
//! ids, and checks every field as it goes, so a damaged snapshot is an error, never a panic or
//! a row that cannot be read later.
//!
//! Fields are [`crate::domain::compact`]'s. The layout has no version of its own: a snapshot is
//! read only by the build that wrote it.

use std::hash::BuildHasher;

use super::{Hot, Index, Row};
use crate::domain::agreement::Life;
use crate::domain::compact::{Reader, put_opt_str, put_opt_u64, put_str, put_u64};
use crate::domain::intake::Date;

/// A date as one number, YYYYMMDD.
fn put_date(w: &mut Vec<u8>, d: Option<Date>) {
    put_opt_u64(w, d.map(|d| u64::from(d.number())));
}

fn read_date(r: &mut Reader<'_>) -> Result<Option<Date>, String> {
    let Some(n) = r.opt_u64()? else { return Ok(None) };
    Date::from_number(n).map(Some).ok_or_else(|| format!("no date {n}"))
}

fn u32_of(n: u64) -> Result<u32, String> {
    u32::try_from(n).map_err(|_| format!("{n} out of range"))
}

impl Index {
    /// Appends the index to `w`: [`Index::read_snapshot`] reads it back.
    pub fn write_snapshot(&self, w: &mut Vec<u8>) {
        put_u64(w, self.creators.len() as u64);
        for c in &self.creators {
            put_str(w, c);
        }
        put_u64(w, self.rows.len() as u64);
        // The live text's length, so reading sizes its buffer once.
        put_u64(w, self.text.spans.iter().map(|s| s.len() as u64).sum());
        for (i, row) in self.rows.iter().enumerate() {
            put_str(w, self.text.id(i));
            let h = &self.hot[i];
            put_u64(w, h.updated_at);
            put_u64(w, h.names_prefix);
            put_u64(w, h.states_mask);
            put_u64(w, u64::from(h.effective));
            put_u64(w, u64::from(h.renewal));
            w.push(h.kind);
            w.push(h.status);
            let span = self.text.spans[i];
            put_str(w, self.text.hay(i));
            put_u64(w, (span.names - span.start) as u64);
            put_u64(w, row.created_at);
            put_u64(w, u64::from(row.creator));
            let odd = row.odd_states.as_deref().unwrap_or_default();
            put_u64(w, odd.len() as u64);
            for code in odd {
                put_str(w, code);
            }
            let l = &row.life;
            put_date(w, l.effective);
            put_u64(w, u64::from(l.term_months));
            w.push(u8::from(l.auto_renew) | u8::from(l.terminated) << 1 | u8::from(l.disposed) << 2);
            put_date(w, l.termination);
            put_opt_str(w, l.parent.as_deref());
            put_u64(w, l.revision);
        }
    }

    /// The index [`Index::write_snapshot`] wrote; an error names the first field that does not
    /// read.
    pub fn read_snapshot(r: &mut Reader<'_>) -> Result<Index, String> {
        let mut index = Index::new();
        for _ in 0..r.count()? {
            let c = r.str()?;
            if index.creator_at.contains_key(c) {
                return Err(format!("creator {c:?} is listed twice"));
            }
            index.creator(c);
        }
        let n = r.count()?;
        // Sized once, and never beyond what the bytes left could hold: a row takes at least
        // `MIN_ROW` bytes, text at least its own length.
        const MIN_ROW: usize = 20;
        let text = usize::try_from(r.u64()?).unwrap_or(usize::MAX).min(r.0.len());
        let rows_held = n.min(r.0.len() / MIN_ROW);
        index.hot.reserve_exact(rows_held);
        index.rows.reserve_exact(rows_held);
        index.text.spans.reserve_exact(rows_held);
        index.text.buf.reserve_exact(text);
        let (texts, hasher) = (&index.text, &index.hasher);
        index.by_id.reserve(rows_held, |&j| hasher.hash_one(texts.id(j)));
        for _ in 0..n {
            let id = r.str()?;
            let hot = Hot {
                updated_at: r.u64()?,
                names_prefix: r.u64()?,
                states_mask: r.u64()?,
                effective: u32_of(r.u64()?)?,
                renewal: u32_of(r.u64()?)?,
                kind: r.byte()?,
                status: r.byte()?,
            };
            let hay = r.str()?;
            let names_at = usize::try_from(r.u64()?).map_err(|_| "text offset out of range")?;
            if !hay.is_char_boundary(names_at) {
                return Err(format!("{id}: text offset {names_at} is not in its text"));
            }
            let created_at = r.u64()?;
            let creator = u32_of(r.u64()?)?;
            if creator as usize >= index.creators.len() {
                return Err(format!("{id}: creator {creator} is not listed"));
            }
            let odd = (0..r.count()?).map(|_| r.str().map(Box::from)).collect::<Result<Vec<Box<str>>, _>>()?;
            let effective = read_date(r)?;
            let term_months = u16::try_from(r.u64()?).map_err(|_| format!("{id}: term out of range"))?;
            let flags = r.byte()?;
            if flags > 7 {
                return Err(format!("{id}: bad flags {flags}"));
            }
            let life = Life {
                effective,
                term_months,
                auto_renew: flags & 1 != 0,
                terminated: flags & 2 != 0,
                disposed: flags & 4 != 0,
                termination: read_date(r)?,
                parent: r.opt_string()?.map(String::into_boxed_str),
                revision: r.u64()?,
            };
            let odd_states = (!odd.is_empty()).then(|| odd.into_boxed_slice());
            index.insert_row(hot, id, (hay, names_at), Row { created_at, creator, odd_states, life });
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::corpus;
    use super::*;

    #[allow(clippy::type_complexity)]
    fn lives(ix: &Index) -> Vec<((String, &'static str, u64, String), Life)> {
        let mut v: Vec<_> = ix
            .lives()
            .map(|(e, l)| ((e.id().to_string(), e.status(), e.created_at(), e.created_by().to_string()), l.clone()))
            .collect();
        v.sort_by(|a, b| a.0.0.cmp(&b.0.0));
        v
    }

    #[test]
    fn an_index_read_from_its_snapshot_answers_every_search_as_the_index_did() {
        let entries = corpus(7, 300);
        let mut ix = Index::new();
        for (i, e) in entries.iter().enumerate() {
            let parent = (i % 5 == 1).then(|| entries[i - 1].id.clone().into_boxed_str());
            let life = Life {
                effective: Date::parse(&e.effective_date).ok(),
                term_months: (i % 40) as u16,
                auto_renew: i % 2 == 0,
                terminated: i % 7 == 0,
                termination: (i % 7 == 0).then(|| Date::from_days(20_000 + i as i64)),
                disposed: i % 11 == 0,
                parent,
                revision: i as u64,
            };
            let created_by = format!("person{}@example.org", i % 3);
            ix.upsert_life(super::super::Entry { created_by, ..e.clone() }, life);
        }
        // Replaced and removed rows leave dead text; a state code without a bit of its own.
        let mut odd = entries[3].clone();
        odd.states = vec!["ZZ".into(), "ca".into()];
        ix.upsert(odd);
        ix.remove(&entries[10].id);

        let mut bytes = Vec::new();
        ix.write_snapshot(&mut bytes);
        let mut r = Reader(&bytes);
        let back = Index::read_snapshot(&mut r).expect("reads back");
        assert!(r.0.is_empty());

        assert_eq!(lives(&back), lives(&ix));
        assert_eq!(back.len(), ix.len());
        for e in &entries {
            let children = |x: &Index| x.children(&e.id).map(str::to_string).collect::<Vec<_>>();
            assert_eq!(children(&back), children(&ix), "{}", e.id);
        }
        for q in [
            super::super::tests::query(|q| q.state = Some("zz".into())),
            super::super::tests::query(|q| q.state = Some("CA".into())),
            super::super::tests::query(|q| q.q = Some("clinic".into())),
            super::super::tests::query(|q| q.sort = Some("counterparty".into())),
            super::super::tests::query(|q| q.renewal_before = Some("2027-06-01".into())),
            super::super::tests::query(|q| q.sort = Some("-effective_date".into())),
            super::super::tests::query(|q| q.created_by = Some("person2@example.org".into())),
        ] {
            let (a, b) = (ix.search(&q), back.search(&q));
            assert_eq!(a, b, "{q:?}");
        }

        // Every cut short fails cleanly, and so does a text offset inside a character. A byte
        // changed anywhere either fails or reads to an index (the file's checksum is what
        // catches such a change), never panics; an index read that way is still searchable.
        for n in (0..bytes.len()).step_by(97) {
            assert!(Index::read_snapshot(&mut Reader(&bytes[..n])).is_err(), "{n} bytes");
        }
        for at in (0..bytes.len()).step_by(211) {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[at] ^= flip;
                if let Ok(ix) = Index::read_snapshot(&mut Reader(&b)) {
                    for (e, _) in ix.lives() {
                        let _ = (e.id(), e.status(), e.created_at(), e.created_by());
                    }
                    let _ = ix.search(&super::super::tests::query(|q| q.q = Some("clinic".into())));
                }
            }
        }
        // A creator listed twice (the rows name creators by position) is refused.
        let (first, second) = (b"person0@example.org", b"person1@example.org");
        let at = bytes.windows(second.len()).position(|w| w == second).expect("the creators are written");
        let mut twice = bytes.clone();
        twice[at..at + second.len()].copy_from_slice(first);
        let e = Index::read_snapshot(&mut Reader(&twice)).expect_err("a creator listed twice");
        assert!(e.contains("listed twice"), "{e}");
        let mut one = Index::new();
        one.upsert(super::super::Entry {
            title: "日".into(), parties: ["a".into(), "b".into()], ..entries[0].clone()
        });
        let mut b = Vec::new();
        one.write_snapshot(&mut b);
        assert!(Index::read_snapshot(&mut Reader(&b)).is_ok());
        let hay = "日\na\nb".as_bytes();
        let at = b.windows(hay.len()).position(|w| w == hay).expect("the text is in the bytes") + hay.len();
        assert_eq!(b[at], 4, "the names start after the title and its newline");
        b[at] = 1;
        let e = Index::read_snapshot(&mut Reader(&b)).expect_err("an offset inside a character");
        assert!(e.contains("text offset 1"), "{e}");
    }
}
