//! State-law addenda: the facts behind each addendum, which addenda an intake gets, and the
//! effective breach-notice clock of the agreement body.
//!
//! The facts live in `addenda/states.toml` (schema in `addenda/README.md`), the texts in
//! `addenda/<CODE>.md.tera`; both are embedded at build time. The effective clock is the
//! minimum of the intake's `breach_notice_days`, 60 days (45 CFR 164.410(b)) and each selected
//! state's clock, so the agreement never promises less than the strictest applicable law, and
//! leaves the covered entity its own time (the owner margin, policy `breach_clock`):
//!
//! * a state's explicit vendor→owner deadline (FL 10 days, NY 30) binds the business associate
//!   as it stands;
//! * every deadline that binds the covered entity for this PHI and runs from discovery or
//!   determination (HIPAA's 60 days to individuals, 45 CFR 164.404(b); CA's 30 days; TX's 30 to
//!   the Attorney General; …) gives the business associate at most N − margin, in the deadline's
//!   own unit (`owner_margin_days`, `owner_margin_business_days`), never less than
//!   `minimum_clock_days`. A deadline that runs from another notice (CA's AG sample, NY's and
//!   IL's copy of the HHS notice) does not bind, nor does one the state deems met by a notice
//!   under HIPAA (`hipaa_deemed` in states.toml: NY's and WA's resident notices);
//! * in a subcontractor BAA the clock is at most the upstream business associate's own clock
//!   (the first-tier result, without this intake's number) less the margin;
//! * a state whose law says "immediately" makes the clause "immediately, and in no case later
//!   than N days";
//! * a state without an addendum still counts with its clock from the `other_state` table;
//! * where the covered entity is a California-licensed facility, its 15 business days
//!   (H&S 1280.15) less the business-day margin cap the clock: a calendar minimum `c` stands if
//!   `c ≤ b`, else the clock is `b` business days.

use std::collections::HashSet;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use super::findings::{Finding, Level};
use super::states::{JURISDICTIONS, StateCode};
use super::words::number_words;

/// The addendum texts, by state code. Every state in `states.toml` has exactly one.
pub const ADDENDUM_TEMPLATES: &[(&str, &str)] = &[
    ("CA", include_str!("../../addenda/CA.md.tera")),
    ("CO", include_str!("../../addenda/CO.md.tera")),
    ("FL", include_str!("../../addenda/FL.md.tera")),
    ("IL", include_str!("../../addenda/IL.md.tera")),
    ("MA", include_str!("../../addenda/MA.md.tera")),
    ("NY", include_str!("../../addenda/NY.md.tera")),
    ("TX", include_str!("../../addenda/TX.md.tera")),
    ("WA", include_str!("../../addenda/WA.md.tera")),
];

const STATES_TOML: &str = include_str!("../../addenda/states.toml");

/// The HIPAA ceiling on the business associate's notice (BRN-03).
pub const HIPAA_DAYS: u32 = 60;
/// The citation of the HIPAA ceiling.
pub const HIPAA_CITE: &str = "45 CFR 164.410(b)";
/// The `source` of the clock step that comes from the intake.
pub const INTAKE_SOURCE: &str = "intake /breach_notice_days";
/// The state whose `licensed_facility_cap` the intake flag `ca_licensed_facility` switches on.
pub const LICENSED_FACILITY_STATE: &str = "CA";

// ----------------------------------------------------------------------------------------------
// Data types (the schema of states.toml)
// ----------------------------------------------------------------------------------------------

/// How well a fact has been checked (facts sheet legend).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// ✅ checked against a verbatim copy of the statute or rule.
    Verified,
    /// ◐ secondary sources only.
    Secondary,
    /// ⚠ not checked against the source text; counsel must confirm.
    Unverified,
}

impl Status {
    pub fn symbol(&self) -> &'static str {
        match self {
            Status::Verified => "✅",
            Status::Secondary => "◐",
            Status::Unverified => "⚠",
        }
    }

    /// In words, for reports.
    pub fn describe(&self) -> &'static str {
        match self {
            Status::Verified => "checked against the source text",
            Status::Secondary => "secondary sources only",
            Status::Unverified => "not checked against the source text",
        }
    }

    /// True for ◐ and ⚠: the check report says "verify with counsel".
    pub fn needs_counsel(&self) -> bool {
        *self != Status::Verified
    }
}

/// Calendar or business days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DayUnit {
    #[default]
    Calendar,
    Business,
}

impl DayUnit {
    /// `calendar` / `business`, as in the template context `breach.unit`.
    pub fn as_str(&self) -> &'static str {
        match self {
            DayUnit::Calendar => "calendar",
            DayUnit::Business => "business",
        }
    }
}

/// One statute or rule an addendum rests on; the renderer prints these under the heading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Citation {
    pub cite: String,
    /// What it says, in one line.
    pub subject: String,
    pub status: Status,
}

/// What the state's law requires of a vendor (a party holding data it does not own) toward the
/// owner once it discovers a breach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorNotice {
    /// The rule in words.
    pub rule: String,
    /// The law says "immediately".
    pub immediately: bool,
    /// An explicit deadline in calendar days, if the law gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    pub cite: String,
    pub status: Status,
}

/// Who a breach-notice deadline runs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// The affected individuals (residents, patients).
    Individuals,
    /// An attorney general or other state agency.
    Regulator,
    ConsumerReportingAgencies,
}

/// How many affected residents trigger a notice, in the statute's own terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Threshold {
    /// "more than N"
    MoreThan(u32),
    /// "N or more"
    AtLeast(u32),
}

impl Threshold {
    /// The smallest number of affected residents that triggers the notice.
    pub fn min_affected(&self) -> u32 {
        match *self {
            Threshold::MoreThan(n) => n.saturating_add(1),
            Threshold::AtLeast(n) => n,
        }
    }

    fn words(&self) -> String {
        match *self {
            Threshold::MoreThan(n) => format!("more than {} are affected", group(n)),
            Threshold::AtLeast(n) => format!("{} or more are affected", group(n)),
        }
    }
}

/// A breach-notice deadline the state's law sets for the owner of the data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deadline {
    pub notify: Audience,
    /// The recipient in words.
    pub who: String,
    /// None: no fixed number of days ("without unreasonable delay").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    #[serde(default)]
    pub unit: DayUnit,
    /// The event the days run from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Threshold>,
    pub cite: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The days run from the owner's discovery or determination of the breach (not from another
    /// notice), so the deadline binds the covered entity and the agreement leaves it the margin.
    #[serde(default)]
    pub from_discovery: bool,
    /// The state deems a notice given under HIPAA sufficient for this deadline, for PHI: the
    /// citation of that rule. Such a deadline does not bind; HIPAA's own 60 days do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hipaa_deemed: Option<String>,
}

impl Deadline {
    /// True when this deadline binds the covered entity's clock for PHI (and so the business
    /// associate's, less the margin).
    pub fn binds_owner(&self) -> bool {
        self.days.is_some() && self.from_discovery && self.hipaa_deemed.is_none()
    }

