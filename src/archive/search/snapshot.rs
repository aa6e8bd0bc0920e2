//! The index as bytes, for the snapshot a server writes when it stops and reads when it starts
//! (`app::snapshot` owns the file, its checks and when it may be used). Every row goes as it is
//! held: its fixed-size facts, its folded title and parties (numbers in the dictionary written
//! before the rows), creation time and creator (a position in the list of creators written
//! first), odd state codes and lifecycle facts. Reading it back folds and normalises nothing:
//! it allocates the rows, hashes their ids and the dictionary's strings, and checks every field
//! as it goes, so a damaged snapshot is an error, never a panic or a row that cannot be read
//! later.
//!
//! Fields are [`crate::domain::compact`]'s. The layout has no version of its own: a snapshot is
//! read only by the build that wrote it.

use std::hash::BuildHasher;

use super::{Dict, Hot, Index, Row, Span};
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

impl Dict {
    /// Appends the dictionary: its size, then each number's string (empty for a free number).
    fn write(&self, w: &mut Vec<u8>) {
        put_u64(w, self.len() as u64);
        for n in 0..self.len() {
            put_str(w, if self.refs[n] > 0 { self.get(n as u32) } else { "" });
        }
    }

    /// The strings [`Dict::write`] wrote, each counted by no row yet ([`Dict::count`], then
    /// [`Dict::sealed`]).
    fn read(r: &mut Reader<'_>) -> Result<Dict, String> {
        let mut dict = Dict::default();
        let n = r.count()?;
        // Never beyond what the bytes left could hold: a string takes at least one byte.
        dict.spans.reserve_exact(n.min(r.0.len()));
        for _ in 0..n {
            let s = r.str()?;
            // A folded string holds no control character (`\n` sorts before all it holds).
            if s.bytes().any(|b| b < 0x20) {
                return Err(format!("text {s:?} holds a control character"));
            }
            let start = dict.buf.len();
            dict.buf.push_str(s);
            dict.spans.push(Span { start, end: dict.buf.len() });
        }
        dict.refs = vec![0; dict.spans.len()];
        Ok(dict)
    }

    /// A row's number, counted.
    fn count(&mut self, n: u64) -> Result<u32, String> {
        let n = u32_of(n)?;
        let r = self.refs.get_mut(n as usize).ok_or_else(|| format!("text {n} is not listed"))?;
        *r = r.saturating_add(1);
        Ok(n)
    }

    /// Once every row is counted: numbers no row names are free, the others hashed. A string
    /// listed twice is an error (the two numbers would compare unequal).
    fn sealed(mut self) -> Result<Dict, String> {
        for n in 0..self.len() {
            let span = self.spans[n];
            if self.refs[n] == 0 {
                self.dead += span.len();
                self.spans[n] = Span { start: 0, end: 0 };
                self.free.push(n as u32);
                continue;
            }
            let s = self.get(n as u32);
            let hash = self.hasher.hash_one(s);
            if self.find(hash, s).is_some() {
                return Err(format!("text {s:?} is listed twice"));
            }
            self.link(hash, n as u32);
        }
        self.compact();
        Ok(self)
    }
}

impl Index {
    /// Appends the index to `w`: [`Index::read_snapshot`] reads it back.
    pub fn write_snapshot(&self, w: &mut Vec<u8>) {
        put_u64(w, self.creators.len() as u64);
        for c in &self.creators {
            put_str(w, c);
        }
        self.dict.write(w);
        put_u64(w, self.rows.len() as u64);
        // The live ids' length, so reading sizes its buffer once.
        put_u64(w, self.ids.spans.iter().map(|s| s.len() as u64).sum());
        for (i, row) in self.rows.iter().enumerate() {
            let id = self.ids.id(i);
            put_str(w, id);
            let h = &self.hot[i];
            put_u64(w, h.updated_at);
            put_u64(w, h.names_prefix);
            put_u64(w, h.states_mask);
            put_u64(w, u64::from(h.effective));
            put_u64(w, u64::from(h.renewal));
            w.push(h.kind);
            w.push(h.status);
            for n in self.parts[i] {
                put_u64(w, u64::from(n));
            }
            put_u64(w, row.created_at);
            put_u64(w, u64::from(row.creator));
            let odd = self.odd_states.get(id).map(|c| &c[..]).unwrap_or_default();
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
        index.dict = Dict::read(r)?;
        let n = r.count()?;
        // Sized once, and never beyond what the bytes left could hold: a row takes at least
        // `MIN_ROW` bytes, an id at least its own length.
        const MIN_ROW: usize = 20;
        let ids = usize::try_from(r.u64()?).unwrap_or(usize::MAX).min(r.0.len());
        let rows_held = n.min(r.0.len() / MIN_ROW);
        index.hot.reserve_exact(rows_held);
        index.parts.reserve_exact(rows_held);
        index.rows.reserve_exact(rows_held);
        index.ids.spans.reserve_exact(rows_held);
        index.ids.buf.reserve_exact(ids);
        let (texts, hasher) = (&index.ids, &index.hasher);
        index.by_id.reserve(rows_held, |&j| hasher.hash_one(texts.id(j)));
        for _ in 0..n {
            let id = r.str()?;
            if index.position(id).is_some() {
                return Err(format!("{id} is listed twice"));
            }
            let hot = Hot {
                updated_at: r.u64()?,
                names_prefix: r.u64()?,
                states_mask: r.u64()?,
                effective: u32_of(r.u64()?)?,
                renewal: u32_of(r.u64()?)?,
                kind: r.byte()?,
                status: r.byte()?,
            };
            let parts = [index.dict.count(r.u64()?)?, index.dict.count(r.u64()?)?, index.dict.count(r.u64()?)?];
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
            index.insert_row(hot, id, parts, odd_states, Row { created_at, creator, life });
        }
        index.dict = std::mem::take(&mut index.dict).sealed()?;
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

        // Every cut short fails cleanly. A byte changed anywhere either fails or reads to an
        // index (the file's checksum is what catches such a change), never panics; an index
        // read that way is still searchable.
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
        // So is a string the dictionary lists twice (rows name strings by number, and two
        // numbers for one string would compare unequal).
        let mut one = Index::new();
        one.upsert(super::super::Entry {
            title: "titlezz".into(),
            parties: ["partyaa".into(), "partybb".into()],
            ..entries[0].clone()
        });
        let mut b = Vec::new();
        one.write_snapshot(&mut b);
        let back = Index::read_snapshot(&mut Reader(&b)).expect("reads back");
        assert_eq!(back.get(&entries[0].id).map(|l| l.held()), one.get(&entries[0].id).map(|l| l.held()));
        let at = b.windows(7).position(|w| w == b"partyaa").expect("the names are in the bytes");
        let mut control = b.clone();
        b[at..at + 7].copy_from_slice(b"titlezz");
        let e = Index::read_snapshot(&mut Reader(&b)).expect_err("a string listed twice");
        assert!(e.contains("listed twice"), "{e}");
        // And a string holding a control character, which no folded name holds (`\n` would
        // no longer sort before every character of a name).
        control[at + 5] = b'\n';
        let e = Index::read_snapshot(&mut Reader(&control)).expect_err("a control character");
        assert!(e.contains("control character"), "{e}");
    }
}
