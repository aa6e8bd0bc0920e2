//! Times each rendering stage over the BAA example (profiling aid: `cargo run --release --example profile_render`).
use std::time::Instant;

use countersign::render::{Options, Renderer, fonts, layout, pdf};

fn main() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/intake/baa-tx-ca.json"))
        .expect("example");
    let r = Renderer::builtin().expect("templates");
    let intake = countersign::app::load_intake(&text).expect("parses");
    let _ = r.render(&intake, Options::default());
    let n: u32 = std::env::var("PROFILE_N").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let t = Instant::now();
    for _ in 0..n {
        let _ = countersign::app::load_intake(&text);
    }
    println!("parse     {:>8.3} ms", t.elapsed().as_secs_f64() * 1e3 / f64::from(n));
    let t = Instant::now();
    for _ in 0..n {
        let _ = r.document(&intake, Options::default());
    }
    println!("document  {:>8.3} ms", t.elapsed().as_secs_f64() * 1e3 / f64::from(n));
    let (doc, _, _) = r.document(&intake, Options::default()).expect("doc");
    let t = Instant::now();
    for _ in 0..n {
        let _ = layout::layout(fonts::fonts(), &doc);
    }
    println!("layout    {:>8.3} ms", t.elapsed().as_secs_f64() * 1e3 / f64::from(n));
    let pages = layout::layout(fonts::fonts(), &doc);
    let meta = pdf::Meta {
        title: "t",
        subject: "s",
        author: "a",
        keywords: vec![],
        date_unix: 0,
        header: "h",
        header_right: "r",
        draft: true,
        id: [0; 16],
    };
    let t = Instant::now();
    for _ in 0..n {
        let _ = pdf::write(fonts::fonts(), &pages, &meta);
    }
    println!("pdf write {:>8.3} ms", t.elapsed().as_secs_f64() * 1e3 / f64::from(n));
    let t = Instant::now();
    for _ in 0..n {
        let _ = r.render(&intake, Options::default());
    }
    println!("total     {:>8.3} ms", t.elapsed().as_secs_f64() * 1e3 / f64::from(n));
}
