//! The regulatory elements an agreement must contain, with their citations.
//!
//! This table is the checker's half of a contract with `templates/`: every clause in a template
//! declares the element IDs it satisfies (`### Heading {.BAA-04 .BAA-15}`), and the checker
//! (`render::check`) finds, in the *rendered* document, a clause declaring each required element
//! whose text also carries the element's concepts. A template edit that drops a clause, or guts
//! one while keeping its tag, fails the check naming the element and its citation.
//!
//! Concepts are deliberately plain: each is a list of alternatives, matched case-insensitively as
//! substrings of the clause text (whitespace folded). They encode what the regulation requires the
//! clause to *say*, paraphrased from `shared/reference/hipaa-agreements-facts.md`, not wording.

use serde::Serialize;

/// Which agreements an element applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Applies {
    /// Every BAA, whether covered entity → business associate or business associate → subcontractor.
    Baa,
    /// Only business associate → subcontractor agreements.
    SubcontractorBaa,
    /// Data use agreements.
    Dua,
}

/// How strongly an element is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Requirement {
    /// The regulation requires it: missing is an `error`.
    Required,
    /// Required exactly when the named intake option is on, and must be absent when it is off.
    Option(OptionKey),
    /// Good practice or a fact marked for counsel: missing is an `advisory`.
    Recommended,
}

/// The intake options that switch optional clauses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OptionKey {
    ManagementAndAdministration,
    DataAggregation,
    DeIdentification,
}

/// One element of the required-elements table.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Element {
    pub id: &'static str,
    pub citation: &'static str,
    /// What the clause must say, in one line.
    pub summary: &'static str,
    pub applies: Applies,
    pub requirement: Requirement,
    /// Every group must match; a group matches when any of its alternatives occurs.
    #[serde(skip)]
    pub concepts: &'static [&'static [&'static str]],
}

use Applies::{Baa, Dua, SubcontractorBaa};
use Requirement::{Recommended, Required};