    /// One line: "affected California residents within 30 calendar days after discovery …".
    pub fn describe(&self) -> String {
        let mut s = format!("notice to {}", self.who);
        match self.days {
            Some(d) => s.push_str(&format!(" within {d} {} {}", self.unit.as_str(), plural_days(d))),
            None => s.push_str(" (no fixed number of days)"),
        }
        if let (Some(after), Some(_)) = (&self.after, self.days) {
            s.push_str(&format!(" after {after}"));
        }
        if let Some(t) = &self.threshold {
            s.push_str(&format!(", when {}", t.words()));
        }
        if let Some(n) = &self.note {
            s.push_str(&format!(" ({n})"));
        }
        if let Some(d) = &self.hipaa_deemed {
            s.push_str(&format!("; a notice under HIPAA satisfies it for PHI ({d})"));
        }
        s
    }
}

/// A covered entity's own deadline in business days (California H&S 1280.15 for licensed
/// facilities). The vendor's cap is `facility_days` less the policy's business-day margin
/// (`owner_margin_business_days`, 10 by default: 15 − 10 = 5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessDayCap {
    pub rule: String,
    /// The covered entity's own deadline, in business days.
    pub facility_days: u32,
    pub cite: String,
    pub status: Status,
}

/// One state's addendum facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateLaw {
    pub code: String,
    pub name: String,
    /// The date the facts were last checked, `YYYY-MM-DD`.
    pub as_of: String,
    /// When the addendum applies, in one or two sentences.
    pub applies: String,
    /// When it does not, so it claims no more than its law.
    pub does_not_apply: String,
    pub citations: Vec<Citation>,
    pub vendor_notice: VendorNotice,
    #[serde(default)]
    pub deadlines: Vec<Deadline>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licensed_facility_cap: Option<BusinessDayCap>,
}

impl StateLaw {
    /// The addendum text (tera 2 + CommonMark).
    pub fn template(&self) -> Option<&'static str> {
        ADDENDUM_TEMPLATES.iter().find(|(c, _)| *c == self.code).map(|(_, t)| *t)
    }

    /// The deadlines that bind the covered entity for PHI (see [`Deadline::binds_owner`]).
    pub fn owner_deadlines(&self) -> impl Iterator<Item = &Deadline> {
        self.deadlines.iter().filter(|d| d.binds_owner())
    }

    /// Every fact with its citation and status, in file order.
    fn facts(&self) -> Vec<Fact<'_>> {
        let mut v: Vec<Fact<'_>> = self
            .citations
            .iter()
            .map(|c| Fact { cite: &c.cite, status: c.status, text: c.subject.clone(), listed: true })
            .collect();
        let vn = &self.vendor_notice;
        v.push(Fact { cite: &vn.cite, status: vn.status, text: vn.rule.clone(), listed: false });
        v.extend(self.deadlines.iter().map(|d| Fact {
            cite: &d.cite,
            status: d.status,
            text: d.describe(),
            listed: false,
        }));
        if let Some(cap) = &self.licensed_facility_cap {
            v.push(Fact { cite: &cap.cite, status: cap.status, text: cap.rule.clone(), listed: false });
        }
        v
    }
}

/// One checkable statement of a state's entry.
struct Fact<'a> {
    cite: &'a str,
    status: Status,
    text: String,
    /// A row of `citations` (its text summarizes the other facts with the same cite).
    listed: bool,
}

/// A state or territory without an addendum whose breach-notice clock is shorter than 60 days.
/// Its deadline binds the owner from discovery, so it enters the clock less the owner margin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtherStateClock {
    pub code: String,
    pub days: u32,
    #[serde(default)]
    pub unit: DayUnit,
    pub cite: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    #[serde(rename = "state")]
    states: Vec<StateLaw>,
    #[serde(rename = "other_state", default)]
    other_states: Vec<OtherStateClock>,
}

/// Why a state-law catalog is refused; the text names the state (or section) and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// Not TOML of the catalog's shape (toml's own text).
    #[error("{0}")]
    Toml(String),
    #[error("{section} {code:?}: not a US state or territory code")]
    NotAJurisdiction { section: &'static str, code: String },
    #[error("state {code}: name {name:?} should be {expected:?}")]
    WrongName { code: String, name: String, expected: &'static str },
    #[error("state {0}: listed twice")]
    Twice(String),
    #[error("other_state {0}: listed twice, or also has an addendum")]
    OtherTwice(String),
    #[error("state {code}: as_of {as_of:?} is not a YYYY-MM-DD date")]
    AsOf { code: String, as_of: String },
    #[error("state {0}: no citations")]
    NoCitations(String),
    #[error("state {0}: a citation has an empty cite or subject")]
    EmptyCitation(String),
    /// A day count outside 1–60; `what` names where it is.
    #[error("{what}: {days} days is not 1–60")]
    Days { what: String, days: u32 },
    #[error("state {code} deadline {who:?}: from_discovery needs days")]
    FromDiscoveryWithoutDays { code: String, who: String },
    #[error("state {code}: {cite:?} is used by a fact but not listed in citations")]
    Unlisted { code: String, cite: String },
    #[error("other_state {0}: only calendar days are supported")]
    NotCalendarDays(String),
    #[error("state {0}: no addenda/{0}.md.tera in ADDENDUM_TEMPLATES")]
    NoTemplate(String),
    #[error("addenda/{0}.md.tera has no [[state]] entry")]
    NoState(String),
}

static EMBEDDED: LazyLock<Catalog> = LazyLock::new(|| {
    // The shipped file is checked by `tests::embedded_catalog_is_valid`; a failure here is a
    // build defect, not an input error.
    match Catalog::from_toml(STATES_TOML).and_then(|c| c.check_templates().map(|()| c)) {
        Ok(c) => c,
        Err(e) => panic!("addenda/states.toml: {e}"),
    }
});

impl Catalog {
    /// The catalog shipped in `addenda/`, parsed once. Panics only if the shipped file is
    /// invalid, which a unit test guards against.
    pub fn embedded() -> &'static Catalog {
        &EMBEDDED
    }

    /// Parses and checks a catalog: real and unique codes, names matching the code, `as_of`
    /// dates, day counts within 1–60, the cap arithmetic, and every fact's citation listed.
    pub fn from_toml(text: &str) -> Result<Catalog, CatalogError> {
        let mut c: Catalog = toml::from_str(text).map_err(|e| CatalogError::Toml(e.to_string()))?;
        c.validate()?;
        c.states.sort_by(|a, b| a.code.cmp(&b.code));
        c.other_states.sort_by(|a, b| a.code.cmp(&b.code));
        Ok(c)
    }

    /// The addendum for a state code (any case), if Countersign has one.
    pub fn addendum(&self, code: &str) -> Option<&StateLaw> {
        self.states.iter().find(|s| s.code.eq_ignore_ascii_case(code))
    }

    /// The states with addenda, sorted by code.
    pub fn supported(&self) -> impl Iterator<Item = &StateLaw> {
        self.states.iter()
    }

    /// The clock of a state without an addendum, if the facts sheet gives one.
    pub fn other_state(&self, code: &str) -> Option<&OtherStateClock> {
        self.other_states.iter().find(|s| s.code.eq_ignore_ascii_case(code))
    }

    /// The states without addenda that have a clock, sorted by code.
    pub fn other_states(&self) -> impl Iterator<Item = &OtherStateClock> {
        self.other_states.iter()
    }

    fn validate(&self) -> Result<(), CatalogError> {
        use CatalogError as E;
        let mut seen = HashSet::new();
        let name_of = |code: &str| JURISDICTIONS.iter().find(|(c, _)| *c == code).map(|(_, n)| *n);
        let days_ok = |what: &str, days: u32| {
            if (1..=HIPAA_DAYS).contains(&days) { Ok(()) } else { Err(E::Days { what: what.to_string(), days }) }
        };
        for s in &self.states {
            let c = &s.code;
            match name_of(c) {
                None => return Err(E::NotAJurisdiction { section: "state", code: c.clone() }),
                Some(n) if n != s.name => {
                    return Err(E::WrongName { code: c.clone(), name: s.name.clone(), expected: n });
                }
                Some(_) => {}
            }
            if !seen.insert(c.as_str()) {
                return Err(E::Twice(c.clone()));
            }
            if super::time::Date::parse_any_year(&s.as_of).is_err() {
                return Err(E::AsOf { code: c.clone(), as_of: s.as_of.clone() });
            }
            if s.citations.is_empty() {
                return Err(E::NoCitations(c.clone()));
            }
            if s.citations.iter().any(|x| x.cite.trim().is_empty() || x.subject.trim().is_empty()) {
                return Err(E::EmptyCitation(c.clone()));
            }
            if let Some(d) = s.vendor_notice.days {
                days_ok(&format!("state {c} vendor_notice"), d)?;
            }
            for d in &s.deadlines {
                if let Some(n) = d.days {
                    days_ok(&format!("state {c} deadline {:?}", d.who), n)?;
                }
            }
            if let Some(cap) = &s.licensed_facility_cap {
                days_ok(&format!("state {c} licensed_facility_cap facility_days"), cap.facility_days)?;
            }
            for d in &s.deadlines {
                if d.from_discovery && d.days.is_none() {
                    return Err(E::FromDiscoveryWithoutDays { code: c.clone(), who: d.who.clone() });
                }
            }
            for Fact { cite, .. } in s.facts() {
                let listed = s
                    .citations
                    .iter()
                    .any(|x| cite == x.cite || cite.strip_prefix(x.cite.as_str()).is_some_and(|r| r.starts_with('(')));
                if !listed {
                    return Err(E::Unlisted { code: c.clone(), cite: cite.to_string() });
                }
            }
        }
        for o in &self.other_states {
            let c = &o.code;
            if name_of(c).is_none() {
                return Err(E::NotAJurisdiction { section: "other_state", code: c.clone() });
            }
            if !seen.insert(c.as_str()) {
                return Err(E::OtherTwice(c.clone()));
            }
            if o.unit != DayUnit::Calendar {
                return Err(E::NotCalendarDays(c.clone()));
            }
            days_ok(&format!("other_state {c}"), o.days)?;
        }
        Ok(())
    }

    /// Every state has an embedded template, and every template a state.
    fn check_templates(&self) -> Result<(), CatalogError> {
        for s in &self.states {
            if s.template().is_none() {
                return Err(CatalogError::NoTemplate(s.code.clone()));
            }
        }
        for (code, _) in ADDENDUM_TEMPLATES {
            if self.addendum(code).is_none() {
                return Err(CatalogError::NoState(code.to_string()));
            }
        }
        Ok(())
    }
}

