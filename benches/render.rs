//! Rendering benchmarks. Run: `cargo bench --bench render`.
//!
//! `render_baa` is the yardstick (median ≤ 1 ms per document on 2 cores), the same
//! intake again and again, so every cache is warm; `render_baa_new_parties` gives every
//! document other parties, so the pages naming them are written afresh;
//! `render_baa_all_addenda` adds all eight state addenda, so the per-page cost of addenda can be
//! compared with the body (criterion prints time per document; divide by the page counts the
//! bench prints first).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use countersign::render::{Options, Renderer};

fn load(name: &str) -> String {
    std::fs::read_to_string(format!("{}/examples/intake/{name}", env!("CARGO_MANIFEST_DIR"))).expect("example")
}

fn bench(c: &mut Criterion) {
    let renderer = Renderer::builtin().expect("templates");
    let baa = countersign::app::load_intake(&load("baa-tx-ca.json")).expect("baa parses");
    let dua = countersign::app::load_intake(&load("dua-ny-research.json")).expect("dua parses");
    let mut all = serde_json::from_str::<serde_json::Value>(&load("baa-tx-ca.json")).expect("json");
    all["states"] = serde_json::json!(["CA", "TX", "NY", "FL", "WA", "IL", "CO", "MA"]);
    let all = countersign::app::load_intake(&all.to_string()).expect("all-states parses");

    for (name, i) in [("baa", &baa), ("dua", &dua), ("baa_all_addenda", &all)] {
        let r = renderer.render(i, Options::default()).expect("renders");
        eprintln!("{name}: {} pages, {} bytes", r.report.pages, r.report.bytes);
    }

    c.bench_function("render_baa", |b| {
        b.iter(|| renderer.render(black_box(&baa), Options::default()).expect("renders"))
    });
    // A stream of agreements each with other parties: the pages that name them are written and
    // compressed afresh every time, the boilerplate comes from the caches (issue 14). Four
    // thousand intakes, more than a measurement walks through, so no intake repeats warm.
    let mut fresh = Vec::with_capacity(4096);
    let base = serde_json::from_str::<serde_json::Value>(&load("baa-tx-ca.json")).expect("json");
    for i in 0..4096 {
        let mut v = base.clone();
        v["covered_entity"]["legal_name"] = serde_json::json!(format!("Clinic Number {i} of the Lakes, P.C."));
        v["business_associate"]["legal_name"] = serde_json::json!(format!("Vendor {i} Messaging, Inc."));
        fresh.push(countersign::app::load_intake(&v.to_string()).expect("varied intake parses"));
    }
    let mut next = 0;
    c.bench_function("render_baa_new_parties", |b| {
        b.iter(|| {
            next = (next + 1) % fresh.len();
            renderer.render(black_box(&fresh[next]), Options::default()).expect("renders")
        })
    });
    c.bench_function("render_dua", |b| {
        b.iter(|| renderer.render(black_box(&dua), Options::default()).expect("renders"))
    });
    c.bench_function("render_baa_all_addenda", |b| {
        b.iter(|| renderer.render(black_box(&all), Options::default()).expect("renders"))
    });
    // Completion's extra cost: sealing the countersigned PDF (PAdES B-B).
    let seal_dir = tempfile::tempdir().expect("tempdir");
    let keys = countersign::seal::SealKeys::load_or_create(seal_dir.path()).expect("seal keys");
    let signed = renderer
        .render(&baa, Options { mode: countersign::render::Mode::ForSignature, version: 1 })
        .expect("renders")
        .pdf;
    let sealed = countersign::seal::seal(&signed, &keys, 1_800_000_000).expect("seals");
    eprintln!("seal adds {} bytes to a {}-byte PDF", sealed.len() - signed.len(), signed.len());
    c.bench_function("seal_final_pdf", |b| {
        b.iter(|| countersign::seal::seal(black_box(&signed), &keys, 1_800_000_000).expect("seals"))
    });
    c.bench_function("parse_baa_intake", |b| {
        let text = load("baa-tx-ca.json");
        b.iter(|| countersign::app::load_intake(black_box(&text)).expect("parses"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
