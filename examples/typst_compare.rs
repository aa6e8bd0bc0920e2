//! Countersign's half of the side-by-side with Typst (issue 14; run through `scripts/typst-compare`).
//!
//! `cargo run --release --example typst_compare -- DIR [N]` writes, for the example BAA:
//!
//! * `DIR/same.typ`: the document Countersign renders, as idiomatic Typst markup (the same
//!   text, faces, sizes, margins, header, footer, draft mark, lists, notes and signature block;
//!   fonts: the same Noto Serif files as the text font; the machine's fonts are not given to
//!   Typst), and
//!   `DIR/same.pdf`, Countersign's own PDF of it;
//! * `DIR/parties/NNNN.typ`: N documents with other parties each (as the `render_baa_new_parties`
//!   bench), so a warm compiler cannot reuse the pages that name them;
//!
//! and prints one JSON line with Countersign's median time per document on this thread for both
//! (each document rendered whole: template, check, layout, PDF), after a warm-up, so the script
//! can set Typst's medians beside them.
use std::fmt::Write as _;
use std::time::Instant;

use countersign::render::model::{Block, Clause, Document, Run};
use countersign::render::{Options, Renderer};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("usage: typst_compare DIR [N]"));
    let n: usize = args.next().and_then(|v| v.parse().ok()).unwrap_or(200);
    std::fs::create_dir_all(dir.join("parties")).expect("create output directory");

    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/intake/baa-tx-ca.json"))
        .expect("example");
    let base: serde_json::Value = serde_json::from_str(&text).expect("json");
    let r = Renderer::builtin().expect("templates");
    let same = countersign::app::load_intake(&text).expect("parses");
    let mut fresh = Vec::with_capacity(n);
    for i in 0..n {
        let mut v = base.clone();
        v["covered_entity"]["legal_name"] = serde_json::json!(format!("Clinic Number {i} of the Lakes, P.C."));
        v["business_associate"]["legal_name"] = serde_json::json!(format!("Vendor {i} Messaging, Inc."));
        fresh.push(countersign::app::load_intake(&v.to_string()).expect("varied intake parses"));
    }

    let first = r.render(&same, Options::default()).expect("renders");
    std::fs::write(dir.join("same.pdf"), &first.pdf).expect("write pdf");
    std::fs::write(dir.join("same.typ"), typst(&first.document)).expect("write typ");

    // Warm-up as Typst gets it (50 compiles of the same document, then N of each kind).
    for _ in 0..50 {
        std::hint::black_box(r.render(&same, Options::default()).expect("renders"));
    }
    let mut t_same = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let out = r.render(&same, Options::default()).expect("renders");
        t_same.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(out);
    }
    let mut t_parties = Vec::new();
    for intake in &fresh {
        let t = Instant::now();
        let out = r.render(intake, Options::default()).expect("renders");
        t_parties.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(out);
    }
    // The other parties' Typst sources are written after the timing, so writing them (which
    // builds each document and so warms this thread's caches) cannot help the renders timed.
    for (i, intake) in fresh.iter().enumerate() {
        let (doc, _, _) = r.document(intake, Options::default()).expect("document");
        std::fs::write(dir.join(format!("parties/{i:04}.typ")), typst(&doc)).expect("write typ");
    }
    println!(
        "{{\"same_ms\": {:.4}, \"parties_ms\": {:.4}, \"pages\": {}, \"bytes\": {}}}",
        median(&mut t_same),
        median(&mut t_parties),
        first.report.pages,
        first.report.bytes
    );
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The document as Typst markup, mirroring `render::layout` (US Letter, 1 in margins, Noto
/// Serif 9.25/11.8 pt, headings kept with what follows, a new page per attachment).
fn typst(doc: &Document) -> String {
    let draft = doc.draft_notice.is_some();
    let header_right = if draft { "DRAFT — for review by counsel" } else { "Version 1" };
    let mut s = String::with_capacity(64 * 1024);
    let _ = writeln!(s, "#set document(title: {}, author: {})", lit(&doc.title), lit(&doc.author));
    let _ = writeln!(
        s,
        "#set page(paper: \"us-letter\", margin: 72pt, header-ascent: 14pt, footer-descent: 18pt,\n  \
         header: [#set text(size: 8pt, fill: luma(40%)); {} #h(1fr) *{}* #v(-4pt) #line(length: 100%, stroke: 0.6pt)],\n  \
         footer: context align(center, text(size: 8pt, fill: luma(40%))[Page #counter(page).display() of #counter(page).final().first()]){})",
        esc(&doc.title),
        esc(header_right),
        if draft {
            ",\n  background: rotate(-45deg, text(size: 96pt, fill: luma(93%), weight: \"bold\")[DRAFT])"
        } else {
            ""
        }
    );
    s.push_str("#set text(font: \"Noto Serif\", size: 9.25pt, lang: \"en\")\n");
    s.push_str("#set par(leading: 5.2pt, spacing: 8.2pt)\n");
    s.push_str("#set enum(numbering: \"(a)(i)\", indent: 8pt)\n#set list(indent: 8pt)\n");
    s.push_str("#let note(body) = text(size: 7.5pt, fill: luma(40%), body)\n");
    s.push_str("#let head(size, above, body) = block(above: above + 5pt, below: 5pt, sticky: true, text(size: size, weight: \"bold\", body))\n\n");

    let _ = writeln!(s, "#align(center, text(size: 18pt, weight: \"bold\")[{}])", esc(&doc.title));
    for line in &doc.subtitle {
        let _ = writeln!(s, "#align(center, text(size: 11pt)[{}])", esc(line));
    }
    if let Some(notice) = &doc.draft_notice {
        let _ = writeln!(
            s,
            "#block(above: 14pt, stroke: 0.6pt, inset: 8pt, breakable: false, text(size: 9.5pt)[*DRAFT FOR REVIEW BY COUNSEL* \\\n{}])",
            esc(notice)
        );
    }
    for (i, p) in doc.parties.iter().enumerate() {
        let _ = writeln!(s, "#v({}pt)\n{}\n", if i == 0 { 16 } else { 6 }, runs(p));
    }
    for a in &doc.articles {
        if !a.heading.is_empty() {
            let _ = writeln!(s, "#head(11.5pt, 11pt)[{}\\. {}]", a.number, esc(&a.heading));
        }
        blocks(&mut s, &a.intro);
        for c in &a.clauses {
            clause(&mut s, c, draft);
        }
    }
    for a in &doc.attachments {
        let title =
            if a.heading.starts_with(&a.label) { a.heading.clone() } else { format!("{} — {}", a.label, a.heading) };
        let _ = writeln!(s, "#pagebreak()\n#head(13pt, 0pt)[{}]", esc(&title));
        for n in &a.notes {
            let _ = writeln!(s, "#note[{}]\n", esc(n));
        }
        blocks(&mut s, &a.intro);
        for c in &a.clauses {
            clause(&mut s, c, draft);
        }
    }
    if !doc.signatures.is_empty() {
        let intro = countersign::render::layout::signature_intro(doc);
        let _ =
            writeln!(s, "#block(above: 18pt, breakable: false)[\n#text(size: 12pt)[*Signatures*]\n\n{}", esc(intro));
        for sig in &doc.signatures {
            let _ = writeln!(
                s,
                "\n#v(14pt)\n*{} ({})*\n\n#v(14pt)\nBy: #box(width: 272pt, stroke: (bottom: 0.6pt))\n\nName: {}\n\nTitle: {}\n\n#v(8pt)\nDate: #box(width: 148pt, stroke: (bottom: 0.6pt))",
                esc(&sig.party_name),
                esc(&sig.party_label),
                esc(&sig.signer_name),
                esc(&sig.signer_title)
            );
        }
        s.push_str("]\n");
    }
    s
}

fn clause(s: &mut String, c: &Clause, draft: bool) {
    // The same note the layout puts on the heading (citations; in a draft, with element ids).
    let note = countersign::render::layout::clause_note(c, draft)
        .map(|n| format!(" #h(1fr) #note[{}]", esc(&n)))
        .unwrap_or_default();
    let _ = writeln!(s, "#head(9.25pt, 5.5pt)[{} {}{}]", esc(&c.number), esc(&c.heading), note);
    blocks(s, &c.body);
}

fn blocks(s: &mut String, blocks: &[Block]) {
    for b in blocks {
        match b {
            Block::Paragraph { runs: r } => {
                let _ = writeln!(s, "{}\n", runs(r));
            }
            Block::Item { ordered, depth, runs: r, .. } => {
                let _ = writeln!(s, "{}{} {}", "  ".repeat(*depth), if *ordered { '+' } else { '-' }, runs(r));
            }
        }
    }
    s.push('\n');
}

fn runs(runs: &[Run]) -> String {
    let mut out = String::new();
    for r in runs {
        if r.bold && !r.text.trim().is_empty() {
            // `#strong[…];` rather than `*…*`: a run may end in a space or touch a word, and the
            // semicolon ends the call whatever the next run starts with.
            let _ = write!(out, "#strong[{}];", esc(&r.text));
        } else {
            out.push_str(&esc(&r.text));
        }
    }
    out
}

/// Typst markup with every character that means something escaped.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if "\\#*_`$<>@[]~=-+/'\".".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A Typst string literal.
fn lit(text: &str) -> String {
    format!("{text:?}")
}