// ----------------------------------------------------------------------------------------------
// The effective breach clock
// ----------------------------------------------------------------------------------------------

/// The owner margin: how much of each owner deadline the agreement leaves the covered entity
/// (or, in a subcontractor BAA, the upstream business associate). From the policy's
/// `breach_clock` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Margins {
    /// Calendar days kept back from a calendar-day deadline (`owner_margin_days`).
    pub calendar_days: u32,
    /// Business days kept back from a business-day deadline (`owner_margin_business_days`).
    pub business_days: u32,
    /// The floor: a deadline no longer than the margin still gives this many days
    /// (`minimum_clock_days`), never zero.
    pub minimum_days: u32,
}

impl Default for Margins {
    fn default() -> Self {
        Margins { calendar_days: 15, business_days: 10, minimum_days: 5 }
    }
}

impl Margins {
    /// The margin in a unit.
    pub fn of(&self, unit: DayUnit) -> u32 {
        match unit {
            DayUnit::Calendar => self.calendar_days,
            DayUnit::Business => self.business_days,
        }
    }

    /// N − margin, floored at `minimum_days` (or N itself if shorter), never zero; and whether
    /// the floor applied.
    pub fn apply(&self, n: u32, unit: DayUnit) -> (u32, bool) {
        let less = n.saturating_sub(self.of(unit));
        let floor = self.minimum_days.min(n).max(1);
        if less >= floor { (less, false) } else { (floor, true) }
    }
}

/// The HIPAA owner deadline: notice to individuals within 60 days of discovery.
pub const HIPAA_OWNER_CITE: &str = "45 CFR 164.404(b)";
/// The source of the subcontractor step.
pub const UPSTREAM_SOURCE: &str = "the upstream business associate’s clock";

/// The breach-notice deadline of the agreement body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreachClock {
    pub days: u32,
    pub unit: DayUnit,
    pub immediately: bool,
    /// The margins that applied.
    pub margins: Margins,
    /// Every rule considered, in order: HIPAA, the intake, then the states in intake order.
    pub steps: Vec<ClockStep>,
}

/// One rule that entered the clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClockStep {
    /// The law or intake field, e.g. `45 CFR 164.410(b)`, `intake /breach_notice_days`,
    /// `Fla. Stat. § 501.171(6)(a)`.
    pub source: String,
    /// None for a step that only adds "immediately". After the margin, where one applies.
    pub days: Option<u32>,
    pub unit: DayUnit,
    pub immediately: bool,
    /// The owner's own deadline before the margin, for a step that leaves the owner its time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_days: Option<u32>,
    /// The margin kept back (0 without one).
    pub margin: u32,
    /// The floor (`minimum_clock_days`) applied because the deadline is no longer than the margin.
    pub floored: bool,
    /// This step set the final number or the "immediately".
    pub decisive: bool,
}

impl ClockStep {
    fn days(source: impl Into<String>, days: u32, unit: DayUnit) -> ClockStep {
        ClockStep {
            source: source.into(),
            days: Some(days),
            unit,
            immediately: false,
            owner_days: None,
            margin: 0,
            floored: false,
            decisive: false,
        }
    }

    /// An owner deadline of `n` days: the business associate gets `n` less the margin.
    fn owner(source: impl Into<String>, n: u32, unit: DayUnit, m: &Margins) -> ClockStep {
        let (days, floored) = m.apply(n, unit);
        ClockStep { owner_days: Some(n), margin: m.of(unit), floored, ..ClockStep::days(source, days, unit) }
    }

    fn immediately(source: impl Into<String>) -> ClockStep {
        ClockStep { days: None, immediately: true, ..ClockStep::days(source, 0, DayUnit::Calendar) }
    }

    fn is_intake(&self) -> bool {
        self.source == INTAKE_SOURCE
    }

    /// `the intake (breach_notice_days = 10)`, the citation, or
    /// `Cal. Civ. Code § 1798.82 (30) less the 15-day owner margin`.
    fn name(&self) -> String {
        match (self.days, self.owner_days) {
            (Some(d), _) if self.is_intake() => format!("the intake (breach_notice_days = {d})"),
            (Some(d), Some(n)) => {
                let unit = if self.unit == DayUnit::Business { "-business-day" } else { "-day" };
                let mut s = format!("{} ({n}) less the {}{unit} owner margin", self.source, self.margin);
                if self.floored {
                    s.push_str(&format!(", floored at {d}"));
                }
                s
            }
            _ => self.source.clone(),
        }
    }
}

