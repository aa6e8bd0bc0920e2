//! The required-elements checker. It reads the *rendered* document model, after every template
//! conditional has been applied, so a template edit that drops or guts a clause is caught the
//! same way a bad intake is.

use std::rc::Rc;
use std::sync::LazyLock;

use memchr::memmem::Finder;

use serde::Serialize;

use super::model::{Clause, Document};
use super::shelf::LocalShelf;
use crate::domain::addenda::BreachClock;
use crate::domain::elements::{Applies, ELEMENTS, Element, OptionKey, Requirement, element};
use crate::domain::findings::{Finding, Level};
use crate::domain::intake::{BaaOptions, Intake, Kind, Relationship};
use crate::domain::provisions::{ProvisionRow, Provisions};

/// How one element fared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A clause declares it and says what it must.
    Satisfied,
    /// No clause declares it.
    Missing,
    /// A clause declares it but lacks a required idea.
    Incomplete,
    /// An optional element whose option is off (and which is correctly absent).
    Off,
}

/// One row of the element report.
#[derive(Debug, Clone, Serialize)]
pub struct ElementRow {
    pub id: &'static str,
    pub citation: &'static str,
    pub summary: &'static str,
    pub status: Status,
    /// `2.3 Reporting` — the clause that satisfies it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clause: Option<String>,
}

/// The element report plus findings.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub elements: Vec<ElementRow>,
    pub provisions: Vec<ProvisionRow>,
    pub departures: Vec<Finding>,
    pub findings: Vec<Finding>,
}

fn applies(e: &Element, intake: &Intake) -> bool {
    match (&intake.kind, e.applies) {
        (Kind::Baa(_), Applies::Baa) => true,
        (Kind::Baa(b), Applies::SubcontractorBaa) => b.relationship == Relationship::BusinessAssociateToSubcontractor,
        (Kind::Dua(_), Applies::Dua) => true,
        _ => false,
    }
}

fn option_on(options: &BaaOptions, key: OptionKey) -> bool {
    match key {
        OptionKey::ManagementAndAdministration => options.management_and_administration,
        OptionKey::DataAggregation => options.data_aggregation,
        OptionKey::DeIdentification => options.de_identification,
    }
}

/// A clause text and its folding, kept by [`folded`].
struct Folded {
    raw: Box<str>,
    folded: Rc<str>,
}

/// Bytes of clause text (raw and folded) remembered per thread; then the cache starts again.
/// Server threads come and go by the hundred, so each keeps little.
const FOLD_CACHE_BYTES: usize = 1 << 20;
/// Longer texts (a long exhibit an intake wrote) are folded every time rather than kept.
const FOLD_CACHE_LONGEST: usize = 16 * 1024;

thread_local! {
    /// Clause texts already folded on this thread. Like the line-break cache in `layout`: most
    /// clauses are the same text in every agreement of a template version, and folding was the
    /// largest part of the check. A hit compares the whole text, so it gives exactly what
    /// folding would.
    static FOLDS: LocalShelf<Folded> = LocalShelf::new(FOLD_CACHE_BYTES);
}

/// [`fold`], from this thread's cache when the same text was folded before.
fn folded(s: &str) -> Rc<str> {
    if s.len() > FOLD_CACHE_LONGEST {
        return fold(s).into();
    }
    let crc = crc32fast::hash(s.as_bytes());
    if let Some(hit) = FOLDS.with(|c| c.find(crc, |e| e.raw.as_ref() == s)) {
        return hit.folded.clone();
    }
    let out: Rc<str> = fold(s).into();
    let cost = s.len() + out.len() + 64;
    FOLDS.with(|c| c.put(crc, Folded { raw: s.into(), folded: out.clone() }, cost));
    out
}

