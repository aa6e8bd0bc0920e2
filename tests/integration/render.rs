//! Rendering both examples and checking the PDFs with real tools.

use countersign::domain::elements::{Applies, ELEMENTS, Requirement};
use countersign::render::check::Status;
use countersign::render::context::{AGREEMENT_TEMPLATES, Templates};
use countersign::render::{Mode, Options, Renderer};

use crate::helpers::*;

fn check_example(name: &str, legal_names: &[&str], signers: &[&str]) {
    let i = intake(&example_text(name));
    let r = render(&i, Options::default());
    assert_qpdf_ok(&r.pdf);
    let text = fold(&pdftotext(&r.pdf));
    for n in legal_names.iter().chain(signers) {
        assert!(text.contains(n), "{name}: pdftotext lacks {n:?}");
    }
    for h in r.document.headings() {
        assert!(text.contains(&fold(&h)), "{name}: pdftotext lacks heading {h:?}");
    }
    assert!(text.contains("Page 1 of"), "{name}: no page numbers");
    let pages = page_count(&r.pdf);
    assert!((4..=14).contains(&pages), "{name}: {pages} pages");
    assert_eq!(pages, r.report.pages);
    assert!(r.pdf.len() <= 100 * 1024, "{name}: {} bytes", r.pdf.len());
    assert_eq!(r.report.errors(), 0, "{name}: {:#?}", r.report.findings);
}

#[test]
fn the_baa_example_renders_to_a_valid_pdf_with_names_headings_and_signers() {
    check_example(
        BAA,
        &["Lakeside Family Clinic, P.C.", "Northwind Patient Messaging, Inc.", "Marta Núñez", "Łukasz Żółć"],
        &["Priya Raman", "Zoë Ångström"],
    );
}

#[test]
fn the_dua_example_renders_to_a_valid_pdf_with_names_headings_and_signers() {
    check_example(
        DUA,
        &["Hudson Valley Health System", "Catskill Outcomes Research Institute", "Tomás Ferreira"],
        &["Irene Novak", "Grace Kim"],
    );
}

#[test]
fn the_same_intake_renders_to_identical_bytes_every_time() {
    for name in [BAA, DUA] {
        let i = intake(&example_text(name));
        let a = render(&i, Options::default());
        let b = Renderer::builtin().expect("templates").render(&i, Options::default()).expect("renders");
        assert_eq!(a.pdf, b.pdf, "{name}");
        assert_eq!(a.report.sha256, b.report.sha256);
        let s1 = render(&i, Options { mode: Mode::ForSignature, version: 1 });
        let s2 = render(&i, Options { mode: Mode::ForSignature, version: 1 });
        assert_eq!(s1.pdf, s2.pdf);
        assert_ne!(a.pdf, s1.pdf, "draft and signature copies differ");
    }
}

#[test]
fn the_element_report_lists_every_required_id_for_each_kind() {
    for (name, applies) in [(BAA, Applies::Baa), (DUA, Applies::Dua)] {
        let r = render(&intake(&example_text(name)), Options::default());
        for e in ELEMENTS.iter().filter(|e| e.applies == applies) {
            let row = r
                .report
                .elements
                .iter()
                .find(|row| row.id == e.id)
                .unwrap_or_else(|| panic!("{name}: {} not in report", e.id));
            match e.requirement {
                Requirement::Required => assert_eq!(row.status, Status::Satisfied, "{name}: {}", e.id),
                _ => {
                    assert!(matches!(row.status, Status::Satisfied | Status::Off), "{name}: {} {:?}", e.id, row.status)
                }
            }
            if row.status == Status::Satisfied {
                assert!(row.clause.is_some());
            }
        }
    }
}

