//! The bounded fuzz pass in the suite (issue 11 §3): every target of `fuzz.rs` for a few
//! hundred executions from a fixed seed, a few seconds in all. Long runs:
//! `cargo run --release --example fuzz -- TARGET N [SEED]` (figures in the README).

use std::time::Duration;

use crate::fuzz;

fn bounded(target: &str, n: u64) {
    let out = fuzz::run(target, n, 11);
    eprintln!("{}", out.line());
    assert_eq!(out.executions, n);
    if let Some((input, why)) = &out.first_failure {
        panic!("{target}: {why} on input {}", String::from_utf8_lossy(input));
    }
    assert_eq!(out.panics + out.wrong, 0, "{}", out.line());
    // debug builds are ~10x slower than the release runs the 100 ms rule is about
    assert!(out.slowest < Duration::from_secs(2), "{}", out.line());
}

#[test]
fn the_intake_parser_survives_mutated_intakes() {
    bounded("intake", 1_000);
}

#[test]
fn only_an_issued_token_verifies_among_mutated_tokens() {
    bounded("token", 5_000);
}

#[test]
fn intakes_with_hostile_free_text_render_or_are_refused_without_panicking() {
    bounded("render", 12);
}

#[test]
fn the_pdf_appender_keeps_the_input_as_a_prefix_or_refuses_mutated_pdfs() {
    bounded("pdf-append", 20);
}

#[test]
fn the_seal_verifier_never_accepts_a_changed_signed_range() {
    bounded("seal-verify", 50);
}

#[test]
fn the_signer_form_parser_survives_mutated_bodies() {
    bounded("form", 2_000);
}
