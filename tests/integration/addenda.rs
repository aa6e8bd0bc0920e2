//! State-law addenda in rendered PDFs: each alone, all eight together, only the selected ones,
//! and the effective breach clock in the body.

use countersign::domain::addenda::Catalog;
use countersign::render::Options;

use crate::helpers::*;

fn with_states(states: &[&str], days: u32) -> serde_json::Value {
    let mut v = example_json(BAA);
    v["states"] = serde_json::json!(states);
    v["breach_notice_days"] = serde_json::json!(days);
    v
}

#[test]
fn each_addendum_renders_alone_with_its_heading_and_citations_and_no_other_state() {
    let catalog = Catalog::embedded();
    let all: Vec<_> = catalog.supported().collect();
    assert_eq!(all.len(), 8);
    for law in &all {
        let r = render(&intake_from(&with_states(&[&law.code], 30)), Options::default());
        assert_eq!(r.report.errors(), 0, "{}: {:#?}", law.code, r.report.findings);
        let text = fold(&pdftotext(&r.pdf));
        assert!(text.contains(&format!("{} State-Law Addendum", law.name)), "{}: heading", law.code);
        for c in &law.citations {
            assert!(text.contains(&fold(&c.cite)), "{}: citation {}", law.code, c.cite);
        }
        for other in all.iter().filter(|o| o.code != law.code) {
            assert!(!text.contains(&format!("{} State-Law Addendum", other.name)), "{} shows {}", law.code, other.code);
        }
        assert_eq!(r.report.addenda, vec![format!("Addendum {}", law.code)]);
    }
}

#[test]
fn all_eight_addenda_render_together_into_a_valid_pdf_each_on_its_own_page() {
    let codes = ["CA", "TX", "NY", "FL", "WA", "IL", "CO", "MA"];
    let r = render(&intake_from(&with_states(&codes, 30)), Options::default());
    assert_qpdf_ok(&r.pdf);
    assert_eq!(r.report.addenda.len(), 8);
    let text = pdftotext(&r.pdf);
    // Every addendum prints its "as of" note under its heading; no page carries two.
    let note = "Statements of state law current as of";
    let per_page: Vec<usize> = text.split('\u{c}').map(|p| fold(p).matches(note).count()).collect();
    assert_eq!(per_page.iter().sum::<usize>(), 8);
    assert!(per_page.iter().all(|&n| n <= 1), "each addendum starts on a new page: {per_page:?}");
    // FL's ten-day vendor clock is the strictest; five states say "immediately".
    assert!(fold(&text).contains("immediately, and in no case later than ten (10) calendar days after discovery"));
}

#[test]
fn the_body_states_the_strictest_clock_and_the_report_says_which_law_set_it() {
    for (states, days, clause) in [
        (vec![], 30, "without unreasonable delay, and in no case later than thirty (30) calendar days after discovery"),
        (vec!["FL"], 30, "in no case later than ten (10) calendar days after discovery"),
        (vec!["TX", "CA"], 10, "immediately, and in no case later than ten (10) calendar days after discovery"),
        (vec!["NY"], 60, "immediately, and in no case later than thirty (30) calendar days after discovery"),
    ] {
        let r = render(&intake_from(&with_states(&states, days)), Options::default());
        assert!(fold(&pdftotext(&r.pdf)).contains(clause), "{states:?} {days}: {}", r.report.breach_clock.text);
    }
    // The example BAA's report names both addenda and the law that set the clock.
    let r = render(&intake(&example_text(BAA)), Options::default());
    assert_eq!(r.report.addenda, vec!["Addendum TX", "Addendum CA"]);
    let why = &r.report.breach_clock.explanation;
    assert!(
        why.contains("set by the intake") && why.contains("Tex. Bus. & Com. Code") && why.contains("Cal. Civ. Code"),
        "{why}"
    );
}

#[test]
fn a_california_licensed_facility_gets_the_five_business_day_cap() {
    let mut v = with_states(&["CA"], 60);
    v["covered_entity"]["california_licensed_facility"] = serde_json::json!(true);
    let r = render(&intake_from(&v), Options::default());
    assert_eq!(
        r.report.breach_clock.text,
        "immediately, and in no case later than five (5) business days after discovery"
    );
    assert!(r.report.breach_clock.explanation.contains("1280.15"));
    assert!(fold(&pdftotext(&r.pdf)).contains("five (5) business days after discovery"));
}

#[test]
fn an_unknown_state_is_rejected_at_its_pointer_and_a_state_without_an_addendum_is_advised() {
    let err = countersign::app::load_intake(&with_states(&["ZZ"], 30).to_string()).expect_err("ZZ is no state");
    assert!(err.iter().any(|f| f.pointer.as_deref() == Some("/states/0")), "{err:?}");
    let r = render(&intake_from(&with_states(&["ME"], 60)), Options::default());
    assert_eq!(r.report.breach_clock.days, 15, "Maine's 30 days still count, less the 15-day owner margin");
    assert!(r.report.findings.iter().any(|f| f.code == "no_addendum" && f.pointer.as_deref() == Some("/states/0")));
}

#[test]
fn the_addenda_command_lists_the_supported_states_with_citations_and_dates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = countersign(&["addenda", "--format", "json"], dir.path());
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let codes: Vec<&str> = v.as_array().expect("list").iter().filter_map(|s| s["code"].as_str()).collect();
    assert_eq!(codes, ["CA", "CO", "FL", "IL", "MA", "NY", "TX", "WA"]);
    assert!(
        v.as_array()
            .expect("list")
            .iter()
            .all(|s| s["as_of"].is_string() && s["citations"].as_array().is_some_and(|c| !c.is_empty()))
    );
    let text = String::from_utf8_lossy(&countersign(&["addenda"], dir.path()).stdout).to_string();
    assert!(text.contains("TX Texas (as of") && text.contains("§ 521.053"), "{text}");
}