#[test]
fn removing_a_clause_from_the_template_fails_the_check_naming_element_and_citation() {
    let (_, baa) = AGREEMENT_TEMPLATES.iter().find(|(n, _)| *n == "baa.md.tera").expect("baa template");
    // Drop the clause that declares BAA-10 (books and records), heading through the next heading.
    let start = baa.find(".BAA-10").expect("a clause declares BAA-10");
    let start = baa[..start].rfind("###").expect("heading");
    let end = baa[start + 3..].find("\n#").map(|e| start + 3 + e + 1).unwrap_or(baa.len());
    let edited = format!("{}{}", &baa[..start], &baa[end..]);
    let mut sources: Vec<(String, String)> =
        AGREEMENT_TEMPLATES.iter().map(|(n, s)| (n.to_string(), s.to_string())).collect();
    sources.retain(|(n, _)| n != "baa.md.tera");
    sources.push(("baa.md.tera".into(), edited));
    for (code, src) in countersign::domain::addenda::ADDENDUM_TEMPLATES {
        sources.push((format!("addenda/{code}.md.tera"), src.to_string()));
    }
    let r = Renderer::with_templates(Templates::from_sources(sources).expect("templates"));
    let out = r.render(&intake(&example_text(BAA)), Options::default()).expect("renders");
    let f =
        out.report.findings.iter().find(|f| f.element.as_deref() == Some("BAA-10")).expect("a finding names BAA-10");
    assert_eq!(f.code, "missing_element");
    assert_eq!(f.citation.as_deref(), Some("45 CFR 164.504(e)(2)(ii)(I)"));
    assert!(out.report.errors() > 0);
}

#[test]
fn gutting_a_clause_but_keeping_its_tag_also_fails() {
    let (_, baa) = AGREEMENT_TEMPLATES.iter().find(|(n, _)| *n == "baa.md.tera").expect("baa template");
    let edited = baa.replace("164.410", "the applicable rule");
    let mut sources: Vec<(String, String)> = vec![("baa.md.tera".into(), edited)];
    sources.extend(
        AGREEMENT_TEMPLATES.iter().filter(|(n, _)| *n != "baa.md.tera").map(|(n, s)| (n.to_string(), s.to_string())),
    );
    for (code, src) in countersign::domain::addenda::ADDENDUM_TEMPLATES {
        sources.push((format!("addenda/{code}.md.tera"), src.to_string()));
    }
    let r = Renderer::with_templates(Templates::from_sources(sources).expect("templates"));
    let out = r.render(&intake(&example_text(BAA)), Options::default()).expect("renders");
    assert!(
        out.report.findings.iter().any(|f| f.element.as_deref() == Some("BAA-04") && f.code == "incomplete_element"),
        "{:#?}",
        out.report.findings
    );
}

#[test]
fn a_draft_carries_the_draft_mark_and_counsel_notice_and_the_signature_copy_neither() {
    let i = intake(&example_text(BAA));
    let draft = fold(&pdftotext(&render(&i, Options::default()).pdf));
    assert!(draft.contains("DRAFT"));
    assert!(draft.contains("review by counsel"));
    let sent = fold(&pdftotext(&render(&i, Options { mode: Mode::ForSignature, version: 1 }).pdf));
    assert!(!sent.contains("DRAFT"), "signature copy must not say DRAFT");
    assert!(!sent.contains("review by counsel"));
    assert!(sent.contains("Executed Signature Page"));
    assert!(sent.contains("Version 1"));
}

#[test]
fn intake_values_that_look_like_markup_print_literally() {
    let mut v = example_json(BAA);
    let hostile = ["{{ 7*7 }}", "**bold**", "# 1. Heading", "[x](javascript:alert(1))", "<script>alert(1)</script>"];
    v["services"] = serde_json::Value::String(hostile.join(" and "));
    v["business_associate"]["legal_name"] = serde_json::Value::String("Acme <b>Health</b> & {% raw %} Co.".into());
    let r = render(&intake_from(&v), Options::default());
    assert_qpdf_ok(&r.pdf);
    let text = fold(&pdftotext(&r.pdf));
    for h in hostile {
        assert!(text.contains(h), "{h:?} should print literally");
    }
    assert!(text.contains("Acme <b>Health</b> & {% raw %} Co."));
    assert!(!text.contains(" 49 "), "tera must not evaluate intake values");
}

#[test]
fn exhibits_render_as_lettered_attachments_after_the_body() {
    let mut v = example_json(DUA);
    v["exhibits"] = serde_json::json!([
        {"title": "Study Staff", "text": "Irene Novak, principal investigator.\n\nTwo research coordinators named by the institute."},
        {"title": "Data Specification", "text": "Dates of service and diagnosis codes."}
    ]);
    let r = render(&intake_from(&v), Options::default());
    let text = fold(&pdftotext(&r.pdf));
    assert!(text.contains("Exhibit A — Study Staff"));
    assert!(text.contains("Exhibit B — Data Specification"));
    assert!(text.contains("Two research coordinators"));
    let a = text.find("Exhibit A — Study Staff").expect("exhibit");
    let sig = text.rfind("Signatures").expect("signature block");
    assert!(a < sig, "exhibits come before the signature block");
}
