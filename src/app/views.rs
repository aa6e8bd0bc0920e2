//! The first-view rule for signer links (issue 14): the first view of a link is recorded durably
//! (an `opened` event and the signer's status); later views are only counted here, in memory,
//! and the count is written with that signer's next real event (`signed` or `declined`, as
//! `later_views` in its detail).
//!
//! Why: recording every view made each page view a durable commit under the write lock (a few
//! hundred views a second at most), and it let anyone holding a link grow the store without
//! bound. The count is informational, so losing it in a crash loses nothing that was
//! acknowledged; the first view, which is evidence, is still committed before the page shows.
//!
//! Only verified links reach [`Views::bump`] (the HMAC is checked first), so the map holds at
//! most one entry per live signer link and an entry goes away when its count is written.

use std::collections::HashMap;
use std::sync::Mutex;

/// Views after the first, per agreement id and signer id, not yet written to the audit trail.
#[derive(Default)]
pub struct Views {
    // A plain mutex: each operation is one hash-map update, far shorter than anything else on
    // the request path, so contention stays negligible even at tens of thousands of views a
    // second; a sharded map would buy nothing measurable. Keyed by agreement, then signer, so a
    // view of a link already counted is found by the ids as borrowed, without allocating (two
    // `String`s per view with a pair as the key: 1.4 % of the signer page's CPU, 2026-12-02).
    counts: Mutex<Counts>,
}

type Counts = HashMap<String, HashMap<String, u64>>;

impl Views {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // A panic while holding the lock cannot leave a half-updated count worth protecting.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one more view of the signer's link.
    pub fn bump(&self, agreement: &str, signer: &str) {
        let mut counts = self.counts();
        match counts.get_mut(agreement).and_then(|m| m.get_mut(signer)) {
            Some(c) => *c += 1,
            None => *counts.entry(agreement.to_string()).or_default().entry(signer.to_string()).or_insert(0) += 1,
        }
    }

    /// The views counted so far (without removing them).
    pub fn peek(&self, agreement: &str, signer: &str) -> u64 {
        self.counts().get(agreement).and_then(|m| m.get(signer)).copied().unwrap_or(0)
    }

    /// Removes `n` counted views once they are durably written (views counted meanwhile stay).
    pub fn written(&self, agreement: &str, signer: &str, n: u64) {
        let mut counts = self.counts();
        let Some(signers) = counts.get_mut(agreement) else { return };
        if let Some(c) = signers.get_mut(signer) {
            *c = c.saturating_sub(n);
            if *c == 0 {
                signers.remove(signer);
            }
        }
        if signers.is_empty() {
            counts.remove(agreement);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_are_counted_per_signer_and_only_written_ones_are_removed() {
        let v = Views::default();
        v.bump("ag1", "s1");
        v.bump("ag1", "s1");
        v.bump("ag1", "s2");
        assert_eq!(v.peek("ag1", "s1"), 2);
        assert_eq!(v.peek("ag1", "s2"), 1);
        assert_eq!(v.peek("ag2", "s1"), 0);
        // A view that arrives between reading the count and writing it is kept for next time.
        let n = v.peek("ag1", "s1");
        v.bump("ag1", "s1");
        v.written("ag1", "s1", n);
        assert_eq!(v.peek("ag1", "s1"), 1);
        v.written("ag1", "s1", 1);
        assert!(v.counts().get("ag1").is_some_and(|m| !m.contains_key("s1")), "a written entry is dropped");
        v.written("ag1", "s2", 1);
        assert!(v.counts().get("ag1").is_none(), "an agreement with no count left is dropped");
    }
}
