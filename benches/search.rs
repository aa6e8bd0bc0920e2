//! Archive search benchmarks. Run: `cargo bench --bench search`.
//!
//! The yardstick: a search over 100,000 archived agreements answers in ≤ 20 ms median
//! on 2 cores, `total` included. The index is built once from synthetic entries (varied names
//! with accents, kinds, states, statuses and dates; about 1 in 150 with a Northwind party); each
//! case runs `Index::search` for one page:
//!
//! * `counterparty_northwind` — `counterparty=northwind&limit=50`
//! * `q_health_ca_by_effective` — `q=health&state=CA&sort=-effective_date`
//! * `renewal_before_by_renewal` — `renewal_before=2027-06-01&sort=renewal_date`
//! * `all_default_sort` — no filter, every entry matches, `sort=-updated_at` (the worst case)
//! * `all_default_sort_page_2` — the same, second page (through the cursor)
//!
//! It also prints how long building the index takes (the rebuild at start).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Instant;

use countersign::archive::search::{Entry, Index, Query};

const N: usize = 100_000;

const FIRST: [&str; 24] = [
    "Northwind",
    "Contoso",
    "Fabrikam",
    "Núñez",
    "Żółć",
    "Ångström",
    "Cedar",
    "Blue Ridge",
    "Harbor",
    "Søren",
    "Straße",
    "Lakeside",
    "Summit",
    "Riverside",
    "Évora",
    "Müller",
    "Pinecrest",
    "Oakwood",
    "Çelik",
    "Maple",
    "Granite",
    "Đorđević",
    "Sunrise",
    "Willow",
];
const SECOND: [&str; 12] = [
    "Health",
    "Clinic",
    "Labs",
    "Medical Group",
    "Hospital",
    "Billing",
    "Analytics",
    "Imaging",
    "Pediatrics",
    "Health System",
    "Data Services",
    "Pharmacy",
];
const SUFFIX: [&str; 6] = ["Inc.", "LLC", "GmbH", "P.C.", "Partners", "Co."];
const STATES: [&str; 10] = ["CA", "TX", "NY", "FL", "WA", "IL", "CO", "MA", "OR", "NJ"];
const STATUSES: [&str; 7] = ["draft", "sent", "partially_signed", "executed", "declined", "voided", "expired"];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn name(rng: &mut Rng) -> String {
    // Northwind is 1 of 24 first words, used in 1 of 6 party names: about 1 in 150 entries.
    let first = if rng.below(6) == 0 { FIRST[rng.below(FIRST.len())] } else { FIRST[1 + rng.below(FIRST.len() - 1)] };
    format!("{first} {} {} {}", SECOND[rng.below(SECOND.len())], SUFFIX[rng.below(SUFFIX.len())], rng.below(1000))
}

fn entries() -> Vec<Entry> {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    (0..N)
        .map(|i| {
            let parties = [name(&mut rng), name(&mut rng)];
            let kind = if rng.below(4) == 0 { "dua" } else { "baa" };
            let year = 2018 + rng.below(10);
            let (month, day) = (1 + rng.below(12), 1 + rng.below(28));
            let status = STATUSES[rng.below(STATUSES.len())];
            let executed = status == "executed";
            let states = (0..1 + rng.below(3)).map(|_| STATES[rng.below(STATES.len())].to_owned()).collect();
            Entry {
                id: format!("ag_{i:08x}{:08x}", rng.next() as u32),
                kind: kind.into(),
                title: format!("{} — {} / {}", kind.to_uppercase(), parties[0], parties[1]),
                parties,
                status: status.into(),
                states,
                effective_date: format!("{year}-{month:02}-{day:02}"),
                renewal_date: (rng.below(4) != 0).then(|| format!("{}-{month:02}-{day:02}", year + 1 + rng.below(4))),
                executed_at: executed.then(|| 1_600_000_000 + rng.below(200_000_000) as u64),
                created_at: 1_550_000_000 + i as u64 * 1000,
                updated_at: 1_600_000_000 + rng.below(200_000_000) as u64,
                final_sha256: executed
                    .then(|| format!("{:016x}{:016x}{:016x}{:016x}", rng.next(), rng.next(), rng.next(), rng.next())),
                created_by: format!("key:k{:08x}", rng.below(50)),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let entries = entries();
    let started = Instant::now();
    let mut index = Index::new();
    for e in entries {
        index.upsert(e);
    }
    eprintln!("built an index of {} entries in {:.0} ms", index.len(), started.elapsed().as_secs_f64() * 1000.0);

    let q = |f: fn(&mut Query)| {
        let mut q = Query::default();
        f(&mut q);
        assert_eq!(q.validate(), Ok(()));
        q
    };
    let mut cases = vec![
        (
            "counterparty_northwind",
            q(|q| {
                q.counterparty = Some("northwind".into());
                q.limit = Some(50);
            }),
        ),
        (
            "q_health_ca_by_effective",
            q(|q| {
                q.q = Some("health".into());
                q.state = Some("CA".into());
                q.sort = Some("-effective_date".into());
            }),
        ),
        (
            "renewal_before_by_renewal",
            q(|q| {
                q.renewal_before = Some("2027-06-01".into());
                q.sort = Some("renewal_date".into());
            }),
        ),
        ("all_default_sort", Query::default()),
    ];
    let second = Query { cursor: index.search(&Query::default()).next_cursor, ..Query::default() };
    cases.push(("all_default_sort_page_2", second));

    for (name, query) in &cases {
        let page = index.search(query);
        eprintln!("{name}: total {}, {} items, next page: {}", page.total, page.ids.len(), page.next_cursor.is_some());
        c.bench_function(name, |b| b.iter(|| index.search(black_box(query))));
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
