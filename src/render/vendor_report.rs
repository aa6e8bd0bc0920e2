//! The vendor register's executive report as a PDF, by the same engine as the agreements:
//! document model → layout → PDF. The figures come from [`crate::domain::vendor::report`];
//! the charts (vendors by tier, by determination, BAA coverage) are bars drawn into a page of
//! their own ([`Rule::Bar`]), so no browser or image library is needed.
//!
//! Deterministic: the same figures and date give the same bytes.

use super::fonts::{Face, fonts};
use super::layout::{self, Line, MARGIN, PAGE_H, PAGE_W, Page, Rule, Span};
use super::model::{Article, Block, Document, Run};
use super::pdf;
use crate::domain::vendor::Report;

fn para(runs: Vec<Run>) -> Block {
    Block::Paragraph { runs }
}

fn run(text: impl Into<String>, bold: bool) -> Run {
    Run { text: text.into(), bold }
}

fn item(i: usize, runs: Vec<Run>) -> Block {
    Block::Item { ordered: false, index: i, depth: 0, runs }
}

/// A determination's label (`dua_needed` → `DUA needed`).
fn det_label(s: &str) -> String {
    crate::domain::vendor::Role::ALL
        .iter()
        .find(|r| r.as_str() == s)
        .map_or_else(|| "Not determined".to_string(), |r| r.label().to_string())
}

fn human(s: &str) -> String {
    let s = s.replace('_', " ");
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

/// The report's text: summary, attention items, the register.
fn document(r: &Report) -> Document {
    let figure = |label: &str, n: usize| item(0, vec![run(format!("{label}: "), false), run(n.to_string(), true)]);
    let summary = vec![
        para(vec![run(
            format!(
                "{} vendors are on the register as of {}. {} of them are business associates or subcontractors; \
                 {} of those have no executed BAA on file.",
                r.vendors, r.as_of, r.business_associates, r.business_associates_without_baa
            ),
            false,
        )]),
        figure("Vendors", r.vendors),
        figure("Business associates and subcontractors", r.business_associates),
        figure("Business associates without an executed BAA", r.business_associates_without_baa),
        figure("Reassessments due or overdue", r.overdue_reassessments),
        figure("Open findings past their due date", r.overdue_findings),
        figure("Expired or expiring documents (incl. SOC 2 reports older than 12 months)", r.expiring_documents),
        figure("Vendors with an agreement renewing or ending in the next 90 days", r.renewing_90_days),
        figure("Subcontractors without a confirmed downstream BAA", r.unconfirmed_subcontractors),
    ];
    let mut tiers: Vec<Block> =
        r.by_tier.iter().map(|(t, n)| figure(&format!("{} risk", human(t)), *n)).collect::<Vec<_>>();
    tiers.extend(r.by_determination.iter().map(|(d, n)| figure(&det_label(d), *n)));
    let register: Vec<Block> = if r.rows.is_empty() {
        vec![para(vec![run("No vendors are on the register yet.", false)])]
    } else {
        r.rows
            .iter()
            .enumerate()
            .map(|(i, row)| {
                item(
                    i,
                    vec![
                        run(format!("{} ", row.name), true),
                        run(
                            format!(
                                "— {}; {} risk; {} {}; next reassessment {}",
                                det_label(&row.determination),
                                row.tier.as_str(),
                                if row.determination == "dua_needed" { "DUA" } else { "BAA" },
                                row.baa_status.replace('_', " "),
                                row.next_reassessment
                            ),
                            false,
                        ),
                    ],
                )
            })
            .collect()
    };
    Document {
        title: "Vendor Register — Executive Report".into(),
        subtitle: vec![format!("As of {}", r.as_of)],
        parties: Vec::new(),
        draft_notice: None,
        articles: vec![
            Article { number: 1, heading: "Summary".into(), intro: summary, clauses: Vec::new() },
            Article {
                number: 2,
                heading: "Vendors by Tier and Determination".into(),
                intro: tiers,
                clauses: Vec::new(),
            },
            Article { number: 3, heading: "The Register".into(), intro: register, clauses: Vec::new() },
        ],
        attachments: Vec::new(),
        signature_note: None,
        signatures: Vec::new(),
        subject: format!("Vendor register executive report as of {}", r.as_of),
        author: "Countersign".into(),
    }
}

const LABEL_W: f32 = 190.0;
const BAR_MAX: f32 = PAGE_W - 2.0 * MARGIN - LABEL_W - 40.0;

fn text_line(height: f32, x: f32, text: &str, face: Face, size: f32) -> Line {
    Line { height, spans: vec![Span { x, text: text.into(), face, size, gray: false }], rules: Vec::new() }
}

/// A page of bar charts: each chart a heading and one bar per (label, count).
fn chart_page(charts: &[(&str, Vec<(String, usize)>)]) -> Page {
    let mut page = Page::default();
    let mut y = PAGE_H - MARGIN;
    y -= 16.0;
    page.lines.push((y, text_line(16.0, 0.0, "Charts", Face::Bold, 13.0)));
    for (title, bars) in charts {
        y -= 28.0;
        page.lines.push((y, text_line(14.0, 0.0, title, Face::Bold, 10.5)));
        y -= 6.0;
        let max = bars.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1) as f32;
        for (label, n) in bars {
            y -= 17.0;
            let w = if *n == 0 { 0.0 } else { (BAR_MAX * *n as f32 / max).max(2.0) };
            let count = n.to_string();
            let mut line = text_line(17.0, 0.0, label, Face::Regular, 9.0);
            line.spans.push(Span {
                x: LABEL_W + w + 6.0,
                text: count.into(),
                face: Face::Bold,
                size: 9.0,
                gray: false,
            });
            if w > 0.0 {
                line.rules.push(Rule::Bar { x1: LABEL_W, x2: LABEL_W + w, height: 10.0 });
            }
            page.lines.push((y, line));
        }
    }
    page
}