impl BreachClock {
    /// Combines the steps: the calendar minimum `c`; a business-day cap `b` wins only if `c > b`.
    fn from_steps(mut steps: Vec<ClockStep>, margins: Margins) -> BreachClock {
        let min_of =
            |steps: &[ClockStep], unit: DayUnit| steps.iter().filter(|s| s.unit == unit).filter_map(|s| s.days).min();
        let calendar = min_of(&steps, DayUnit::Calendar).unwrap_or(HIPAA_DAYS);
        let (days, unit) = match min_of(&steps, DayUnit::Business) {
            Some(b) if calendar > b => (b, DayUnit::Business),
            _ => (calendar, DayUnit::Calendar),
        };
        let immediately = steps.iter().any(|s| s.immediately);
        for s in &mut steps {
            s.decisive = s.immediately || (s.days == Some(days) && s.unit == unit);
        }
        BreachClock { days, unit, immediately, margins, steps }
    }

    /// The laws that set the number, as named in the explanation.
    pub fn bound_by(&self) -> Vec<String> {
        dedup(self.steps.iter().filter(|s| s.days == Some(self.days) && s.unit == self.unit).map(ClockStep::name))
    }

    /// The clause wording, e.g. "immediately, and in no case later than ten (10) calendar days
    /// after discovery".
    pub fn text(&self) -> String {
        let lead = if self.immediately { "immediately" } else { "without unreasonable delay" };
        format!(
            "{lead}, and in no case later than {} ({}) {} {} after discovery",
            number_words(self.days),
            self.days,
            self.unit.as_str(),
            plural_days(self.days)
        )
    }

    /// One line: how the number was reached, naming the law and the margin that set it.
    pub fn explain(&self) -> String {
        let sets_number = |s: &ClockStep| s.days == Some(self.days) && s.unit == self.unit;
        let setters = self.bound_by();
        let others: Vec<String> = dedup(self.steps.iter().filter(|s| !sets_number(s)).filter_map(|s| {
            let d = s.days?;
            Some(match s.unit {
                _ if s.is_intake() => s.name(),
                _ if s.owner_days.is_some() => format!("{}: {d}", s.name()),
                DayUnit::Calendar => format!("{} ({d})", s.name()),
                DayUnit::Business => format!("{} ({d} business days)", s.name()),
            })
        }));
        let mut line =
            format!("{} {} {} set by {}", self.days, self.unit.as_str(), plural_days(self.days), join(&setters, "and"));
        if self.unit == DayUnit::Business && self.steps.iter().any(|s| sets_number(s) && s.source.contains("1280.15")) {
            line.push_str(
                " (the cap for a California-licensed facility, which keeps the rest of its own reporting time)",
            );
        }
        if !others.is_empty() {
            line.push_str(&format!(", below {}", join(&others, "and")));
        }
        let imm: Vec<&str> = self.steps.iter().filter(|s| s.immediately).map(|s| s.source.as_str()).collect();
        if !imm.is_empty() {
            line.push_str(&format!("; “immediately” required by {}", imm.join(", ")));
        }
        line
    }
}

// ----------------------------------------------------------------------------------------------
// Selection
// ----------------------------------------------------------------------------------------------

/// What an intake's states select.
#[derive(Debug, Clone)]
pub struct Selection<'a> {
    /// In the intake's order, duplicates folded.
    pub addenda: Vec<&'a StateLaw>,
    pub clock: BreachClock,
    pub findings: Vec<Finding>,
}

/// The facts of the clock besides the states: the intake's number, the covered entity's
/// licensing, the relationship and the policy's margins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockInput {
    pub intake_days: u32,
    pub ca_licensed_facility: bool,
    /// A subcontractor BAA: the clock leaves the upstream business associate its margin.
    pub subcontract: bool,
    pub margins: Margins,
}

/// Picks the addenda for the intake's states, computes the effective breach clock and reports
/// states without addenda, facts to verify with counsel, and how the clock was reached.
pub fn select<'a>(catalog: &'a Catalog, states: &[StateCode], input: ClockInput) -> Selection<'a> {
    let m = &input.margins;
    // The first tier: what binds a business associate of the covered entity. HIPAA's outer
    // limit for the business associate, and the covered entity's own 60 days less the margin.
    let mut tier = vec![
        ClockStep::days(HIPAA_CITE, HIPAA_DAYS, DayUnit::Calendar),
        ClockStep::owner(HIPAA_OWNER_CITE, HIPAA_DAYS, DayUnit::Calendar, m),
    ];
    let mut addenda = Vec::new();
    let mut findings = Vec::new();
    let mut seen = HashSet::new();

    for (i, code) in states.iter().enumerate() {
        if !seen.insert(*code) {
            continue;
        }
        match catalog.addendum(code.code()) {
            Some(law) => {
                addenda.push(law);
                let vn = &law.vendor_notice;
                match vn.days {
                    Some(d) => {
                        let mut step = ClockStep::days(&vn.cite, d, DayUnit::Calendar);
                        step.immediately = vn.immediately;
                        tier.push(step);
                    }
                    None if vn.immediately => tier.push(ClockStep::immediately(&vn.cite)),
                    None => {}
                }
                for d in law.owner_deadlines() {
                    if let Some(n) = d.days {
                        tier.push(ClockStep::owner(&d.cite, n, d.unit, m));
                    }
                }
                if input.ca_licensed_facility
                    && law.code == LICENSED_FACILITY_STATE
                    && let Some(cap) = &law.licensed_facility_cap
                {
                    tier.push(ClockStep::owner(&cap.cite, cap.facility_days, DayUnit::Business, m));
                }
                findings.extend(counsel_findings(law));
            }
            None => {
                let other = catalog.other_state(code.code());
                if let Some(o) = other {
                    tier.push(ClockStep::owner(&o.cite, o.days, o.unit, m));
                }
                findings.push(no_addendum(i, *code, other));
            }
        }
    }

    // The 1280.15 cap follows the covered entity, even if the intake did not list California.
    if input.ca_licensed_facility
        && !addenda.iter().any(|a| a.code == LICENSED_FACILITY_STATE)
        && let Some(law) = catalog.addendum(LICENSED_FACILITY_STATE)
        && let Some(cap) = &law.licensed_facility_cap
    {
        let step = ClockStep::owner(&cap.cite, cap.facility_days, DayUnit::Business, m);
        let message = format!(
            "the covered entity is marked as a {}-licensed facility, so the {} cap of {} business days applies, \
             but {} is not among the states and its addendum is not attached; verify with counsel ({} {})",
            law.name,
            cap.cite,
            step.days.unwrap_or(cap.facility_days),
            law.code,
            cap.status.symbol(),
            cap.status.describe()
        );
        tier.push(step);
        findings.push(
            Finding::new(Level::Advisory, "licensed_facility_without_state", message)
                .with_pointer("/states")
                .with_element(law.code.clone())
                .with_citation(cap.cite.clone()),
        );
    }

    let intake = ClockStep::days(INTAKE_SOURCE, input.intake_days, DayUnit::Calendar);
    let steps = if input.subcontract {
        // The upstream business associate's own clock is the first-tier result for the same
        // states (its agreement with the covered entity); the subcontractor gets that less the
        // margin. "Immediately" carries down.
        let upstream = BreachClock::from_steps(tier.clone(), *m);
        let mut steps = vec![ClockStep::days(HIPAA_CITE, HIPAA_DAYS, DayUnit::Calendar), intake];
        steps.push(ClockStep::owner(UPSTREAM_SOURCE, upstream.days, upstream.unit, m));
        steps.extend(tier.iter().filter(|s| s.immediately).map(|s| ClockStep::immediately(&s.source)));
        steps
    } else {
        tier.insert(1, intake);
        tier
    };
    let clock = BreachClock::from_steps(steps, *m);
    findings.push(Finding::new(Level::Advisory, "breach_clock", clock.explain()));
    Selection { addenda, clock, findings }
}

