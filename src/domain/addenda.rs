//! State-law addenda: the facts behind each addendum, which addenda an intake gets, and the
//! effective breach-notice clock of the agreement body.
//!
//! The facts live in `addenda/states.toml` (schema in `addenda/README.md`), the texts in
//! `addenda/<CODE>.md.tera`; both are embedded at build time. The effective clock is the
//! minimum of the intake's `breach_notice_days`, 60 days (45 CFR 164.410(b)) and each selected
//! state's clock, so the agreement never promises less than the strictest applicable law:
//!
//! * a state's clock is its explicit vendor→owner deadline if its law gives one, otherwise the
//!   shortest owner→individual deadline (in calendar days) that the vendor must leave room for,
//!   otherwise none;
//! * a state whose law says "immediately" makes the clause "immediately, and in no case later
//!   than N days";
//! * a state without an addendum still counts with its clock from the `other_state` table;
//! * where the covered entity is a California-licensed facility, the business-day cap of the
//!   California entry applies: a calendar minimum `c` stands if `c ≤ b`, else the clock is
//!   `b` business days.

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
}

impl Deadline {
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
        s
    }
}

/// A cap in business days on the vendor's notice, for a covered entity that itself must report
/// within a number of business days (California H&S 1280.15). The arithmetic is data:
/// `days = facility_days - reserve_days`, checked on load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessDayCap {
    pub rule: String,
    /// The covered entity's own deadline, in business days.
    pub facility_days: u32,
    /// The business days the covered entity keeps for itself.
    pub reserve_days: u32,
    /// The cap on the vendor's notice, in business days.
    pub days: u32,
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

    /// The clock this state adds to the minimum, with the citation that sets it: the explicit
    /// vendor deadline, else the shortest calendar-day deadline to individuals, else none.
    pub fn clock(&self) -> Option<(u32, &str)> {
        if let Some(d) = self.vendor_notice.days {
            return Some((d, self.vendor_notice.cite.as_str()));
        }
        self.deadlines
            .iter()
            .filter(|d| d.notify == Audience::Individuals && d.unit == DayUnit::Calendar)
            .filter_map(|d| d.days.map(|n| (n, d.cite.as_str())))
            .min_by_key(|(n, _)| *n)
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
    pub fn from_toml(text: &str) -> Result<Catalog, String> {
        let mut c: Catalog = toml::from_str(text).map_err(|e| e.to_string())?;
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

    fn validate(&self) -> Result<(), String> {
        let mut seen = HashSet::new();
        let name_of = |code: &str| JURISDICTIONS.iter().find(|(c, _)| *c == code).map(|(_, n)| *n);
        let days_ok = |what: &str, d: u32| {
            if (1..=HIPAA_DAYS).contains(&d) { Ok(()) } else { Err(format!("{what}: {d} days is not 1–60")) }
        };
        for s in &self.states {
            let c = &s.code;
            match name_of(c) {
                None => return Err(format!("state {c:?}: not a US state or territory code")),
                Some(n) if n != s.name => {
                    return Err(format!("state {c}: name {:?} should be {n:?}", s.name));
                }
                Some(_) => {}
            }
            if !seen.insert(c.as_str()) {
                return Err(format!("state {c}: listed twice"));
            }
            if !is_iso_date(&s.as_of) {
                return Err(format!("state {c}: as_of {:?} is not a YYYY-MM-DD date", s.as_of));
            }
            if s.citations.is_empty() {
                return Err(format!("state {c}: no citations"));
            }
            if s.citations.iter().any(|x| x.cite.trim().is_empty() || x.subject.trim().is_empty()) {
                return Err(format!("state {c}: a citation has an empty cite or subject"));
            }
            if let Some(d) = s.vendor_notice.days {
                days_ok(&format!("state {c} vendor_notice"), d)?;
            }
            for d in &s.deadlines {
                if let Some(n) = d.days {
                    days_ok(&format!("state {c} deadline {:?}", d.who), n)?;
                }
            }
            if let Some(cap) = &s.licensed_facility_cap
                && (cap.days == 0 || cap.facility_days.checked_sub(cap.reserve_days) != Some(cap.days))
            {
                return Err(format!(
                    "state {c} licensed_facility_cap: days ({}) must equal facility_days ({}) - reserve_days ({}) and be at least 1",
                    cap.days, cap.facility_days, cap.reserve_days
                ));
            }
            for Fact { cite, .. } in s.facts() {
                let listed = s
                    .citations
                    .iter()
                    .any(|x| cite == x.cite || cite.strip_prefix(x.cite.as_str()).is_some_and(|r| r.starts_with('(')));
                if !listed {
                    return Err(format!("state {c}: {cite:?} is used by a fact but not listed in citations"));
                }
            }
        }
        for o in &self.other_states {
            let c = &o.code;
            if name_of(c).is_none() {
                return Err(format!("other_state {c:?}: not a US state or territory code"));
            }
            if !seen.insert(c.as_str()) {
                return Err(format!("other_state {c}: listed twice, or also has an addendum"));
            }
            if o.unit != DayUnit::Calendar {
                return Err(format!("other_state {c}: only calendar days are supported"));
            }
            days_ok(&format!("other_state {c}"), o.days)?;
        }
        Ok(())
    }

    /// Every state has an embedded template, and every template a state.
    fn check_templates(&self) -> Result<(), String> {
        for s in &self.states {
            if s.template().is_none() {
                return Err(format!("state {}: no addenda/{}.md.tera in ADDENDUM_TEMPLATES", s.code, s.code));
            }
        }
        for (code, _) in ADDENDUM_TEMPLATES {
            if self.addendum(code).is_none() {
                return Err(format!("addenda/{code}.md.tera has no [[state]] entry"));
            }
        }
        Ok(())
    }
}

fn is_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() })
        && matches!(s[5..7].parse::<u8>(), Ok(1..=12))
        && matches!(s[8..10].parse::<u8>(), Ok(1..=31))
}

