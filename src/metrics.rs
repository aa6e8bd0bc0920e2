//! Prometheus metrics (`/metrics`, text format), one [`Metrics`] per service: requests by route
//! pattern and status with latency histograms, documents rendered and render time, signatures and
//! audit events, agreements by status, the mail outbox, the store's size, and how many changes
//! each store commit carried (concurrent writers combined into one transaction).
//!
//! Built on `prometheus-client` (5 small crates: dtoa, parking_lot, a derive macro) rather than
//! `metrics` + `metrics-exporter-prometheus` (which pulls metrics-util, quanta, crossbeam,
//! sketches, hashbrown, indexmap). Pure: it names nothing else in the crate.
//!
//! Every value is kept current where it changes — counters by the code that does the work, the
//! agreements-by-status gauge on each commit (seeded once at start from the search index) — so a
//! scrape only encodes numbers; it never scans the store.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Seconds: 1 ms to about 33 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    request_seconds: Histograms,
    rendered: Family<Labels, Counter>,
    render_seconds: Histograms,
    signatures: Counter,
    events: Family<Labels, Counter>,
    agreements: Family<Labels, Gauge>,
    outbox_queued: Gauge,
    outbox_sent: Counter,
    outbox_failures: Family<Labels, Counter>,
    store_bytes: Gauge,
    webhooks_queued: Gauge,
    webhooks_delivered: Counter,
    webhook_failures: Family<Labels, Counter>,
    commit_changes: Histogram,
    tick_reads: Counter,
    tick_asleep: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("countersign");
        let m = Metrics {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            rendered: Family::default(),
            render_seconds: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            signatures: Counter::default(),
            events: Family::default(),
            agreements: Family::default(),
            outbox_queued: Gauge::default(),
            outbox_sent: Counter::default(),
            outbox_failures: Family::default(),
            store_bytes: Gauge::default(),
            webhooks_queued: Gauge::default(),
            webhooks_delivered: Counter::default(),
            webhook_failures: Family::default(),
            // 1, 2, 4 … 64 changes: the combiner's batch bound (`app::combine::BATCH`).
            commit_changes: Histogram::new(exponential_buckets(1.0, 2.0, 7)),
            tick_reads: Counter::default(),
            tick_asleep: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register("http_requests", "HTTP requests by method, route pattern and status", m.requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route pattern",
            m.request_seconds.clone(),
        );
        registry.register("documents_rendered", "PDFs rendered, by mode (draft, for_signature)", m.rendered.clone());
        registry.register("render_duration_seconds", "PDF render time, by mode", m.render_seconds.clone());
        registry.register("signatures", "Signatures recorded", m.signatures.clone());
        registry.register("audit_events", "Audit events committed, by kind", m.events.clone());
        registry.register("agreements", "Agreements by status", m.agreements.clone());
        registry.register(
            "outbox_queued",
            "Messages queued for delivery (as of the sender's last pass)",
            m.outbox_queued.clone(),
        );
        registry.register("outbox_sent", "Messages delivered", m.outbox_sent.clone());
        registry.register(
            "outbox_failures",
            "Failed delivery attempts: transient (will retry) or final",
            m.outbox_failures.clone(),
        );
        registry.register("store_size_bytes", "Bytes the store's files take on disk", m.store_bytes.clone());
        registry.register(
            "webhooks_queued",
            "Webhook deliveries queued (as of the webhook sender's last pass)",
            m.webhooks_queued.clone(),
        );
        registry.register(
            "webhooks_delivered",
            "Webhook deliveries a receiver accepted (2xx)",
            m.webhooks_delivered.clone(),
        );
        registry.register(
            "webhook_failures",
            "Failed webhook attempts: transient (will retry) or final",
            m.webhook_failures.clone(),
        );
        registry.register(
            "store_commit_changes",
            "Changes committed per store commit: above 1, concurrent writers were combined into one \
             transaction and one fsync",
            m.commit_changes.clone(),
        );
        registry.register(
            "reminder_tick_reads",
            "Agreements the reminder tick read (out for signature, or executed in a term notice's \
             window): their wake note had come due, their record had changed, or they had none",
            m.tick_reads.clone(),
        );
        registry.register(
            "reminder_tick_asleep",
            "Candidates the last reminder tick did not read: their wake note was still ahead",
            m.tick_asleep.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&vec![
                ("method", method.to_string()),
                ("route", route.to_string()),
                ("status", status.to_string()),
            ])
            .inc();
        self.request_seconds.get_or_create(&vec![("route", route.to_string())]).observe(seconds);
    }

    pub fn rendered(&self, mode: &'static str, seconds: f64) {
        let l = vec![("mode", mode.to_string())];
        self.rendered.get_or_create(&l).inc();
        self.render_seconds.get_or_create(&l).observe(seconds);
    }

    /// An audit event was committed; `signed` events are signatures.
    pub fn event(&self, kind: &str) {
        self.events.get_or_create(&vec![("kind", kind.to_string())]).inc();
        if kind == "signed" {
            self.signatures.inc();
        }
    }

    /// An agreement moved from `from` (None: it is new) to `to` (None: it left the index).
    pub fn agreement_status(&self, from: Option<&str>, to: Option<&str>) {
        if from == to {
            return;
        }
        if let Some(f) = from {
            self.agreements.get_or_create(&vec![("status", f.to_string())]).dec();
        }
        if let Some(t) = to {
            self.agreements.get_or_create(&vec![("status", t.to_string())]).inc();
        }
    }

    /// Sets every status count at once (start, index rebuild).
    pub fn seed_agreements<S: AsRef<str>>(&self, statuses: impl Iterator<Item = S>) {
        self.agreements.clear();
        // Counted first: one label set per status, not one look-up per agreement.
        let mut counts: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
        for s in statuses {
            match counts.get_mut(s.as_ref()) {
                Some(n) => *n += 1,
                None => {
                    counts.insert(s.as_ref().to_string(), 1);
                }
            }
        }
        for (s, n) in counts {
            self.agreements.get_or_create(&vec![("status", s)]).inc_by(n);
        }
    }

    pub fn outbox_queued(&self, n: usize) {
        self.outbox_queued.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn outbox_sent(&self) {
        self.outbox_sent.inc();
    }

    /// `transient` (will retry) or `final`.
    pub fn outbox_failure(&self, kind: &'static str) {
        self.outbox_failures.get_or_create(&vec![("kind", kind.to_string())]).inc();
    }

    pub fn webhooks_queued(&self, n: usize) {
        self.webhooks_queued.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub fn webhook_delivered(&self) {
        self.webhooks_delivered.inc();
    }

    /// `transient` (will retry) or `final`.
    pub fn webhook_failure(&self, kind: &'static str) {
        self.webhook_failures.get_or_create(&vec![("kind", kind.to_string())]).inc();
    }

    /// One store commit carried `n` changes that committed (stale ones refused are not counted).
    pub fn store_commit(&self, n: usize) {
        self.commit_changes.observe(n as f64);
    }

    /// A reminder tick read `read` agreements and let `asleep` others be (their wake notes).
    pub fn reminder_tick(&self, read: u64, asleep: usize) {
        self.tick_reads.inc_by(read);
        self.tick_asleep.set(i64::try_from(asleep).unwrap_or(i64::MAX));
    }

    pub fn store_size(&self, bytes: u64) {
        self.store_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition (OpenMetrics text, which Prometheus reads).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_moves_keep_the_agreement_gauges_balanced() {
        let m = Metrics::new();
        m.seed_agreements(["draft", "draft", "executed"].into_iter());
        m.agreement_status(Some("draft"), Some("sent"));
        m.agreement_status(None, Some("draft"));
        let text = m.encode();
        assert!(text.contains("countersign_agreements{status=\"draft\"} 2"), "{text}");
        assert!(text.contains("countersign_agreements{status=\"sent\"} 1"), "{text}");
        assert!(text.contains("countersign_agreements{status=\"executed\"} 1"), "{text}");
        m.event("signed");
        assert!(m.encode().contains("countersign_signatures_total 1"));
    }

    #[test]
    fn the_reminder_tick_counts_its_reads_and_shows_how_many_it_let_sleep_last_time() {
        let m = Metrics::new();
        m.reminder_tick(13_164, 0);
        m.reminder_tick(2, 13_162);
        let text = m.encode();
        assert!(text.contains("countersign_reminder_tick_reads_total 13166"), "{text}");
        assert!(text.contains("countersign_reminder_tick_asleep 13162"), "{text}");
    }

    #[test]
    fn commit_sizes_are_counted_in_buckets_up_to_the_combiners_bound() {
        let m = Metrics::new();
        for n in [1, 1, 3, 64] {
            m.store_commit(n);
        }
        let text = m.encode();
        assert!(text.contains("countersign_store_commit_changes_sum 69.0"), "{text}");
        assert!(text.contains("countersign_store_commit_changes_count 4"), "{text}");
        assert!(text.contains("countersign_store_commit_changes_bucket{le=\"1.0\"} 2"), "{text}");
        assert!(text.contains("countersign_store_commit_changes_bucket{le=\"4.0\"} 3"), "{text}");
        assert!(text.contains("countersign_store_commit_changes_bucket{le=\"64.0\"} 4"), "{text}");
    }
}