fn no_addendum(index: usize, code: StateCode, other: Option<&OtherStateClock>) -> Finding {
    let message = match other {
        Some(o) => format!(
            "{} ({}) has no addendum; its {}-day breach-notice clock ({}) still counts toward the agreement's deadline{}; {} {}: verify with counsel",
            code.name(),
            code.code(),
            o.days,
            o.cite,
            o.note.as_ref().map(|n| format!(" ({n})")).unwrap_or_default(),
            o.status.symbol(),
            o.status.describe()
        ),
        None => format!(
            "{} ({}) has no addendum and no breach-notice clock shorter than 60 days is recorded for it; verify with counsel whether its law requires more",
            code.name(),
            code.code()
        ),
    };
    let f = Finding::new(Level::Advisory, "no_addendum", message)
        .with_pointer(format!("/states/{index}"))
        .with_element(code.code());
    match other {
        Some(o) => f.with_citation(o.cite.clone()),
        None => f,
    }
}

/// One `verify_with_counsel` finding per cite of the state that carries a ◐ or ⚠ fact. Where the
/// cite is a row of `citations`, its subject speaks for the group; otherwise the facts are listed.
fn counsel_findings(law: &StateLaw) -> Vec<Finding> {
    struct Group<'a> {
        cite: &'a str,
        status: Status,
        subject: Option<String>,
        facts: Vec<String>,
    }
    let mut groups: Vec<Group<'_>> = Vec::new();
    for fact in law.facts() {
        let i = match groups.iter().position(|g| g.cite == fact.cite) {
            Some(i) => i,
            None => {
                groups.push(Group { cite: fact.cite, status: Status::Verified, subject: None, facts: vec![] });
                groups.len() - 1
            }
        };
        let g = &mut groups[i];
        if !fact.status.needs_counsel() {
            continue;
        }
        g.status = g.status.max(fact.status);
        let text = fact.text.trim_end_matches('.').to_string();
        if fact.listed {
            g.subject = Some(text);
        } else if !g.facts.contains(&text) {
            g.facts.push(text);
        }
    }
    groups
        .into_iter()
        .filter(|g| g.status.needs_counsel())
        .map(|g| {
            let what = g.subject.unwrap_or_else(|| g.facts.join("; "));
            Finding::new(
                Level::Advisory,
                "verify_with_counsel",
                format!(
                    "verify with counsel: {what} ({} {}, as of {})",
                    g.status.symbol(),
                    g.status.describe(),
                    law.as_of
                ),
            )
            .with_element(law.code.clone())
            .with_citation(g.cite)
        })
        .collect()
}

// ----------------------------------------------------------------------------------------------
// Words
// ----------------------------------------------------------------------------------------------

fn plural_days(n: u32) -> &'static str {
    if n == 1 { "day" } else { "days" }
}