/// Folds case and whitespace so concept matching ignores line breaks and typography.
fn fold(s: &str) -> String {
    // Bytes, not chars: ASCII is nearly all of an agreement's text and this runs over every
    // clause of every render, so ASCII is handled without decoding and only the rest decoded.
    let mut out: Vec<u8> = Vec::with_capacity(s.len() + 16);
    let mut space = false;
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii() {
            i += 1;
            if super::model::ascii_space_byte(b) {
                space = !out.is_empty();
                continue;
            }
            if space {
                out.push(b' ');
                space = false;
            }
            out.push(b.to_ascii_lowercase());
            continue;
        }
        let Some(c) = s.get(i..).and_then(|r| r.chars().next()) else { break };
        i += c.len_utf8();
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(b' ');
            space = false;
        }
        let mut buf = [0u8; 4];
        match c {
            '‘' | '’' => out.push(b'\''),
            '“' | '”' => out.push(b'"'),
            '–' | '—' => out.push(b'-'),
            c => c.to_lowercase().for_each(|l| out.extend_from_slice(l.encode_utf8(&mut buf).as_bytes())),
        }
    }
    // Whole characters were copied, so this is UTF-8; the fallback is never taken.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Substring search with `memchr`'s vectorised finder: the check looks for a few hundred
/// phrases in the clauses of every render.
fn contains(haystack: &str, needle: &str) -> bool {
    memchr::memmem::find(haystack.as_bytes(), needle.as_bytes()).is_some()
}

/// Whether `word` stands in `text` as a whole word: neither side touches a letter or digit.
#[cfg(test)]
fn has_word(text: &str, word: &str) -> bool {
    stands_alone(text, &Finder::new(word.as_bytes()))
}

