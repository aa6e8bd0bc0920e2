//! Random record ids: agreements, signers, messages.

/// A random id with a prefix: `ag_3f9c…`.
pub fn new_id(prefix: &str, bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    // getrandom only fails when the OS has no entropy source; there is no safe fallback.
    getrandom::fill(&mut b).unwrap_or_else(|e| panic!("no OS randomness: {e}"));
    format!("{prefix}{}", hex::encode(b))
}

/// Message ids sort in creation order: time, then a per-process sequence (messages created in
/// the same second keep their order), then randomness against collisions across processes.
pub fn message_id(now: u64) -> String {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("m{now:012x}{seq:08x}{}", &new_id("", 4))
}