/// `10,000`
fn group(n: u32) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// In first-seen order, without repeats (two deadlines of one statute read as one).
fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// "a", "a and b", "a, b and c"
fn join(items: &[String], conj: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} {conj} {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(list: &[&str]) -> Vec<StateCode> {
        list.iter().map(|c| StateCode::parse(c).unwrap()).collect()
    }

    fn run(list: &[&str], days: u32, facility: bool) -> Selection<'static> {
        let input = ClockInput {
            intake_days: days,
            ca_licensed_facility: facility,
            subcontract: false,
            margins: Margins::default(),
        };
        select(Catalog::embedded(), &codes(list), input)
    }

    fn run_sub(list: &[&str], days: u32) -> Selection<'static> {
        let input = ClockInput {
            intake_days: days,
            ca_licensed_facility: false,
            subcontract: true,
            margins: Margins::default(),
        };
        select(Catalog::embedded(), &codes(list), input)
    }

    fn decisive(sel: &Selection) -> Vec<String> {
        sel.clock.steps.iter().filter(|s| s.decisive).map(|s| s.source.clone()).collect()
    }

    fn with_code<'a>(sel: &'a Selection, code: &str) -> Vec<&'a Finding> {
        sel.findings.iter().filter(|f| f.code == code).collect()
    }

    // --- the data file -------------------------------------------------------------------------

    #[test]
    fn embedded_catalog_is_valid() {
        let c = Catalog::from_toml(STATES_TOML).unwrap();
        c.check_templates().unwrap();
        let _ = Catalog::embedded();
    }

    #[test]
    fn supported_states_are_the_eight_sorted() {
        let codes: Vec<&str> = Catalog::embedded().supported().map(|s| s.code.as_str()).collect();
        assert_eq!(codes, ["CA", "CO", "FL", "IL", "MA", "NY", "TX", "WA"]);
        assert!(Catalog::embedded().addendum("tx").is_some());
        assert!(Catalog::embedded().addendum("GA").is_none());
    }

    #[test]
    fn every_state_has_as_of_and_status_on_every_fact() {
        for s in Catalog::embedded().supported() {
            assert_eq!(s.as_of, "2026-06-30", "{}", s.code);
            assert!(!s.applies.is_empty() && !s.does_not_apply.is_empty(), "{}", s.code);
            assert!(!s.facts().is_empty());
        }
    }

    #[test]
    fn state_clocks_follow_the_design() {
        let c = Catalog::embedded();
        // The owner deadlines that bind the covered entity for PHI: from discovery, not deemed
        // met by a HIPAA notice.
        let binding = |code: &str| -> Vec<(u32, String)> {
            c.addendum(code).unwrap().owner_deadlines().map(|d| (d.days.unwrap(), d.who.clone())).collect()
        };
        assert_eq!(binding("CA"), [(30, "affected California residents".to_string())]);
        assert_eq!(binding("TX").iter().map(|(d, _)| *d).collect::<Vec<_>>(), [60, 30]);
        assert_eq!(binding("NY"), [], "NY: a HIPAA notice satisfies the resident notice; the AG copy runs from HHS");
        assert_eq!(binding("WA"), [(30, "Attorney General".to_string())], "WA: the AG notice remains");
        assert_eq!(binding("FL"), [(30, "Department of Legal Affairs".to_string())]);
        assert_eq!(binding("CO").len(), 2, "CO: the shortest timeframe controls, no deemed compliance");
        assert!(binding("IL").is_empty() && binding("MA").is_empty());
        assert_eq!(c.addendum("FL").unwrap().vendor_notice.days, Some(10));
        assert_eq!(c.addendum("NY").unwrap().vendor_notice.days, Some(30));
        let immediate: Vec<&str> =
            c.supported().filter(|s| s.vendor_notice.immediately).map(|s| s.code.as_str()).collect();
        assert_eq!(immediate, ["CA", "IL", "NY", "TX", "WA"]);
        let cap = c.addendum("CA").unwrap().licensed_facility_cap.as_ref().unwrap();
        assert_eq!(cap.facility_days, 15);
        assert_eq!(c.other_state("ME").map(|o| o.days), Some(30));
        assert_eq!(c.other_state("VT").map(|o| o.days), Some(45));
        assert_eq!(c.other_state("PR").map(|o| (o.days, o.status)), Some((10, Status::Verified)));
        assert_eq!(c.other_states().count(), 13);
    }

    #[test]
    fn statuses_follow_the_facts_sheet() {
        let c = Catalog::embedded();
        let status = |code: &str, cite: &str| {
            c.addendum(code).unwrap().citations.iter().find(|x| x.cite == cite).map(|x| x.status)
        };
        assert_eq!(status("CA", "Cal. Civ. Code § 56.36"), Some(Status::Verified));
        assert_eq!(status("CA", "Cal. Civ. Code § 56.101(c)"), Some(Status::Secondary));
        assert_eq!(status("TX", "Tex. Health & Safety Code § 181.101"), Some(Status::Verified));
        assert_eq!(status("TX", "Tex. Health & Safety Code § 181.153"), Some(Status::Unverified));
        assert_eq!(status("NY", "N.Y. Gen. Bus. Law § 899-aa(9)"), Some(Status::Verified));
        assert_eq!(status("MA", "201 CMR 17.04"), Some(Status::Verified));
        assert_eq!(status("WA", "RCW 19.373.060"), Some(Status::Verified));
        assert_eq!(status("IL", "740 ILCS 14/10"), Some(Status::Verified));
        assert_eq!(c.addendum("TX").unwrap().vendor_notice.status, Status::Unverified);
        assert_eq!(c.other_state("OH").unwrap().status, Status::Unverified);
        assert_eq!(c.other_state("AZ").unwrap().status, Status::Secondary);
    }

    #[test]
    fn status_symbols_and_serialization() {
        assert_eq!(Status::Verified.symbol(), "✅");
        assert_eq!(Status::Secondary.symbol(), "◐");
        assert_eq!(Status::Unverified.symbol(), "⚠");
        assert_eq!(serde_json::to_string(&Status::Unverified).unwrap(), "\"unverified\"");
        let ca = serde_json::to_value(Catalog::embedded().addendum("CA").unwrap()).unwrap();
        assert_eq!(ca["licensed_facility_cap"]["facility_days"], 15);
        assert_eq!(ca["deadlines"][1]["threshold"]["more_than"], 500);
        assert_eq!(ca["citations"][0]["status"], "verified");
    }

    #[test]
    fn invalid_files_are_rejected() {
        let ok = STATES_TOML;
        let bad = |from: &str, to: &str| {
            assert!(ok.contains(from), "{from}");
            Catalog::from_toml(&ok.replacen(from, to, 1)).unwrap_err().to_string()
        };
        assert!(bad("as_of = \"2026-06-30\"", "as_of = \"2026-06-30\"\ncolour = \"red\"").contains("colour"));
        assert!(bad("status = \"secondary\"", "status = \"likely\"").contains("likely"));
        assert!(bad("facility_days = 15", "facility_days = 0").contains("facility_days"));
        assert!(
            bad("(SB 446)\"\nfrom_discovery = true", "(SB 446)\"\nfrom_discovery = \"yes\"").contains("from_discovery")
        );
        assert!(bad("code = \"CA\"", "code = \"ZZ\"").contains("ZZ"));
        assert!(bad("name = \"Texas\"", "name = \"Texas Republic\"").contains("Texas"));
        assert!(bad("code = \"ME\"", "code = \"CA\"").contains("twice"));
        assert!(bad("days = 10\ncite = \"Fla.", "days = 90\ncite = \"Fla.").contains("1–60"));
        assert!(bad("as_of = \"2026-06-30\"", "as_of = \"mid-2026\"").contains("as_of"));
        assert!(bad("cite = \"Fla. Stat. § 501.171(6)(a)\"", "cite = \"Fla. Stat. § 502\"").contains("not listed"));
    }

    // --- the texts -----------------------------------------------------------------------------

    #[test]
    fn each_template_cites_its_statutes_and_flags_unchecked_facts() {
        for s in Catalog::embedded().supported() {
            let t = s.template().unwrap();
            for c in &s.citations {
                assert!(t.contains(&c.cite), "{}: text does not cite {}", s.code, c.cite);
            }
            let numbers = s.vendor_notice.days.into_iter().chain(s.deadlines.iter().filter_map(|d| d.days));
            for n in numbers {
                assert!(t.contains(&format!("({n})")), "{}: text lacks ({n})", s.code);
            }
            if s.facts().iter().any(|f| f.status.needs_counsel()) {
                assert!(t.contains("(to be verified by counsel)"), "{}", s.code);
            }
        }
    }

    #[test]
    fn templates_use_the_markup_and_printable_characters() {
        for (code, t) in ADDENDUM_TEMPLATES {
            assert!(t.lines().any(|l| l.starts_with("### ")), "{code}: no clause headings");
            for l in t.lines() {
                assert!(!l.starts_with("# ") && !l.starts_with("## "), "{code}: only ### headings: {l}");
                assert!(!l.starts_with("### ") || !l.contains("{."), "{code}: no element classes: {l}");
            }
            for ch in t.chars() {
                let ok = ch == '\n'
                    || (' '..='~').contains(&ch)
                    || ('\u{a0}'..='\u{17f}').contains(&ch)
                    || ('\u{2000}'..='\u{206f}').contains(&ch);
                assert!(ok, "{code}: character {ch:?} is outside the font");
            }
            assert!(t.contains("{{ up.label }}") && t.contains("{{ down.label }}"), "{code}");
            // The number lives in one place, the body's reporting clause; addenda refer to it.
            assert!(t.contains("{{ reporting_clause }}"), "{code}: refers to the reporting clause for the clock");
            assert!(!t.contains("{{ breach.text }}"), "{code}: must not restate the clock");
            assert!(t.contains("does not apply") || t.contains("do not apply"), "{code}: says when it does not apply");
        }
    }

    #[test]
    fn templates_are_three_to_six_hundred_words() {
        for (code, t) in ADDENDUM_TEMPLATES {
            let mut text = String::new();
            let mut rest = *t;
            while let Some(i) = rest.find("{%") {
                text.push_str(&rest[..i]);
                rest = rest[i..].find("%}").map_or("", |j| &rest[i + j + 2..]);
            }
            text.push_str(rest);
            let words = text.split_whitespace().filter(|w| w.chars().any(char::is_alphanumeric)).count();
            assert!((280..=720).contains(&words), "{code}: {words} words");
        }
    }

    // --- the clock -----------------------------------------------------------------------------

    #[test]
    fn no_states_keeps_the_intake_clock() {
        let sel = run(&[], 30, false);
        assert_eq!((sel.clock.days, sel.clock.unit, sel.clock.immediately), (30, DayUnit::Calendar, false));
        assert_eq!(
            sel.clock.text(),
            "without unreasonable delay, and in no case later than thirty (30) calendar days after discovery"
        );
        assert_eq!(decisive(&sel), [INTAKE_SOURCE]);
        assert_eq!(
            sel.clock.explain(),
            "30 calendar days set by the intake (breach_notice_days = 30), below 45 CFR 164.410(b) (60) and \
             45 CFR 164.404(b) (60) less the 15-day owner margin: 45"
        );
        assert!(sel.addenda.is_empty());
        assert_eq!(sel.findings.len(), 1);
        assert_eq!(sel.findings[0].code, "breach_clock");
    }

    #[test]
    fn hipaa_sixty_days_to_individuals_leave_the_business_associate_forty_five() {
        let sel = run(&[], 60, false);
        assert_eq!(sel.clock.days, 45);
        assert_eq!(
            sel.clock.explain(),
            "45 calendar days set by 45 CFR 164.404(b) (60) less the 15-day owner margin, below 45 CFR 164.410(b) (60) \
             and the intake (breach_notice_days = 60)"
        );
    }

    #[test]
    fn california_and_texas_at_thirty_days_leave_the_covered_entity_fifteen() {
        let sel = run(&["CA", "TX"], 30, false);
        assert_eq!((sel.clock.days, sel.clock.unit, sel.clock.immediately), (15, DayUnit::Calendar, true));
        assert_eq!(
            sel.clock.bound_by(),
            [
                "Cal. Civ. Code § 1798.82 (30) less the 15-day owner margin",
                "Tex. Bus. & Com. Code § 521.053(i) (30) less the 15-day owner margin"
            ]
        );
        let why = sel.clock.explain();
        assert!(why.starts_with("15 calendar days set by Cal. Civ. Code § 1798.82 (30) less the 15-day owner margin"));
        assert!(why.contains("Tex. Bus. & Com. Code § 521.053(b) (60) less the 15-day owner margin: 45"), "{why}");
        // Texas alone: the Attorney General's 30 days from determination bind, not the 60.
        assert_eq!(run(&["TX"], 60, false).clock.days, 15);
    }

    #[test]
    fn deadlines_running_from_another_notice_or_deemed_met_by_hipaa_do_not_bind() {
        // NY: HIPAA notice satisfies the resident notice; the AG copy runs from the HHS notice.
        // The service-provider rule (30 days) still binds the business associate itself.
        let ny = run(&["NY"], 60, false);
        assert_eq!((ny.clock.days, ny.clock.immediately), (30, true));
        assert_eq!(decisive(&ny), ["N.Y. Gen. Bus. Law § 899-aa(3)"]);
        assert!(!ny.clock.steps.iter().any(|s| s.unit == DayUnit::Business));
        // IL: only the 5 business days after the HHS notice, which do not bind: HIPAA's 45.
        let il = run(&["IL"], 60, false);
        assert_eq!((il.clock.days, il.clock.unit), (45, DayUnit::Calendar));
        assert_eq!(il.clock.bound_by(), ["45 CFR 164.404(b) (60) less the 15-day owner margin"]);
        // WA: the resident notice is deemed met for PHI, the AG notice remains.
        let wa = run(&["WA"], 60, false);
        assert_eq!(wa.clock.bound_by(), ["RCW 19.255.010 (30) less the 15-day owner margin"]);
        assert_eq!(wa.clock.days, 15);
        // CO: no deemed compliance, the shortest timeframe controls.
        assert_eq!(run(&["CO"], 60, false).clock.days, 15);
    }

    #[test]
    fn florida_third_party_agent_sets_ten_days() {
        let sel = run(&["FL"], 30, false);
        assert_eq!((sel.clock.days, sel.clock.unit, sel.clock.immediately), (10, DayUnit::Calendar, false));
        assert_eq!(
            sel.clock.text(),
            "without unreasonable delay, and in no case later than ten (10) calendar days after discovery"
        );
        assert_eq!(decisive(&sel), ["Fla. Stat. § 501.171(6)(a)"]);
        assert!(
            sel.clock.explain().starts_with("10 calendar days set by Fla. Stat. § 501.171(6)(a), below"),
            "{}",
            sel.clock.explain()
        );
        assert!(sel.clock.explain().contains("Fla. Stat. § 501.171 (30) less the 15-day owner margin: 15"));
        assert_eq!(sel.addenda.iter().map(|a| a.code.as_str()).collect::<Vec<_>>(), ["FL"]);
    }

    #[test]
    fn texas_and_california_with_ten_days_say_immediately() {
        let sel = run(&["TX", "CA"], 10, false);
        assert_eq!((sel.clock.days, sel.clock.unit, sel.clock.immediately), (10, DayUnit::Calendar, true));
        assert_eq!(sel.clock.text(), "immediately, and in no case later than ten (10) calendar days after discovery");
        assert_eq!(
            decisive(&sel),
            [INTAKE_SOURCE, "Tex. Bus. & Com. Code § 521.053(c)", "Cal. Civ. Code § 1798.82(b)"]
        );
        let why = sel.clock.explain();
        assert!(why.starts_with("10 calendar days set by the intake (breach_notice_days = 10), below"), "{why}");
        assert!(
            why.ends_with("“immediately” required by Tex. Bus. & Com. Code § 521.053(c), Cal. Civ. Code § 1798.82(b)")
        );
        assert_eq!(sel.addenda.iter().map(|a| a.code.as_str()).collect::<Vec<_>>(), ["TX", "CA"]);
    }

    #[test]
    fn california_licensed_facility_caps_at_five_business_days() {
        let sel = run(&["CA"], 60, true);
        assert_eq!((sel.clock.days, sel.clock.unit, sel.clock.immediately), (5, DayUnit::Business, true));
        assert_eq!(sel.clock.text(), "immediately, and in no case later than five (5) business days after discovery");
        assert_eq!(decisive(&sel), ["Cal. Civ. Code § 1798.82(b)", "Cal. Health & Safety Code § 1280.15"]);
        assert!(sel.clock.explain().starts_with(
            "5 business days set by Cal. Health & Safety Code § 1280.15 (15) less the 10-business-day owner margin"
        ));
        assert!(sel.clock.explain().contains("Cal. Civ. Code § 1798.82 (30) less the 15-day owner margin: 15"));
        assert!(with_code(&sel, "licensed_facility_without_state").is_empty());
    }

    #[test]
    fn calendar_clock_within_the_business_cap_stands() {
        let sel = run(&["CA"], 5, true);
        assert_eq!((sel.clock.days, sel.clock.unit), (5, DayUnit::Calendar));
        assert_eq!(decisive(&sel), [INTAKE_SOURCE, "Cal. Civ. Code § 1798.82(b)"]);
        assert!(sel.clock.explain().contains("Cal. Health & Safety Code § 1280.15 (15) less the 10-business-day"));
    }

    #[test]
    fn california_facility_without_california_still_caps() {
        let sel = run(&["TX"], 60, true);
        assert_eq!((sel.clock.days, sel.clock.unit, sel.clock.immediately), (5, DayUnit::Business, true));
        let f = with_code(&sel, "licensed_facility_without_state");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].element.as_deref(), Some("CA"));
        assert_eq!(sel.addenda.iter().map(|a| a.code.as_str()).collect::<Vec<_>>(), ["TX"]);
        // Without the flag a facility cap never applies.
        assert_eq!(run(&["CA"], 60, false).clock.unit, DayUnit::Calendar);
    }

    #[test]
    fn a_deadline_no_longer_than_the_margin_gives_the_floor_never_zero() {
        // Puerto Rico: 10 days to DACO from detection, no addendum.
        let sel = run(&["PR"], 60, false);
        assert_eq!((sel.clock.days, sel.clock.unit), (5, DayUnit::Calendar));
        assert_eq!(sel.clock.bound_by(), ["10 L.P.R.A. § 4052 (10) less the 15-day owner margin, floored at 5"]);
        let m = Margins::default();
        assert_eq!(m.apply(30, DayUnit::Calendar), (15, false));
        assert_eq!(m.apply(15, DayUnit::Calendar), (5, true));
        assert_eq!(m.apply(18, DayUnit::Calendar), (5, true));
        assert_eq!(m.apply(3, DayUnit::Calendar), (3, true));
        assert_eq!(m.apply(15, DayUnit::Business), (5, false));
        let zero = Margins { calendar_days: 0, business_days: 0, minimum_days: 1 };
        assert_eq!(zero.apply(30, DayUnit::Calendar), (30, false));
        for n in 1..=60 {
            assert!(m.apply(n, DayUnit::Calendar).0 >= 1);
        }
    }

    #[test]
    fn a_subcontractor_gets_the_upstream_clock_less_the_margin() {
        // No states: the upstream business associate has 45 days (HIPAA's 60 less 15); the
        // subcontractor 30.
        let sel = run_sub(&[], 60);
        assert_eq!(sel.clock.days, 30);
        assert_eq!(sel.clock.bound_by(), ["the upstream business associate’s clock (45) less the 15-day owner margin"]);
        // CA + TX: upstream 15, so the subcontractor gets the 5-day floor, still "immediately".
        let sel = run_sub(&["CA", "TX"], 30);
        assert_eq!((sel.clock.days, sel.clock.immediately), (5, true));
        assert!(sel.clock.explain().contains("(15) less the 15-day owner margin, floored at 5"));
        // The intake's shorter number still wins.
        assert_eq!(run_sub(&[], 10).clock.days, 10);
    }

    #[test]
    fn maine_without_addendum_counts_less_the_margin_with_an_advisory() {
        let sel = run(&["ME"], 60, false);
        assert_eq!((sel.clock.days, sel.clock.unit, sel.clock.immediately), (15, DayUnit::Calendar, false));
        assert_eq!(decisive(&sel), ["Me. Rev. Stat. tit. 10, § 1348"]);
        assert!(sel.addenda.is_empty());
        let f = with_code(&sel, "no_addendum");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].level, Level::Advisory);
        assert_eq!(f[0].pointer.as_deref(), Some("/states/0"));
        assert!(f[0].message.contains("Maine") && f[0].message.contains("30-day"), "{}", f[0].message);
        assert!(f[0].message.contains("verify with counsel"));
    }

    #[test]
    fn state_without_addendum_or_clock() {
        let sel = run(&["GA", "VT"], 60, false);
        assert_eq!(sel.clock.days, 30);
        let f = with_code(&sel, "no_addendum");
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].pointer.as_deref(), Some("/states/0"));
        assert!(f[0].message.contains("Georgia") && f[0].message.contains("no breach-notice clock"));
        assert_eq!(f[1].pointer.as_deref(), Some("/states/1"));
        assert!(f[1].message.contains("14 business days"), "{}", f[1].message);
    }

    #[test]
    fn duplicates_are_folded() {
        let sel = run(&["FL", "TX", "FL", "ME", "tx", "ME"], 45, false);
        assert_eq!(sel.addenda.iter().map(|a| a.code.as_str()).collect::<Vec<_>>(), ["FL", "TX"]);
        let states_in_steps = sel.clock.steps.iter().filter(|s| s.source.contains("501.171(6)")).count();
        assert_eq!(states_in_steps, 1);
        let f = with_code(&sel, "no_addendum");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].pointer.as_deref(), Some("/states/3"));
        assert_eq!(sel.findings.iter().filter(|f| f.element.as_deref() == Some("FL")).count(), 2);
        assert_eq!((sel.clock.days, sel.clock.immediately), (10, true));
        assert_eq!(with_code(&sel, "breach_clock").len(), 1);
    }

    #[test]
    fn unchecked_facts_are_flagged_for_counsel() {
        let sel = run(&["CA", "MA"], 60, false);
        let f = with_code(&sel, "verify_with_counsel");
        let cites: Vec<(&str, &str)> =
            f.iter().map(|f| (f.element.as_deref().unwrap(), f.citation.as_deref().unwrap())).collect();
        assert!(cites.contains(&("CA", "Cal. Civ. Code § 56.101(c)")));
        assert!(cites.contains(&("CA", "Cal. Civ. Code § 1798.82")));
        assert!(cites.contains(&("CA", "Cal. Civ. Code § 1798.82(b)")));
        assert!(cites.contains(&("CA", "Cal. Civ. Code § 1798.82(e)")));
        assert!(cites.contains(&("CA", "Cal. Health & Safety Code § 1280.15")));
        assert!(cites.contains(&("MA", "201 CMR 17.03")));
        assert!(cites.contains(&("MA", "M.G.L. c. 93H, § 3A")));
        assert!(!cites.iter().any(|(_, c)| *c == "Cal. Civ. Code § 56.36" || *c == "201 CMR 17.04"));
        // One finding per citation, grouping its facts.
        let mut unique = cites.clone();
        unique.dedup();
        assert_eq!(unique.len(), cites.len());
        for x in &f {
            assert_eq!(x.level, Level::Advisory);
            assert!(x.message.starts_with("verify with counsel: "), "{}", x.message);
            assert!(x.message.contains("2026-06-30"));
        }
        let g = f.iter().find(|x| x.citation.as_deref() == Some("Cal. Civ. Code § 1798.82")).unwrap();
        assert!(g.message.contains("within 30 days") && g.message.contains("more than 500"), "{}", g.message);
    }

    #[test]
    fn breach_clock_finding_explains() {
        let sel = run(&["WA", "IL", "CO"], 60, false);
        let f = with_code(&sel, "breach_clock");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].message, sel.clock.explain());
        assert_eq!((sel.clock.days, sel.clock.immediately), (15, true));
        assert_eq!(
            sel.clock.explain(),
            "15 calendar days set by RCW 19.255.010 (30) less the 15-day owner margin and Colo. Rev. Stat. § 6-1-716 \
             (30) less the 15-day owner margin, below 45 CFR 164.410(b) (60), the intake (breach_notice_days = 60) and \
             45 CFR 164.404(b) (60) less the 15-day owner margin: 45; “immediately” required by RCW 19.255.010(2), \
             815 ILCS 530/10(b)"
        );
    }

    #[test]
    fn clock_never_exceeds_any_input() {
        for days in 1..=60 {
            for list in [&["CA", "TX", "NY", "FL", "WA", "IL", "CO", "MA"][..], &["ME", "VT"], &["MA"]] {
                let c = run(list, days, false).clock;
                assert!(c.days <= days && c.days <= HIPAA_DAYS);
                assert!(c.steps.iter().filter_map(|s| s.days).all(|d| d >= c.days));
            }
        }
    }

    // --- words ---------------------------------------------------------------------------------

    #[test]
    fn number_words_one_to_sixty() {
        assert_eq!(number_words(1), "one");
        assert_eq!(number_words(15), "fifteen");
        assert_eq!(number_words(20), "twenty");
        assert_eq!(number_words(21), "twenty-one");
        assert_eq!(number_words(45), "forty-five");
        assert_eq!(number_words(60), "sixty");
        for n in 1..=60 {
            assert!(number_words(n).chars().all(|c| c.is_ascii_lowercase() || c == '-'));
        }
        let one = BreachClock {
            days: 1,
            unit: DayUnit::Calendar,
            immediately: false,
            margins: Margins::default(),
            steps: vec![],
        };
        assert_eq!(
            one.text(),
            "without unreasonable delay, and in no case later than one (1) calendar day after discovery"
        );
    }

    #[test]
    fn thresholds_read_as_the_statute_says() {
        assert_eq!(Threshold::MoreThan(500).min_affected(), 501);
        assert_eq!(Threshold::AtLeast(250).min_affected(), 250);
        assert_eq!(Threshold::MoreThan(10_000).words(), "more than 10,000 are affected");
    }
}
