//! Property tests over the whole pipeline.

use proptest::prelude::*;
use serde_json::Value;

use countersign::render::{Options, Renderer};

use crate::helpers::*;

/// Text the intake accepts: printable Latin, Latin Extended-A, typographic punctuation.
fn text() -> impl Strategy<Value = String> {
    proptest::string::string_regex(
        "[A-Za-z0-9 .,&'()\\-ÀÉÑÖØÜßàáçéíñóöúüĀĂąĆČĎĐĘĚĞŁŃŇŐŒŘŚŞŠŢŤŮŰŹŻŽșț–—‘’“”•*#<>{}\\[\\]_`!]{1,80}",
    )
    .expect("regex")
    .prop_filter("not blank", |s| !s.trim().is_empty())
}

fn set(v: &mut Value, pointer: &str, new: Value) {
    if let Some(slot) = v.pointer_mut(pointer) {
        *slot = new;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// Any valid intake renders without panic to a PDF whose check has no intake errors.
    #[test]
    fn any_valid_intake_renders(
        name in text(), services in text(), signer in text(), title in text(),
        days in 1u8..=60, months in 1u16..=120, dua in any::<bool>(), states in proptest::sample::subsequence(vec!["TX", "CA", "NY", "FL", "WA", "IL", "CO", "MA", "ME", "VT", "PR", "GU"], 0..5),
    ) {
        let mut v = example_json(if dua { DUA } else { BAA });
        let party = if dua { "/data_recipient/legal_name" } else { "/business_associate/legal_name" };
        set(&mut v, party, Value::String(name));
        if !dua { set(&mut v, "/services", Value::String(services)); }
        set(&mut v, "/signers/0/name", Value::String(signer));
        set(&mut v, "/signers/0/title", Value::String(title));
        set(&mut v, "/breach_notice_days", Value::from(days));
        set(&mut v, "/term/months", Value::from(months));
        set(&mut v, "/states", Value::from(states));
        let i = intake_from(&v);
        let r = Renderer::builtin().expect("templates").render(&i, Options::default()).expect("renders");
        prop_assert!(r.pdf.starts_with(b"%PDF-"));
        prop_assert_eq!(r.report.errors(), 0, "{:#?}", r.report.findings);
    }

    /// No input makes the parser or the renderer panic.
    #[test]
    fn no_input_panics(s in ".{0,400}") {
        if let Ok(i) = countersign::app::load_intake(&s) {
            let _ = Renderer::builtin().expect("templates").render(&i, Options::default());
        }
    }

    /// Arbitrary JSON put in any field is either accepted or rejected without panicking.
    #[test]
    fn any_json_in_any_field_never_panics(field in 0usize..12, val in prop_oneof![
        Just(Value::Null), any::<bool>().prop_map(Value::from), any::<i64>().prop_map(Value::from),
        ".{0,30}".prop_map(Value::from), Just(serde_json::json!([1, "x", null])), Just(serde_json::json!({"a": 1})),
    ]) {
        let fields = ["/kind", "/relationship", "/covered_entity", "/covered_entity/address/state", "/signers", "/signers/0/order",
            "/effective_date", "/term", "/states", "/breach_notice_days", "/options", "/subcontractors/0"];
        let mut v = example_json(BAA);
        set(&mut v, fields[field], val);
        if let Ok(i) = countersign::app::load_intake(&v.to_string()) {
            let _ = Renderer::builtin().expect("templates").render(&i, Options::default());
        }
    }
}
