//! US states, the District of Columbia and the inhabited territories.

use serde::Serialize;

/// (code, name) for every jurisdiction an intake may name.
pub const JURISDICTIONS: &[(&str, &str)] = &[
    ("AL", "Alabama"),
    ("AK", "Alaska"),
    ("AZ", "Arizona"),
    ("AR", "Arkansas"),
    ("CA", "California"),
    ("CO", "Colorado"),
    ("CT", "Connecticut"),
    ("DE", "Delaware"),
    ("DC", "District of Columbia"),
    ("FL", "Florida"),
    ("GA", "Georgia"),
    ("HI", "Hawaii"),
    ("ID", "Idaho"),
    ("IL", "Illinois"),
    ("IN", "Indiana"),
    ("IA", "Iowa"),
    ("KS", "Kansas"),
    ("KY", "Kentucky"),
    ("LA", "Louisiana"),
    ("ME", "Maine"),
    ("MD", "Maryland"),
    ("MA", "Massachusetts"),
    ("MI", "Michigan"),
    ("MN", "Minnesota"),
    ("MS", "Mississippi"),
    ("MO", "Missouri"),
    ("MT", "Montana"),
    ("NE", "Nebraska"),
    ("NV", "Nevada"),
    ("NH", "New Hampshire"),
    ("NJ", "New Jersey"),
    ("NM", "New Mexico"),
    ("NY", "New York"),
    ("NC", "North Carolina"),
    ("ND", "North Dakota"),
    ("OH", "Ohio"),
    ("OK", "Oklahoma"),
    ("OR", "Oregon"),
    ("PA", "Pennsylvania"),
    ("RI", "Rhode Island"),
    ("SC", "South Carolina"),
    ("SD", "South Dakota"),
    ("TN", "Tennessee"),
    ("TX", "Texas"),
    ("UT", "Utah"),
    ("VT", "Vermont"),
    ("VA", "Virginia"),
    ("WA", "Washington"),
    ("WV", "West Virginia"),
    ("WI", "Wisconsin"),
    ("WY", "Wyoming"),
    ("AS", "American Samoa"),
    ("GU", "Guam"),
    ("MP", "Northern Mariana Islands"),
    ("PR", "Puerto Rico"),
    ("VI", "U.S. Virgin Islands"),
];

/// A two-letter code that names a real state, DC or territory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "&'static str")]
pub struct StateCode(u8);

impl StateCode {
    /// Accepts the code in any case (`tx`, `TX`).
    pub fn parse(s: &str) -> Result<StateCode, &'static str> {
        let up = s.trim().to_ascii_uppercase();
        JURISDICTIONS
            .iter()
            .position(|(c, _)| *c == up)
            .map(|i| StateCode(i as u8))
            .ok_or("not a US state or territory code")
    }

    pub fn code(self) -> &'static str {
        JURISDICTIONS[usize::from(self.0)].0
    }

    pub fn name(self) -> &'static str {
        JURISDICTIONS[usize::from(self.0)].1
    }
}

/// Where a state's adoption of the Uniform Electronic Transactions Act is cited by name (facts
/// sheet §7: Washington in 2020, Illinois in 2021; California and Texas by their codes).
const UETA_CITES: &[(&str, &str)] = &[
    ("CA", "Cal. Civ. Code § 1633.1 and following"),
    ("IL", "815 ILCS 333"),
    ("TX", "Tex. Bus. & Com. Code ch. 322"),
    ("WA", "ch. 1.80 RCW"),
];

impl StateCode {
    /// The state's electronic-signature law, as an agreement cites it. Every state but New York
    /// has adopted UETA; New York relies on its Electronic Signatures and Records Act. For DC
    /// and the territories the clause names their electronic-transactions law without a cite
    /// (verify with counsel).
    pub fn esign_law(self) -> String {
        let code = self.code();
        if code == "NY" {
            return "the New York Electronic Signatures and Records Act (N.Y. State Technology Law art. 3)".into();
        }
        let territory = JURISDICTIONS.iter().position(|(c, _)| *c == "AS").is_some_and(|i| usize::from(self.0) >= i);
        if territory || code == "DC" {
            return format!("the electronic-transactions law of {}", self.name());
        }
        match UETA_CITES.iter().find(|(c, _)| *c == code) {
            Some((_, cite)) => {
                format!("the Uniform Electronic Transactions Act as adopted in {} ({cite})", self.name())
            }
            None => format!("the Uniform Electronic Transactions Act as adopted in {}", self.name()),
        }
    }
}

/// The e-signature laws of the governing-law state and of each party's state where it differs,
/// in that order, duplicates folded: "the Uniform … Texas (…) and the Uniform … California (…)".
pub fn esign_laws(states: &[StateCode]) -> String {
    let mut seen: Vec<StateCode> = Vec::new();
    for s in states {
        if !seen.contains(s) {
            seen.push(*s);
        }
    }
    let laws: Vec<String> = seen.iter().map(|s| s.esign_law()).collect();
    match laws.as_slice() {
        [] => "the Uniform Electronic Transactions Act as adopted in the governing-law state".into(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{}, and {last}", rest.join(", ")),
    }
}

impl From<StateCode> for &'static str {
    fn from(s: StateCode) -> &'static str {
        s.code()
    }
}

impl std::fmt::Display for StateCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod esign_tests {
    use super::*;

    fn st(c: &str) -> StateCode {
        StateCode::parse(c).expect("state")
    }

    #[test]
    fn new_york_cites_its_own_act_and_every_other_state_ueta() {
        assert!(st("NY").esign_law().contains("State Technology Law art. 3"));
        assert!(!st("NY").esign_law().contains("Uniform"));
        assert!(st("WA").esign_law().contains("ch. 1.80 RCW"));
        assert!(st("IL").esign_law().contains("815 ILCS 333"));
        assert!(st("GA").esign_law().starts_with("the Uniform Electronic Transactions Act as adopted in Georgia"));
        assert!(st("PR").esign_law().contains("electronic-transactions law of Puerto Rico"));
        let both = esign_laws(&[st("TX"), st("TX"), st("CA")]);
        assert_eq!(both.matches("Uniform Electronic Transactions Act").count(), 2, "{both}");
        assert!(both.find("Texas") < both.find("California"));
    }
}