// ----------------------------------------------------------------------------------------------
// The effective breach clock
// ----------------------------------------------------------------------------------------------

/// The breach-notice deadline of the agreement body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreachClock {
    pub days: u32,
    pub unit: DayUnit,
    pub immediately: bool,
    /// Every rule considered, in order: HIPAA, the intake, then the states in intake order.
    pub steps: Vec<ClockStep>,
}

/// One rule that entered the clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClockStep {
    /// The law or intake field, e.g. `45 CFR 164.410(b)`, `intake /breach_notice_days`,
    /// `Fla. Stat. § 501.171(6)(a)`.
    pub source: String,
    /// None for a step that only adds "immediately".
    pub days: Option<u32>,
    pub unit: DayUnit,
    pub immediately: bool,
    /// This step set the final number or the "immediately".
    pub decisive: bool,
}

impl ClockStep {
    fn days(source: impl Into<String>, days: u32, unit: DayUnit) -> ClockStep {
        ClockStep { source: source.into(), days: Some(days), unit, immediately: false, decisive: false }
    }

    fn immediately(source: impl Into<String>) -> ClockStep {
        ClockStep { source: source.into(), days: None, unit: DayUnit::Calendar, immediately: true, decisive: false }
    }

    fn is_intake(&self) -> bool {
        self.source == INTAKE_SOURCE
    }

    /// `the intake (breach_notice_days = 10)` or the citation.
    fn name(&self) -> String {
        match self.days {
            Some(d) if self.is_intake() => format!("the intake (breach_notice_days = {d})"),
            _ => self.source.clone(),
        }
    }
}

impl BreachClock {
    /// Combines the steps: the calendar minimum `c`; a business-day cap `b` wins only if `c > b`.
    fn from_steps(mut steps: Vec<ClockStep>) -> BreachClock {
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
        BreachClock { days, unit, immediately, steps }
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

    /// One line: how the number was reached, naming the law that set it.
    pub fn explain(&self) -> String {
        let sets_number = |s: &ClockStep| s.days == Some(self.days) && s.unit == self.unit;
        let setters: Vec<String> = self.steps.iter().filter(|s| sets_number(s)).map(ClockStep::name).collect();
        let others: Vec<String> = self
            .steps
            .iter()
            .filter(|s| !sets_number(s))
            .filter_map(|s| {
                let d = s.days?;
                Some(match s.unit {
                    _ if s.is_intake() => s.name(),
                    DayUnit::Calendar => format!("{} ({d})", s.name()),
                    DayUnit::Business => format!("{} ({d} business days)", s.name()),
                })
            })
            .collect();
        let mut line =
            format!("{} {} {} set by {}", self.days, self.unit.as_str(), plural_days(self.days), join(&setters, "and"));
        if self.unit == DayUnit::Business {
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

/// Picks the addenda for the intake's states, computes the effective breach clock and reports
/// states without addenda, facts to verify with counsel, and how the clock was reached.
pub fn select<'a>(
    catalog: &'a Catalog,
    states: &[StateCode],
    intake_breach_days: u32,
    ca_licensed_facility: bool,
) -> Selection<'a> {
    let mut steps = vec![
        ClockStep::days(HIPAA_CITE, HIPAA_DAYS, DayUnit::Calendar),
        ClockStep::days(INTAKE_SOURCE, intake_breach_days, DayUnit::Calendar),
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
                if let Some((d, cite)) = law.clock() {
                    let same = cite == law.vendor_notice.cite;
                    let mut step = ClockStep::days(cite, d, DayUnit::Calendar);
                    step.immediately = same && law.vendor_notice.immediately;
                    steps.push(step);
                    if !same && law.vendor_notice.immediately {
                        steps.push(ClockStep::immediately(&law.vendor_notice.cite));
                    }
                } else if law.vendor_notice.immediately {
                    steps.push(ClockStep::immediately(&law.vendor_notice.cite));
                }
                if ca_licensed_facility
                    && law.code == LICENSED_FACILITY_STATE
                    && let Some(cap) = &law.licensed_facility_cap
                {
                    steps.push(ClockStep::days(&cap.cite, cap.days, DayUnit::Business));
                }
                findings.extend(counsel_findings(law));
            }
            None => {
                let other = catalog.other_state(code.code());
                if let Some(o) = other {
                    steps.push(ClockStep::days(&o.cite, o.days, o.unit));
                }
                findings.push(no_addendum(i, *code, other));
            }
        }
    }