/// The table. Order is the order of the report.
pub const ELEMENTS: &[Element] = &[
    Element {
        id: "BAA-01",
        citation: "45 CFR 164.504(e)(2)(i)",
        summary: "Permitted and required uses and disclosures of PHI by the business associate",
        applies: Baa,
        requirement: Required,
        concepts: &[&["permitted"], &["use"], &["disclos"], &["services"]],
    },
    Element {
        id: "BAA-01a",
        citation: "45 CFR 164.504(e)(2)(i)(A), (e)(4)(i)",
        summary: "Optional: use for the business associate's own management and administration or legal responsibilities",
        applies: Baa,
        requirement: Requirement::Option(OptionKey::ManagementAndAdministration),
        concepts: &[&["management and administration"], &["legal responsibilities", "legal duties"]],
    },
    Element {
        id: "BAA-01b",
        citation: "45 CFR 164.504(e)(4)(ii)",
        summary: "Optional: such disclosures only if required by law or with reasonable assurances of confidentiality and breach notice",
        applies: Baa,
        requirement: Requirement::Option(OptionKey::ManagementAndAdministration),
        concepts: &[&["required by law"], &["assurances"], &["confidential"], &["notify", "notifies", "inform"]],
    },
    Element {
        id: "BAA-01c",
        citation: "45 CFR 164.504(e)(2)(i)(B)",
        summary: "Optional: data aggregation services relating to the health care operations of the covered entity",
        applies: Baa,
        requirement: Requirement::Option(OptionKey::DataAggregation),
        concepts: &[&["data aggregation"], &["health care operations"]],
    },
    Element {
        id: "BAA-01d",
        citation: "45 CFR 164.502(d), 164.514(a)-(c)",
        summary: "Optional: de-identification of PHI by the business associate",
        applies: Baa,
        requirement: Requirement::Option(OptionKey::DeIdentification),
        concepts: &[&["de-identif"], &["164.514"]],
    },
    Element {
        id: "BAA-02",
        citation: "45 CFR 164.504(e)(2)(ii)(A)",
        summary: "No use or further disclosure other than as permitted by the agreement or required by law",
        applies: Baa,
        requirement: Required,
        concepts: &[&["not use or"], &["required by law"]],
    },
    Element {
        id: "BAA-03",
        citation: "45 CFR 164.504(e)(2)(ii)(B)",
        summary: "Appropriate safeguards, and Subpart C for electronic PHI",
        applies: Baa,
        requirement: Required,
        concepts: &[&["safeguard"], &["subpart c"]],
    },
    Element {
        id: "BAA-04",
        citation: "45 CFR 164.504(e)(2)(ii)(C); 164.410",
        summary: "Report uses or disclosures not provided for, including breaches of unsecured PHI under 164.410",
        applies: Baa,
        requirement: Required,
        concepts: &[
            &["report"],
            &["not provided for", "not permitted"],
            &["breach"],
            &["unsecured"],
            &["164.410"],
            &["discover"],
            &["identif"],
        ],
    },
    Element {
        id: "BAA-05",
        citation: "45 CFR 164.504(e)(2)(ii)(D); 164.502(e)(1)(ii)",
        summary: "Subcontractors agree to the same restrictions and conditions",
        applies: Baa,
        requirement: Required,
        concepts: &[&["subcontractor"], &["same restrictions"]],
    },
    Element {
        id: "BAA-06",
        citation: "45 CFR 164.504(e)(2)(ii)(E); 164.524",
        summary: "Make PHI available for individual access",
        applies: Baa,
        requirement: Required,
        concepts: &[&["164.524"], &["access"]],
    },
    Element {
        id: "BAA-07",
        citation: "45 CFR 164.504(e)(2)(ii)(F); 164.526",
        summary: "Make PHI available for amendment and incorporate amendments",
        applies: Baa,
        requirement: Required,
        concepts: &[&["164.526"], &["amend"]],
    },
    Element {
        id: "BAA-08",
        citation: "45 CFR 164.504(e)(2)(ii)(G); 164.528",
        summary: "Provide the information needed for an accounting of disclosures",
        applies: Baa,
        requirement: Required,
        concepts: &[&["164.528"], &["accounting"]],
    },
    Element {
        id: "BAA-09",
        citation: "45 CFR 164.504(e)(2)(ii)(H)",
        summary: "When carrying out a covered entity's Subpart E obligation, comply with the requirements that apply to it",
        applies: Baa,
        requirement: Required,
        concepts: &[&["subpart e"], &["obligation"]],
    },
    Element {
        id: "BAA-10",
        citation: "45 CFR 164.504(e)(2)(ii)(I)",
        summary: "Internal practices, books and records available to the Secretary of HHS",
        applies: Baa,
        requirement: Required,
        concepts: &[&["books"], &["records"], &["secretary"]],
    },
    Element {
        id: "BAA-11",
        citation: "45 CFR 164.504(e)(2)(ii)(J)",
        summary: "At termination return or destroy PHI and keep no copies; if infeasible, extend protections and limit further use",
        applies: Baa,
        requirement: Required,
        concepts: &[&["return"], &["destroy", "destruction"], &["infeasible"], &["copies"]],
    },
    Element {
        id: "BAA-12",
        citation: "45 CFR 164.504(e)(2)(iii)",
        summary: "Termination authorized if the business associate violates a material term",
        applies: Baa,
        requirement: Required,
        concepts: &[&["terminat"], &["material term"]],
    },
    Element {
        id: "BAA-13",
        citation: "45 CFR 164.314(a)(2)(i)(A)",
        summary: "Comply with the applicable requirements of the Security Rule (Subpart C)",
        applies: Baa,
        requirement: Required,
        concepts: &[&["comply"], &["subpart c"]],
    },
    Element {
        id: "BAA-14",
        citation: "45 CFR 164.314(a)(2)(i)(B); 164.308(b)(2)",
        summary: "Subcontractors that handle electronic PHI are bound by contract to the Security Rule",
        applies: Baa,
        requirement: Required,
        concepts: &[&["subcontractor"], &["electronic protected health information"]],
    },
    Element {
        id: "BAA-15",
        citation: "45 CFR 164.314(a)(2)(i)(C)",
        summary: "Report security incidents, including breaches of unsecured PHI under 164.410",
        applies: Baa,
        requirement: Required,
        concepts: &[&["security incident"], &["report"]],
    },
    Element {
        id: "BAA-16",
        citation: "45 CFR 164.504(e)(5); 164.314(a)(2)(iii)",
        summary: "A business associate–subcontractor agreement carries the same requirements as the upstream agreement",
        applies: SubcontractorBaa,
        requirement: Required,
        concepts: &[&["164.504(e)(5)"], &["same"]],
    },
    Element {
        id: "REL-03",
        citation: "45 CFR 164.502(b)",
        summary: "Minimum necessary applies to the business associate's uses, disclosures and requests",
        applies: Baa,
        requirement: Recommended,
        concepts: &[&["minimum necessary"]],
    },
    Element {
        id: "DUA-01",
        citation: "45 CFR 164.514(e)(3)(i)",
        summary: "The limited data set is used only for research, public health or health care operations",
        applies: Dua,
        requirement: Required,
        concepts: &[&["research", "public health", "health care operations"], &["purpose"]],
    },
    Element {
        id: "DUA-02",
        citation: "45 CFR 164.514(e)(4)(ii)(A)",
        summary: "The recipient's permitted uses and disclosures, none the covered entity could not make",
        applies: Dua,
        requirement: Required,
        concepts: &[&["permitted"], &["use"], &["disclos"]],
    },
    Element {
        id: "DUA-03",
        citation: "45 CFR 164.514(e)(4)(ii)(B)",
        summary: "Who may use or receive the limited data set",
        applies: Dua,
        requirement: Required,
        concepts: &[&["use or receive"]],
    },
    Element {
        id: "DUA-04",
        citation: "45 CFR 164.514(e)(4)(ii)(C)(1)",
        summary: "No use or further disclosure other than as permitted by the agreement or required by law",
        applies: Dua,
        requirement: Required,
        concepts: &[&["not use or"], &["required by law"]],
    },
    Element {
        id: "DUA-05",
        citation: "45 CFR 164.514(e)(4)(ii)(C)(2)",
        summary: "Appropriate safeguards against use or disclosure other than as provided",
        applies: Dua,
        requirement: Required,
        concepts: &[&["safeguard"]],
    },
    Element {
        id: "DUA-06",
        citation: "45 CFR 164.514(e)(4)(ii)(C)(3)",
        summary: "Report any use or disclosure not provided for by the agreement",
        applies: Dua,
        requirement: Required,
        concepts: &[&["report"], &["not provided for", "not permitted"]],
    },
    Element {
        id: "DUA-07",
        citation: "45 CFR 164.514(e)(4)(ii)(C)(4)",
        summary: "Agents, including subcontractors, agree to the same restrictions and conditions",
        applies: Dua,
        requirement: Required,
        concepts: &[&["agent"], &["same restrictions"]],
    },
    Element {
        id: "DUA-08",
        citation: "45 CFR 164.514(e)(4)(ii)(C)(5)",
        summary: "No identification of the information and no contact with the individuals",
        applies: Dua,
        requirement: Required,
        concepts: &[&["identify"], &["contact"]],
    },
    Element {
        id: "DUA-09",
        citation: "45 CFR 164.514(e)(4)(iii)",
        summary: "On a pattern of violation the covered entity cures, or stops disclosing and reports to HHS (verify with counsel)",
        applies: Dua,
        requirement: Recommended,
        concepts: &[&["pattern"], &["cure"]],
    },
];

/// Looks an element up by ID.
pub fn element(id: &str) -> Option<&'static Element> {
    ELEMENTS.iter().find(|e| e.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_ids_are_unique_and_cited() {
        let mut ids: Vec<_> = ELEMENTS.iter().map(|e| e.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), ELEMENTS.len());
        assert!(ELEMENTS.iter().all(|e| e.citation.starts_with("45 CFR")));
    }

    #[test]
    fn books_and_records_is_item_i_not_h() {
        // A public checker mislabels (ii)(I) as (H); the facts sheet warns about it.
        assert_eq!(element("BAA-10").map(|e| e.citation), Some("45 CFR 164.504(e)(2)(ii)(I)"));
    }
}
