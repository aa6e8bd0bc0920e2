//! Compact binary fields, for the records kept in a derived store tree (the agreements'
//! summaries, `store::summary_index`): integers as LEB128, strings as a LEB128 length and UTF-8 bytes, options
//! as a tag byte (0 none, 1 some) and the value, a SHA-256 as a tag (0 none; 1 the string as
//! it came; 2 the 32 bytes of 64 lowercase hex digits). The search index's snapshot
//! (`app::snapshot`) is written in them too.

pub fn put_u64(w: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        w.push((v as u8) | 0x80);
        v >>= 7;
    }
    w.push(v as u8);
}

pub fn put_str(w: &mut Vec<u8>, s: &str) {
    put_bytes(w, s.as_bytes());
}

/// Bytes as a LEB128 length and the bytes.
pub fn put_bytes(w: &mut Vec<u8>, b: &[u8]) {
    put_u64(w, b.len() as u64);
    w.extend_from_slice(b);
}

pub fn put_opt_u64(w: &mut Vec<u8>, v: Option<u64>) {
    match v {
        None => w.push(0),
        Some(v) => {
            w.push(1);
            put_u64(w, v);
        }
    }
}

pub fn put_opt_str(w: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => w.push(0),
        Some(s) => {
            w.push(1);
            put_str(w, s);
        }
    }
}

/// Lowercase hex of `bytes`: what `hex::encode` gives, a byte at a time into a sized string
/// (`hex::encode` collects a char iterator, and was ~15 % of preparing the start-up index
/// build's rows at 100,000 agreements, by `perf`: two digests per summary).
pub fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// A SHA-256 in lowercase hex as its 32 bytes (tag 2); anything else as it came (tag 1).
pub fn put_sha(w: &mut Vec<u8>, s: Option<&str>) {
    let mut raw = [0u8; 32];
    match s {
        Some(s)
            if s.len() == 64
                && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                && hex::decode_to_slice(s, &mut raw).is_ok() =>
        {
            w.push(2);
            w.extend_from_slice(&raw);
        }
        other => put_opt_str(w, other),
    }
}

/// Reads what the `put_` functions wrote; every read checks its bytes.
pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    pub fn u64(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            // The tenth byte holds the 64th bit alone.
            if shift == 63 && b > 1 {
                return Err("varint overflow".into());
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    /// A count of things that each take at least one byte: no more than the bytes left.
    pub fn count(&mut self) -> Result<usize, String> {
        let n = self.u64()?;
        usize::try_from(n).ok().filter(|&n| n <= self.0.len()).ok_or_else(|| format!("count {n} beyond the value"))
    }

    pub fn str(&mut self) -> Result<&'a str, String> {
        std::str::from_utf8(self.bytes()?).map_err(|_| "not UTF-8".into())
    }

    /// What [`put_bytes`] wrote.
    pub fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = usize::try_from(self.u64()?).map_err(|_| "length out of range")?;
        self.take(n)
    }

    pub fn string(&mut self) -> Result<String, String> {
        self.str().map(str::to_string)
    }

    pub fn opt_u64(&mut self) -> Result<Option<u64>, String> {
        match self.byte()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()?)),
            t => Err(format!("bad option tag {t}")),
        }
    }

    pub fn opt_string(&mut self) -> Result<Option<String>, String> {
        Ok(self.opt_str()?.map(str::to_string))
    }

    /// [`Reader::opt_string`] in place: nothing allocated.
    pub fn opt_str(&mut self) -> Result<Option<&'a str>, String> {
        match self.byte()? {
            0 => Ok(None),
            1 => Ok(Some(self.str()?)),
            t => Err(format!("bad option tag {t}")),
        }
    }

    pub fn sha(&mut self) -> Result<Option<String>, String> {
        match self.byte()? {
            2 => Ok(Some(hex_lower(self.take(32)?))),
            0 => Ok(None),
            1 => Ok(Some(self.string()?)),
            t => Err(format!("bad option tag {t}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_lower_writes_what_the_hex_crate_writes_for_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(hex_lower(&all), hex::encode(&all));
        assert_eq!(hex_lower(&[]), "");
    }

    #[test]
    fn every_field_reads_back_and_a_short_or_odd_value_is_an_error_not_a_panic() {
        let mut w = Vec::new();
        put_u64(&mut w, u64::MAX);
        put_str(&mut w, "Núñez");
        put_opt_u64(&mut w, None);
        put_opt_u64(&mut w, Some(300));
        put_opt_str(&mut w, Some(""));
        put_sha(&mut w, Some(&"ab".repeat(32)));
        put_sha(&mut w, Some(&"AB".repeat(32)));
        put_sha(&mut w, None);
        put_bytes(&mut w, &[0, 0xff]);
        let mut r = Reader(&w);
        assert_eq!(r.u64(), Ok(u64::MAX));
        assert_eq!(r.str(), Ok("Núñez"));
        assert_eq!(r.opt_u64(), Ok(None));
        assert_eq!(r.opt_u64(), Ok(Some(300)));
        assert_eq!(r.opt_string(), Ok(Some(String::new())));
        assert_eq!(r.sha(), Ok(Some("ab".repeat(32))));
        assert_eq!(r.sha(), Ok(Some("AB".repeat(32))));
        assert_eq!(r.sha(), Ok(None));
        assert_eq!(r.bytes(), Ok(&[0u8, 0xff][..]));
        assert!(r.0.is_empty());
        // Every prefix of the value fails cleanly somewhere, never panics.
        for n in 0..w.len() {
            let mut r = Reader(&w[..n]);
            let all = (|| -> Result<(), String> {
                r.u64()?;
                r.str()?;
                r.opt_u64()?;
                r.opt_u64()?;
                r.opt_string()?;
                r.sha()?;
                r.sha()?;
                r.sha()?;
                r.bytes()?;
                Ok(())
            })();
            assert!(all.is_err(), "prefix of {n} bytes");
        }
        // A count larger than what is left, and an 11-byte varint.
        assert!(Reader(&[0xff, 0xff, 0xff, 0x0f, 1]).count().is_err());
        assert!(Reader(&[0xff; 11]).u64().is_err());
        // Ten bytes: the last may hold one bit, no more.
        let mut max = vec![0xff; 9];
        max.push(0x01);
        assert_eq!(Reader(&max).u64(), Ok(u64::MAX));
        max[9] = 0x02;
        assert!(Reader(&max).u64().is_err());
    }
}