/// [`has_word`] with the word's searcher made beforehand.
fn stands_alone(text: &str, word: &Finder) -> bool {
    let len = word.needle().len();
    word.find_iter(text.as_bytes()).any(|at| {
        let before = text.get(..at).and_then(|t| t.chars().next_back());
        let after = text.get(at + len..).and_then(|t| t.chars().next());
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// The words and stems [`check_wording`] looks for in every clause, their searchers made once.
static WORDING: LazyLock<[Finder<'static>; 5]> =
    LazyLock::new(|| ["agent", "agents", "infeasib", "secretary", "report"].map(|w| Finder::new(w.as_bytes())));

/// A searcher per phrase of every element's concepts, in the order of [`ELEMENTS`], made once:
/// building memchr's searcher for each phrase of each render was ~3 % of a render (issue 14).
static CONCEPT_FINDERS: LazyLock<Vec<Vec<Vec<Finder<'static>>>>> = LazyLock::new(|| {
    ELEMENTS
        .iter()
        .map(|e| e.concepts.iter().map(|group| group.iter().map(|alt| Finder::new(alt.as_bytes())).collect()).collect())
        .collect()
});

/// The concept groups a clause text lacks; `finders` are the element's from [`CONCEPT_FINDERS`].
fn missing_concepts(e: &Element, finders: &[Vec<Finder<'static>>], folded: &str) -> Vec<String> {
    e.concepts
        .iter()
        .zip(finders)
        .filter(|(_, alts)| !alts.iter().any(|f| f.find(folded.as_bytes()).is_some()))
        .map(|(group, _)| group.join(" / "))
        .collect()
}

/// Runs every check over a rendered document.
pub fn check(doc: &Document, intake: &Intake, clock: &BreachClock) -> Check {
    let clauses: Vec<(&Clause, Rc<str>)> = doc.clauses().map(|c| (c, folded(&c.text()))).collect();
    let mut rows = Vec::new();
    let mut findings = Vec::new();
    let options = match &intake.kind {
        Kind::Baa(b) => b.options,
        Kind::Dua(_) => BaaOptions::default(),
    };

    for (e, finders) in ELEMENTS.iter().zip(CONCEPT_FINDERS.iter()).filter(|(e, _)| applies(e, intake)) {
        let declaring: Vec<&(&Clause, Rc<str>)> =
            clauses.iter().filter(|(c, _)| c.elements.iter().any(|id| id == e.id)).collect();
        let wanted = match e.requirement {
            Requirement::Required | Requirement::Recommended => true,
            Requirement::Option(key) => option_on(&options, key),
        };
        let row = |status, clause: Option<&Clause>| ElementRow {
            id: e.id,
            citation: e.citation,
            summary: e.summary,
            status,
            clause: clause.map(|c| format!("{} {}", c.number, c.heading)),
        };
        if !wanted {
            if let Some((c, _)) = declaring.first() {
                findings.push(
                    Finding::new(
                        Level::Error,
                        "unexpected_element",
                        format!("clause {} {} is included although its option is off", c.number, c.heading),
                    )
                    .with_element(e.id)
                    .with_citation(e.citation),
                );
            }
            rows.push(row(Status::Off, None));
            continue;
        }
        let missing_level = if e.requirement == Requirement::Recommended { Level::Advisory } else { Level::Error };
        if declaring.is_empty() {
            findings.push(
                Finding::new(missing_level, "missing_element", format!("no clause provides: {}", e.summary))
                    .with_element(e.id)
                    .with_citation(e.citation),
            );
            rows.push(row(Status::Missing, None));
            continue;
        }
        // Satisfied when the declaring clauses together say everything the element needs.
        let joined: String = declaring.iter().map(|(_, t)| t.as_ref()).collect::<Vec<&str>>().join(" ");
        let lacking = missing_concepts(e, finders, &joined);
        if lacking.is_empty() {
            rows.push(row(Status::Satisfied, Some(declaring[0].0)));
        } else {
            let c = declaring[0].0;
            findings.push(
                Finding::new(
                    missing_level,
                    "incomplete_element",
                    format!("clause {} {} does not say: {}", c.number, c.heading, lacking.join("; ")),
                )
                .with_element(e.id)
                .with_citation(e.citation),
            );
            rows.push(row(Status::Incomplete, Some(c)));
        }
    }

    // Declarations that name no element, or one that does not apply to this agreement.
    for (c, _) in &clauses {
        for id in c.elements.iter().filter(|id| !id.starts_with("P-")) {
            match element(id) {
                None => findings.push(
                    Finding::new(
                        Level::Error,
                        "unknown_element",
                        format!("clause {} {} declares an unknown element", c.number, c.heading),
                    )
                    .with_element(id.clone()),
                ),
                Some(e) if !applies(e, intake) => findings.push(
                    Finding::new(
                        Level::Error,
                        "inapplicable_element",
                        format!(
                            "clause {} {} declares an element that does not apply to this agreement",
                            c.number, c.heading
                        ),
                    )
                    .with_element(id.clone())
                    .with_citation(e.citation),
                ),
                Some(_) => {}
            }
        }
    }

    check_clock(&clauses, intake, clock, &mut findings);
    check_wording(&clauses, intake, &mut findings);
    Check { elements: rows, provisions: Vec::new(), departures: Vec::new(), findings }
}

/// Negotiated provisions: each enabled one has its clause, printing its parameters; each
/// disabled one is absent.
pub fn check_provisions(doc: &Document, p: &Provisions, findings: &mut Vec<Finding>) -> Vec<ProvisionRow> {
    let mut rows = p.summary();
    let known: Vec<&str> = rows.iter().map(|r| r.tag).collect();
    for c in doc.clauses() {
        for tag in c.elements.iter().filter(|t| t.starts_with("P-") && !known.contains(&t.as_str())) {
            findings.push(
                Finding::new(
                    Level::Error,
                    "unknown_provision",
                    format!("clause {} {} declares an unknown provision", c.number, c.heading),
                )
                .with_element(tag.clone()),
            );
        }
    }
    for row in &mut rows {
        let tagged: Vec<&Clause> = doc.clauses().filter(|c| c.elements.iter().any(|t| t == row.tag)).collect();
        match (row.enabled, tagged.first()) {
            (true, None) => findings.push(
                Finding::new(
                    Level::Error,
                    "missing_provision",
                    format!("no clause provides the negotiated provision “{}”", row.name),
                )
                .with_element(row.tag),
            ),
            (true, Some(c)) => {
                row.clause = Some(format!("{} {}", c.number, c.heading));
                let text = folded(&c.text());
                for want in p.expected_text(row.tag) {
                    if !contains(&text, &fold(&want)) {
                        findings.push(
                            Finding::new(
                                Level::Error,
                                "provision_parameter_missing",
                                format!("clause {} {} does not state “{want}”", c.number, c.heading),
                            )
                            .with_element(row.tag),
                        );
                    }
                }
            }
            (false, Some(c)) => findings.push(
                Finding::new(
                    Level::Error,
                    "unexpected_provision",
                    format!("clause {} {} is included although “{}” is off", c.number, c.heading, row.name),
                )
                .with_element(row.tag),
            ),
            (false, None) => {}
        }
    }
    if p.part2 {
        findings.push(
            Finding::new(
                Level::Advisory,
                "verify_with_counsel",
                "verify with counsel: the 42 CFR Part 2 clause rests on the facts sheet for the qualified service                  organization terms (2.11) and the 2024 final rule's compliance date (✅); its redisclosure notice                  (2.32) and the rule's security and breach terms are stated from secondary sources (◐)",
            )
            .with_element("P-PART2")
            .with_citation("42 CFR 2.11"),
        );
    }
    rows
}

/// The reporting clause must carry the effective clock, so the paper never promises less.
fn check_clock(clauses: &[(&Clause, Rc<str>)], intake: &Intake, clock: &BreachClock, findings: &mut Vec<Finding>) {
    let id = match intake.kind {
        Kind::Baa(_) => "BAA-04",
        Kind::Dua(_) => "DUA-06",
    };
    let Some(e) = element(id) else { return };
    let heading = match intake.kind {
        Kind::Baa(_) => "Reporting of Improper Use or Disclosure",
        Kind::Dua(_) => "Reporting of Uses and Disclosures Not Provided For",
    };
    if !clauses.iter().any(|(c, _)| c.heading == heading) {
        findings.push(
            Finding::new(
                Level::Error,
                "reporting_clause_renamed",
                format!("other clauses refer to the clause headed “{heading}”, which is missing"),
            )
            .with_element(id),
        );
    }
    let needle = fold(&clock.text());
    let reporting: Vec<_> = clauses.iter().filter(|(c, _)| c.elements.iter().any(|x| x == id)).collect();
    if !reporting.is_empty() && !reporting.iter().any(|(_, t)| contains(t, &needle)) {
        findings.push(
            Finding::new(
                Level::Error,
                "breach_clock_mismatch",
                format!("the reporting clause does not state the effective deadline “{}”", clock.text()),
            )
            .with_element(id)
            .with_citation(e.citation),
        );
    }
    if let Kind::Dua(d) = &intake.kind {
        let purpose = fold(super::context::purpose_text(d.purpose));
        let ok = clauses.iter().any(|(c, t)| c.elements.iter().any(|x| x == "DUA-01") && contains(t, &purpose));
        if !ok {
            findings.push(
                Finding::new(
                    Level::Error,
                    "purpose_mismatch",
                    format!("no DUA-01 clause states the purpose “{purpose}”"),
                )
                .with_element("DUA-01")
                .with_citation("45 CFR 164.514(e)(3)(i)"),
            );
        }
    }
}

/// Pre-2013 wording the facts sheet tells us to flag in a BAA.
fn check_wording(clauses: &[(&Clause, Rc<str>)], intake: &Intake, findings: &mut Vec<Finding>) {
    if !matches!(intake.kind, Kind::Baa(_)) {
        return;
    }
    // The independent-contractor clause names agency on purpose (45 CFR 164.404(a)(2)).
    let [agent, agents, infeasible, secretary, report] = &*WORDING;
    for (c, t) in clauses.iter().filter(|(c, _)| !c.elements.iter().any(|e| e == "P-AGENCY")) {
        let found = |f: &Finder| f.find(t.as_bytes()).is_some();
        if stands_alone(t, agent) || stands_alone(t, agents) {
            findings.push(
                Finding::new(
                    Level::Advisory,
                    "outdated_wording",
                    format!(
                        "clause {} {} says “agents”; since 2013 the rule speaks of subcontractors",
                        c.number, c.heading
                    ),
                )
                .with_citation("45 CFR 164.504(e)(2)(ii)(D)"),
            );
        }
        if found(infeasible) && found(secretary) && found(report) {
            findings.push(
                Finding::new(
                    Level::Advisory,
                    "outdated_wording",
                    format!(
                        "clause {} {} may require reporting to the Secretary when termination is infeasible, which the 2013 rule removed",
                        c.number, c.heading
                    ),
                )
                .with_citation("45 CFR 164.504(e)(1)(ii)"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outdated_wording_is_found_by_whole_words_and_the_three_stems() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/intake/baa-tx-ca.json"))
            .expect("example");
        let intake = crate::domain::parse::parse_intake(&text, &crate::render::fonts::printable).expect("parses");
        let clause = |heading: &str, body: &str| Clause {
            number: "9.9".into(),
            heading: heading.into(),
            elements: Vec::new(),
            body: vec![super::super::model::Block::Paragraph {
                runs: vec![super::super::model::Run { text: body.into(), bold: false }],
            }],
        };
        let cases = [
            (clause("Agents", "Business Associate shall ensure that its Agents agree."), 1),
            (clause("Agency", "No agency, no reagent, no agents2."), 0),
            (clause("Infeasible", "If return is Infeasible, notify the Secretary and Report it."), 1),
            (clause("Two of three", "If return is infeasible, notify the Secretary."), 0),
            (clause("Both", "An agent shall report to the Secretary when infeasibility arises."), 2),
        ];
        for (c, want) in &cases {
            let clauses = [(c, folded(&c.text()))];
            let mut findings = Vec::new();
            check_wording(&clauses, &intake, &mut findings);
            assert_eq!(findings.len(), *want, "{}: {findings:?}", c.heading);
            assert!(findings.iter().all(|f| f.code == "outdated_wording"));
        }
    }

    #[test]
    fn folding_lowers_case_straightens_typography_and_collapses_whitespace() {
        // The rule one character at a time, as written before the ASCII fast path.
        fn reference(s: &str) -> String {
            let mut out = String::new();
            let mut space = false;
            for c in s.chars() {
                if c.is_whitespace() {
                    space = !out.is_empty();
                    continue;
                }
                if space {
                    out.push(' ');
                    space = false;
                }
                match c {
                    c if c.is_ascii() => out.push(c.to_ascii_lowercase()),
                    '‘' | '’' => out.push('\''),
                    '“' | '”' => out.push('"'),
                    '–' | '—' => out.push('-'),
                    c => out.extend(c.to_lowercase()),
                }
            }
            out
        }
        for s in [
            "  Business Associate shall REPORT\n\tany Breach — within “sixty (60)” days. ",
            "Zoë ÅNGSTRÖM’s [records] {a~b} @x ^_` \x1f\x7f end",
            "İstanbul ΣΑΣ\u{a0}\u{a0}tail\u{3000}",
            "",
            "   ",
            " é é ",
            "a \u{a0} B\u{a0}\u{a0}c",
            "É\n\nÉ",
            "x—y – z’s \t",
        ] {
            assert_eq!(fold(s), reference(s), "{s:?}");
        }
        assert_eq!(fold("  Shall   NOT\nuse "), "shall not use");
    }

    #[test]
    fn a_folded_text_from_the_cache_is_what_folding_gives() {
        let text = "Business Associate SHALL report — “promptly”.";
        let first = folded(text);
        assert_eq!(first.as_ref(), fold(text));
        assert!(Rc::ptr_eq(&first, &folded(text)), "the second fold is a hit");
        assert_eq!(
            folded("Business Associate SHALL report — “promptly”!").as_ref(),
            fold("Business Associate SHALL report — “promptly”!")
        );
    }

    #[test]
    fn a_whole_word_is_found_only_where_no_letter_or_digit_touches_it() {
        assert!(has_word("its agents, and", "agents"));
        assert!(has_word("agent", "agent"));
        assert!(has_word("(agent)", "agent"));
        assert!(!has_word("agents", "agent"));
        assert!(!has_word("an agency", "agent"));
        assert!(!has_word("reagent", "agent"));
        assert!(!has_word("agent2", "agent"));
        assert!(!has_word("éagent", "agent"));
        assert!(has_word("x agent— y", "agent"));
        assert!(has_word("reagent and agent", "agent"), "a later occurrence counts");
    }
}