/// The report as PDF bytes. `now` is the document date (unix seconds).
pub fn pdf(r: &Report, now: u64) -> Vec<u8> {
    let doc = document(r);
    let f = fonts();
    let mut pages = layout::layout(f, &doc);
    let coverage = vec![
        ("With an executed BAA".to_string(), r.business_associates - r.business_associates_without_baa),
        ("Without an executed BAA".to_string(), r.business_associates_without_baa),
    ];
    pages.push(chart_page(&[
        ("Vendors by risk tier", r.by_tier.iter().map(|(t, n)| (format!("{} risk", human(t)), *n)).collect()),
        ("Vendors by determination", r.by_determination.iter().map(|(d, n)| (det_label(d), *n)).collect()),
        ("BAA coverage of business associates and subcontractors", coverage),
    ]));
    let id = pdf::id_of(&[&serde_json::to_vec(r).unwrap_or_default()]);
    let right = format!("As of {}", r.as_of);
    pdf::write(
        f,
        &pages,
        &pdf::Meta {
            title: &doc.title,
            subject: &doc.subject,
            author: &doc.author,
            keywords: vec!["HIPAA".into(), "vendor register".into()],
            date_unix: now as i64,
            header: "Vendor register — executive report",
            header_right: &right,
            draft: false,
            id,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::vendor::{RegisterRow, Tier};

    fn report() -> Report {
        Report {
            as_of: "2027-02-01".into(),
            vendors: 2,
            rows: vec![RegisterRow {
                id: "v1".into(),
                name: "Acme Cloud".into(),
                determination: "business_associate".into(),
                tier: Tier::High,
                baa_status: "missing".into(),
                next_reassessment: "2028-01-04".into(),
            }],
            by_tier: vec![("high".into(), 1), ("medium".into(), 0), ("low".into(), 1)],
            by_determination: vec![("business_associate".into(), 1), ("undetermined".into(), 1)],
            business_associates: 1,
            business_associates_without_baa: 1,
            overdue_reassessments: 0,
            overdue_findings: 0,
            expiring_documents: 0,
            renewing_90_days: 0,
            unconfirmed_subcontractors: 0,
        }
    }

    #[test]
    fn the_report_is_a_deterministic_pdf_with_a_chart_page() {
        let a = pdf(&report(), 1_800_000_000);
        assert!(a.starts_with(b"%PDF-"));
        assert_eq!(a, pdf(&report(), 1_800_000_000), "same figures, same bytes");
        let page = chart_page(&[("t", vec![("a".into(), 3), ("b".into(), 0)])]);
        let bars: Vec<_> = page.lines.iter().flat_map(|(_, l)| l.rules.clone()).collect();
        assert_eq!(bars, [Rule::Bar { x1: LABEL_W, x2: LABEL_W + BAR_MAX, height: 10.0 }], "zero draws no bar");
    }
}