    // The 1280.15 cap follows the covered entity, even if the intake did not list California.
    if ca_licensed_facility
        && !addenda.iter().any(|a| a.code == LICENSED_FACILITY_STATE)
        && let Some(law) = catalog.addendum(LICENSED_FACILITY_STATE)
        && let Some(cap) = &law.licensed_facility_cap
    {
        steps.push(ClockStep::days(&cap.cite, cap.days, DayUnit::Business));
        let message = format!(
            "the covered entity is marked as a {}-licensed facility, so the {} cap of {} business days applies, \
             but {} is not among the states and its addendum is not attached; verify with counsel ({} {})",
            law.name,
            cap.cite,
            cap.days,
            law.code,
            cap.status.symbol(),
            cap.status.describe()
        );
        findings.push(
            Finding::new(Level::Advisory, "licensed_facility_without_state", message)
                .with_pointer("/states")
                .with_element(law.code.clone())
                .with_citation(cap.cite.clone()),
        );
    }

    let clock = BreachClock::from_steps(steps);
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
        select(Catalog::embedded(), &codes(list), days, facility)
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
        let clock = |code: &str| c.addendum(code).unwrap().clock().map(|(d, _)| d);
        assert_eq!(clock("FL"), Some(10));
        assert_eq!(clock("NY"), Some(30));
        assert_eq!(clock("CA"), Some(30));
        assert_eq!(clock("WA"), Some(30));
        assert_eq!(clock("CO"), Some(30));
        assert_eq!(clock("TX"), Some(60));
        assert_eq!(clock("IL"), None);
        assert_eq!(clock("MA"), None);
        let immediate: Vec<&str> =
            c.supported().filter(|s| s.vendor_notice.immediately).map(|s| s.code.as_str()).collect();
        assert_eq!(immediate, ["CA", "IL", "NY", "TX", "WA"]);
        let cap = c.addendum("CA").unwrap().licensed_facility_cap.as_ref().unwrap();
        assert_eq!((cap.facility_days, cap.reserve_days, cap.days), (15, 10, 5));
        assert_eq!(c.other_state("ME").map(|o| o.days), Some(30));
        assert_eq!(c.other_state("VT").map(|o| o.days), Some(45));
        assert_eq!(c.other_states().count(), 12);
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
        assert_eq!(ca["licensed_facility_cap"]["days"], 5);
        assert_eq!(ca["deadlines"][1]["threshold"]["more_than"], 500);
        assert_eq!(ca["citations"][0]["status"], "verified");
    }

    #[test]
    fn invalid_files_are_rejected() {
        let ok = STATES_TOML;
        let bad = |from: &str, to: &str| {
            assert!(ok.contains(from), "{from}");
            Catalog::from_toml(&ok.replacen(from, to, 1)).unwrap_err()
        };
        assert!(bad("as_of = \"2026-06-30\"", "as_of = \"2026-06-30\"\ncolour = \"red\"").contains("colour"));
        assert!(bad("status = \"secondary\"", "status = \"likely\"").contains("likely"));
        assert!(bad("reserve_days = 10", "reserve_days = 9").contains("facility_days"));
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
            "30 calendar days set by the intake (breach_notice_days = 30), below 45 CFR 164.410(b) (60)"
        );
        assert!(sel.addenda.is_empty());
        assert_eq!(sel.findings.len(), 1);
        assert_eq!(sel.findings[0].code, "breach_clock");
    }

    #[test]
    fn intake_sixty_ties_with_hipaa() {
        let sel = run(&[], 60, false);
        assert_eq!(sel.clock.days, 60);
        assert_eq!(
            sel.clock.explain(),
            "60 calendar days set by 45 CFR 164.410(b) and the intake (breach_notice_days = 60)"
        );
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
        assert_eq!(
            sel.clock.explain(),
            "10 calendar days set by Fla. Stat. § 501.171(6)(a), below 45 CFR 164.410(b) (60) and the intake (breach_notice_days = 30)"
        );
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
        assert_eq!(
            sel.clock.explain(),
            "10 calendar days set by the intake (breach_notice_days = 10), below 45 CFR 164.410(b) (60), \
             Tex. Bus. & Com. Code § 521.053(b) (60) and Cal. Civ. Code § 1798.82 (30); \
             “immediately” required by Tex. Bus. & Com. Code § 521.053(c), Cal. Civ. Code § 1798.82(b)"
        );
        assert_eq!(sel.addenda.iter().map(|a| a.code.as_str()).collect::<Vec<_>>(), ["TX", "CA"]);
    }

    #[test]
    fn new_york_service_provider_rule() {
        let sel = run(&["NY"], 60, false);
        assert_eq!((sel.clock.days, sel.clock.unit, sel.clock.immediately), (30, DayUnit::Calendar, true));
        assert_eq!(
            sel.clock.text(),
            "immediately, and in no case later than thirty (30) calendar days after discovery"
        );
        assert_eq!(decisive(&sel), ["N.Y. Gen. Bus. Law § 899-aa(3)"]);
        assert_eq!(
            sel.clock.explain(),
            "30 calendar days set by N.Y. Gen. Bus. Law § 899-aa(3), below 45 CFR 164.410(b) (60) and the intake \
             (breach_notice_days = 60); “immediately” required by N.Y. Gen. Bus. Law § 899-aa(3)"
        );
    }

    #[test]
    fn immediately_without_setting_the_number() {
        let sel = run(&["NY"], 10, false);
        assert_eq!((sel.clock.days, sel.clock.immediately), (10, true));
        assert_eq!(decisive(&sel), [INTAKE_SOURCE, "N.Y. Gen. Bus. Law § 899-aa(3)"]);
        assert_eq!(
            sel.clock.explain(),
            "10 calendar days set by the intake (breach_notice_days = 10), below 45 CFR 164.410(b) (60) and \
             N.Y. Gen. Bus. Law § 899-aa(3) (30); “immediately” required by N.Y. Gen. Bus. Law § 899-aa(3)"
        );
    }

    #[test]
    fn california_licensed_facility_caps_at_five_business_days() {
        let sel = run(&["CA"], 60, true);
        assert_eq!((sel.clock.days, sel.clock.unit, sel.clock.immediately), (5, DayUnit::Business, true));
        assert_eq!(sel.clock.text(), "immediately, and in no case later than five (5) business days after discovery");
        assert_eq!(decisive(&sel), ["Cal. Civ. Code § 1798.82(b)", "Cal. Health & Safety Code § 1280.15"]);
        assert!(sel.clock.explain().starts_with("5 business days set by Cal. Health & Safety Code § 1280.15"));
        assert!(sel.clock.explain().contains("Cal. Civ. Code § 1798.82 (30)"));
        assert!(with_code(&sel, "licensed_facility_without_state").is_empty());
    }

    #[test]
    fn calendar_clock_within_the_business_cap_stands() {
        let sel = run(&["CA"], 5, true);
        assert_eq!((sel.clock.days, sel.clock.unit), (5, DayUnit::Calendar));
        assert_eq!(decisive(&sel), [INTAKE_SOURCE, "Cal. Civ. Code § 1798.82(b)"]);
        assert!(sel.clock.explain().contains("Cal. Health & Safety Code § 1280.15 (5 business days)"));
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
    fn maine_without_addendum_counts_with_an_advisory() {
        let sel = run(&["ME"], 60, false);
        assert_eq!((sel.clock.days, sel.clock.unit, sel.clock.immediately), (30, DayUnit::Calendar, false));
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
        assert_eq!(sel.clock.days, 45);
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
        let states_in_steps = sel.clock.steps.iter().filter(|s| s.source.contains("501.171")).count();
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
        assert!(cites.contains(&("CA", "Cal. Health & Safety Code § 1280.15")));
        assert!(cites.contains(&("MA", "201 CMR 17.03")));
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
        assert_eq!((sel.clock.days, sel.clock.immediately), (30, true));
        assert_eq!(
            sel.clock.explain(),
            "30 calendar days set by RCW 19.255.010 and Colo. Rev. Stat. § 6-1-716, below 45 CFR 164.410(b) (60) \
             and the intake (breach_notice_days = 60); “immediately” required by RCW 19.255.010(2), 815 ILCS 530/10(b)"
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
        let one = BreachClock { days: 1, unit: DayUnit::Calendar, immediately: false, steps: vec![] };
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
