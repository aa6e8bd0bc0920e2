//! Negotiated provisions: the clauses counsel argues about, beyond what HIPAA requires.
//!
//! An intake may set each provision's parameters, turn it off (`false`), or leave it out to get
//! the approved default. Legal maintains the defaults and the approved ranges in a policy file
//! (`policy/default.toml`, or `--policy FILE` / config `policy_file`). Resolving an intake against
//! the policy gives the concrete terms the templates print, and a `needs_approval` finding for
//! every departure, naming the parameter and the policy rule it breaks. A draft with departures
//! can be rendered and reviewed but not sent until a legal or admin user approves it.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use super::findings::{Finding, Level};
use super::states::StateCode;
use super::words::number_words;

/// Who pays for an audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CostBearer {
    /// The party that asks for the audit pays (the usual default).
    CoveredEntity,
    BusinessAssociate,
    Shared,
}

/// A liability cap.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cap {
    /// A multiple of the fees paid or payable in the twelve months before the claim.
    MultipleOfFees(f64),
    /// A fixed amount in US dollars.
    AmountUsd(u64),
}

/// What the intake says about one provision: absent → the approved default.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub enum Choice<T> {
    #[default]
    Default,
    Off,
    On(T),
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct AuditInput {
    pub notice_days: Option<u32>,
    pub per_year: Option<u32>,
    pub cost: Option<CostBearer>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct LiabilityInput {
    pub mutual: Option<bool>,
    pub cap: Option<Cap>,
    /// The floor of a cap stated as a multiple of fees: the cap is the greater of the two.
    pub cap_floor_usd: Option<u64>,
    pub phi_carve_out: Option<bool>,
    /// The role key (`covered_entity`, …) of a party that is a governmental entity and may
    /// indemnify only as far as its state's law permits.
    pub public_body: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SecurityInput {
    pub log_retention_years: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct BreachCostsInput {
    pub credit_monitoring_months: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct InsuranceInput {
    pub coverage_usd: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct LdsInput {
    pub dua_reference: Option<String>,
}

/// The intake's `provisions` object, as parsed.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ProvisionChoices {
    pub audit_rights: Choice<AuditInput>,
    pub liability: Choice<LiabilityInput>,
    pub preemption: Option<bool>,
    pub cyber_insurance: Choice<InsuranceInput>,
    pub cure_period_days: Option<u32>,
    /// Off unless the intake says a limited data set is shared.
    pub limited_data_set: Choice<LdsInput>,
    pub governing_law: Option<StateCode>,
    /// The security controls compliance teams ask vendors for (on by default).
    pub security_controls: Choice<SecurityInput>,
    /// PHI stored and accessed only in the United States (on by default).
    pub data_location: Option<bool>,
    /// Days after notice of a new subcontractor within which the upstream party may object.
    pub subcontractor_objection_days: Option<u32>,
    pub breach_costs: Option<BreachCostsInput>,
    /// The covered entity holds 42 CFR Part 2 substance use disorder records (off by default).
    pub part2: Option<bool>,
    /// The parties intend the business associate to act as the covered entity's agent.
    pub agency: Option<bool>,
    /// Days to agree an amendment after a change in law before either party may terminate.
    pub change_in_law_days: Option<u32>,
}

/// The policy legal maintains: approved defaults and ranges.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub name: String,
    pub breach_clock: BreachPolicy,
    pub audit_rights: AuditPolicy,
    pub liability: LiabilityPolicy,
    pub preemption: TogglePolicy,
    pub cyber_insurance: InsurancePolicy,
    pub cure_period: CurePolicy,
    pub governing_law: LawPolicy,
    // Sections added in counsel's review, round 1. A policy file written for the previous
    // release lacks them and still loads, with the shipped defaults.
    #[serde(default)]
    pub security_controls: SecurityPolicy,
    #[serde(default)]
    pub data_location: TogglePolicy,
    #[serde(default)]
    pub subcontractor_objection: ObjectionPolicy,
    #[serde(default)]
    pub breach_costs: BreachCostsPolicy,
    #[serde(default)]
    pub agency: AgencyPolicy,
    #[serde(default)]
    pub change_in_law: ChangeInLawPolicy,
    #[serde(default)]
    pub dua: DuaPolicy,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BreachPolicy {
    pub max_days: u32,
    /// Calendar days of each owner deadline left to the covered entity (or upstream business
    /// associate).
    #[serde(default = "default_margin_days")]
    pub owner_margin_days: u32,
    /// Business days of each business-day owner deadline left to it.
    #[serde(default = "default_margin_business_days")]
    pub owner_margin_business_days: u32,
    /// The floor where a deadline is no longer than the margin.
    #[serde(default = "default_minimum_clock_days")]
    pub minimum_clock_days: u32,
}

fn default_margin_days() -> u32 {
    15
}
fn default_margin_business_days() -> u32 {
    10
}
fn default_minimum_clock_days() -> u32 {
    5
}

impl BreachPolicy {
    pub fn margins(&self) -> crate::domain::addenda::Margins {
        crate::domain::addenda::Margins {
            calendar_days: self.owner_margin_days,
            business_days: self.owner_margin_business_days,
            minimum_days: self.minimum_clock_days,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityPolicy {
    pub default_on: bool,
    pub may_be_off: bool,
    pub default_log_retention_years: u32,
    pub min_log_retention_years: u32,
}

impl Default for SecurityPolicy {
    fn default() -> Self {
        SecurityPolicy {
            default_on: true,
            may_be_off: false,
            default_log_retention_years: 6,
            min_log_retention_years: 6,
        }
    }
}

impl Default for TogglePolicy {
    fn default() -> Self {
        TogglePolicy { default_on: true, may_be_off: false }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectionPolicy {
    pub default_days: u32,
    pub min_days: u32,
}

impl Default for ObjectionPolicy {
    fn default() -> Self {
        ObjectionPolicy { default_days: 15, min_days: 10 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BreachCostsPolicy {
    pub default_credit_monitoring_months: u32,
    pub min_credit_monitoring_months: u32,
}

impl Default for BreachCostsPolicy {
    fn default() -> Self {
        BreachCostsPolicy { default_credit_monitoring_months: 24, min_credit_monitoring_months: 18 }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgencyPolicy {
    /// An agency relationship (the business associate as the covered entity's agent) is approved.
    pub agency_approved: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeInLawPolicy {
    pub default_days: u32,
    pub min_days: u32,
    pub max_days: u32,
}

impl Default for ChangeInLawPolicy {
    fn default() -> Self {
        ChangeInLawPolicy { default_days: 60, min_days: 30, max_days: 90 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DuaPolicy {
    /// Results that could identify someone: no cell under this count (0: no suppression rule).
    pub small_cell_minimum: u32,
}

impl Default for DuaPolicy {
    fn default() -> Self {
        DuaPolicy { small_cell_minimum: 11 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditPolicy {
    pub default_on: bool,
    pub may_be_off: bool,
    pub default_notice_days: u32,
    pub max_notice_days: u32,
    pub default_per_year: u32,
    pub min_per_year: u32,
    pub default_cost: CostBearer,
    pub approved_costs: Vec<CostBearer>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LiabilityPolicy {
    pub default_on: bool,
    pub may_be_off: bool,
    pub default_mutual: bool,
    pub one_way_approved: bool,
    pub default_cap_multiple: f64,
    pub min_cap_multiple: f64,
    pub min_cap_amount_usd: u64,
    pub carve_out_required: bool,
    /// A cap stated as a multiple of fees is never less than this amount (the greater of both).
    #[serde(default = "default_cap_floor")]
    pub default_cap_floor_usd: u64,
    #[serde(default = "default_cap_floor")]
    pub min_cap_floor_usd: u64,
}

fn default_cap_floor() -> u64 {
    1_000_000
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TogglePolicy {
    pub default_on: bool,
    pub may_be_off: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InsurancePolicy {
    pub default_on: bool,
    pub may_be_off: bool,
    pub default_coverage_usd: u64,
    pub min_coverage_usd: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CurePolicy {
    pub default_days: u32,
    pub min_days: u32,
    pub max_days: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LawPolicy {
    /// `true`: the law of the upstream party's state (its address) is approved; another state
    /// needs approval.
    pub upstream_state_only: bool,
}

const DEFAULT_POLICY: &str = include_str!("../../policy/default.toml");

static EMBEDDED: LazyLock<Policy> =
    LazyLock::new(|| Policy::from_toml(DEFAULT_POLICY).unwrap_or_else(|e| panic!("policy/default.toml: {e}")));

/// Why a policy file is refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy {}: {source}", path.display())]
    Read { path: std::path::PathBuf, source: std::io::Error },
    /// The file's problem, prefixed with its path.
    #[error("policy {}: {source}", path.display())]
    InFile { path: std::path::PathBuf, source: Box<PolicyError> },
    /// Not TOML of the policy's shape (toml's message, without the quoted source line).
    #[error("{0}")]
    Toml(String),
    #[error("cure_period: min_days must be ≤ max_days ≤ 60")]
    CurePeriodRange,
    #[error("cure_period.default_days must be within min_days..=max_days")]
    CurePeriodDefault,
    #[error("breach_clock: minimum_clock_days must be 1–60 and owner_margin_days under 60")]
    BreachClock,
    #[error("change_in_law: min_days ≤ default_days ≤ max_days")]
    ChangeInLaw,
}

/// The CLI prints it as it is.
impl From<PolicyError> for String {
    fn from(e: PolicyError) -> String {
        e.to_string()
    }
}

impl Policy {
    /// The policy shipped with Countersign.
    pub fn embedded() -> &'static Policy {
        &EMBEDDED
    }

    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let p: Policy = toml::from_str(text).map_err(|e| PolicyError::Toml(e.message().to_string()))?;
        if p.cure_period.min_days > p.cure_period.max_days || p.cure_period.max_days > 60 {
            return Err(PolicyError::CurePeriodRange);
        }
        if !(p.cure_period.min_days..=p.cure_period.max_days).contains(&p.cure_period.default_days) {
            return Err(PolicyError::CurePeriodDefault);
        }
        let b = &p.breach_clock;
        if b.minimum_clock_days == 0 || b.minimum_clock_days > 60 || b.owner_margin_days >= 60 {
            return Err(PolicyError::BreachClock);
        }
        let c = &p.change_in_law;
        if !(c.min_days <= c.default_days && c.default_days <= c.max_days) {
            return Err(PolicyError::ChangeInLaw);
        }
        Ok(p)
    }

    pub fn load(path: &std::path::Path) -> Result<Policy, PolicyError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| PolicyError::Read { path: path.to_path_buf(), source })?;
        Self::from_toml(&text).map_err(|e| PolicyError::InFile { path: path.to_path_buf(), source: Box::new(e) })
    }
}

/// Concrete terms, after defaults.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provisions {
    pub audit_rights: Option<Audit>,
    pub liability: Option<Liability>,
    pub preemption: bool,
    pub cyber_insurance: Option<u64>,
    pub cure_period_days: u32,
    pub limited_data_set: Option<LdsInput>,
    pub governing_law: StateCode,
    /// Log retention in years, when the security controls provision is on.
    pub security_controls: Option<u32>,
    pub data_location: bool,
    pub subcontractor_objection_days: u32,
    pub credit_monitoring_months: u32,
    pub part2: bool,
    pub agency: bool,
    pub change_in_law_days: u32,
    /// DUA: no cell under this count in results (0: none).
    pub small_cell_minimum: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Audit {
    pub notice_days: u32,
    pub per_year: u32,
    pub cost: CostBearer,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Liability {
    pub mutual: bool,
    pub cap: Cap,
    /// With a multiple-of-fees cap: the cap is at least this amount.
    pub cap_floor_usd: Option<u64>,
    pub phi_carve_out: bool,
    pub public_body: Option<String>,
}

fn departure(pointer: &str, rule: &str, message: String) -> Finding {
    Finding {
        level: Level::NeedsApproval,
        code: "outside_policy",
        pointer: Some(pointer.to_string()),
        element: Some(format!("policy {rule}")),
        citation: None,
        message,
    }
}

/// `two (2) times` / `1.5 times`.
pub fn multiple_text(m: f64) -> String {
    if m.fract() == 0.0 && (1.0..=100.0).contains(&m) {
        format!("{} ({}) times", number_words(m as u32), m as u32)
    } else {
        format!("{m} times")
    }
}

/// `US$2,000,000`.
pub fn usd(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    format!("US${out}")
}

fn days_text(n: u32) -> String {
    format!("{} ({n}) days", number_words(n))
}

fn years_text(n: u32) -> String {
    format!("{} ({n}) {}", number_words(n), if n == 1 { "year" } else { "years" })
}

fn months_text(n: u32) -> String {
    format!("{} ({n}) months", number_words(n))
}

/// The cap as printed: a fixed amount, or the greater of a multiple of fees and a floor.
fn cap_text(l: &Liability) -> String {
    match (l.cap, l.cap_floor_usd) {
        (Cap::AmountUsd(a), _) => usd(a),
        (Cap::MultipleOfFees(m), floor) => {
            let fees = format!(
                "{} the fees paid or payable under the Service Arrangement in the twelve (12) months before the event giving rise to the claim",
                multiple_text(m)
            );
            match floor {
                Some(f) => format!("the greater of (a) {fees} and (b) {}", usd(f)),
                None => fees,
            }
        }
    }
}

impl Provisions {
    /// Applies the policy's defaults to the intake's choices and lists every departure.
    /// `upstream_state` is the disclosing party's address state; `clock_days` the effective
    /// breach clock in calendar-day terms.
    pub fn resolve(
        c: &ProvisionChoices,
        policy: &Policy,
        upstream_state: StateCode,
        clock_days: u32,
    ) -> (Provisions, Vec<Finding>) {
        let mut out = Vec::new();
        let base = "/provisions";

        if clock_days > policy.breach_clock.max_days {
            out.push(departure(
                "/breach_notice_days",
                "breach_clock.max_days",
                format!(
                    "a {clock_days}-day breach notice clock is longer than the approved maximum of {} days",
                    policy.breach_clock.max_days
                ),
            ));
        }

        let ap = &policy.audit_rights;
        let audit_rights = match &c.audit_rights {
            Choice::Off => {
                if !ap.may_be_off {
                    out.push(departure(
                        &format!("{base}/audit_rights"),
                        "audit_rights.may_be_off",
                        "removing the covered entity's audit and documentation rights needs approval".into(),
                    ));
                }
                None
            }
            Choice::Default if !ap.default_on => None,
            Choice::Default => Some(Audit {
                notice_days: ap.default_notice_days,
                per_year: ap.default_per_year,
                cost: ap.default_cost,
            }),
            Choice::On(i) => {
                let a = Audit {
                    notice_days: i.notice_days.unwrap_or(ap.default_notice_days),
                    per_year: i.per_year.unwrap_or(ap.default_per_year),
                    cost: i.cost.unwrap_or(ap.default_cost),
                };
                if a.notice_days > ap.max_notice_days {
                    out.push(departure(
                        &format!("{base}/audit_rights/notice_days"),
                        "audit_rights.max_notice_days",
                        format!(
                            "{} days' notice before an audit is more than the approved maximum of {}",
                            a.notice_days, ap.max_notice_days
                        ),
                    ));
                }
                if a.per_year < ap.min_per_year {
                    out.push(departure(
                        &format!("{base}/audit_rights/per_year"),
                        "audit_rights.min_per_year",
                        format!(
                            "{} audit(s) a year is fewer than the approved minimum of {}",
                            a.per_year, ap.min_per_year
                        ),
                    ));
                }
                if !ap.approved_costs.contains(&a.cost) {
                    out.push(departure(
                        &format!("{base}/audit_rights/cost"),
                        "audit_rights.approved_costs",
                        format!("audit costs borne by {:?} are not among the approved choices", a.cost),
                    ));
                }
                Some(a)
            }
        };

        let lp = &policy.liability;
        let liability = match &c.liability {
            Choice::Off => {
                if !lp.may_be_off {
                    out.push(departure(
                        &format!("{base}/liability"),
                        "liability.may_be_off",
                        "removing the liability and indemnification clause needs approval".into(),
                    ));
                }
                None
            }
            Choice::Default if !lp.default_on => None,
            Choice::Default => Some(Liability {
                mutual: lp.default_mutual,
                cap: Cap::MultipleOfFees(lp.default_cap_multiple),
                cap_floor_usd: Some(lp.default_cap_floor_usd),
                phi_carve_out: true,
                public_body: None,
            }),
            Choice::On(i) => {
                let cap = i.cap.unwrap_or(Cap::MultipleOfFees(lp.default_cap_multiple));
                let l = Liability {
                    mutual: i.mutual.unwrap_or(lp.default_mutual),
                    cap,
                    cap_floor_usd: match cap {
                        Cap::MultipleOfFees(_) => Some(i.cap_floor_usd.unwrap_or(lp.default_cap_floor_usd)),
                        Cap::AmountUsd(_) => None,
                    },
                    phi_carve_out: i.phi_carve_out.unwrap_or(true),
                    public_body: i.public_body.clone(),
                };
                if let Some(f) = l.cap_floor_usd
                    && f < lp.min_cap_floor_usd
                {
                    out.push(departure(
                        &format!("{base}/liability/cap_floor_usd"),
                        "liability.min_cap_floor_usd",
                        format!(
                            "a cap floor of {} is below the approved minimum of {}",
                            usd(f),
                            usd(lp.min_cap_floor_usd)
                        ),
                    ));
                }
                if !l.mutual && !lp.one_way_approved {
                    out.push(departure(
                        &format!("{base}/liability/mutual"),
                        "liability.one_way_approved",
                        "a one-way indemnity needs approval".into(),
                    ));
                }
                match l.cap {
                    Cap::MultipleOfFees(m) if m < lp.min_cap_multiple => out.push(departure(
                        &format!("{base}/liability/cap_multiple_of_fees"),
                        "liability.min_cap_multiple",
                        format!("a cap of {m}× fees is below the approved minimum of {}× fees", lp.min_cap_multiple),
                    )),
                    Cap::AmountUsd(a) if a < lp.min_cap_amount_usd => out.push(departure(
                        &format!("{base}/liability/cap_amount_usd"),
                        "liability.min_cap_amount_usd",
                        format!("a cap of {} is below the approved minimum of {}", usd(a), usd(lp.min_cap_amount_usd)),
                    )),
                    _ => {}
                }
                if !l.phi_carve_out && lp.carve_out_required {
                    out.push(departure(
                        &format!("{base}/liability/phi_carve_out"),
                        "liability.carve_out_required",
                        "the cap must not limit liability for breach of the PHI obligations without approval".into(),
                    ));
                }
                Some(l)
            }
        };

        let pp = &policy.preemption;
        let preemption = c.preemption.unwrap_or(pp.default_on);
        if !preemption && !pp.may_be_off {
            out.push(departure(
                &format!("{base}/preemption"),
                "preemption.may_be_off",
                "removing the more-stringent-law clause needs approval".into(),
            ));
        }

        let ip = &policy.cyber_insurance;
        let cyber_insurance = match &c.cyber_insurance {
            Choice::Off => {
                if !ip.may_be_off {
                    out.push(departure(
                        &format!("{base}/cyber_insurance"),
                        "cyber_insurance.may_be_off",
                        "removing the cyber insurance requirement needs approval".into(),
                    ));
                }
                None
            }
            Choice::Default if !ip.default_on => None,
            Choice::Default => Some(ip.default_coverage_usd),
            Choice::On(i) => {
                let cov = i.coverage_usd.unwrap_or(ip.default_coverage_usd);
                if cov < ip.min_coverage_usd {
                    out.push(departure(
                        &format!("{base}/cyber_insurance/coverage_usd"),
                        "cyber_insurance.min_coverage_usd",
                        format!(
                            "cyber coverage of {} is below the approved minimum of {}",
                            usd(cov),
                            usd(ip.min_coverage_usd)
                        ),
                    ));
                }
                Some(cov)
            }
        };

        let cp = &policy.cure_period;
        let cure_period_days = c.cure_period_days.unwrap_or(cp.default_days);
        if !(cp.min_days..=cp.max_days).contains(&cure_period_days) {
            out.push(departure(
                &format!("{base}/cure_period_days"),
                "cure_period",
                format!(
                    "a {cure_period_days}-day cure period is outside the approved range of {}–{} days",
                    cp.min_days, cp.max_days
                ),
            ));
        }

        let limited_data_set = match &c.limited_data_set {
            Choice::On(l) => Some(l.clone()),
            _ => None,
        };

        let governing_law = c.governing_law.unwrap_or(upstream_state);
        if policy.governing_law.upstream_state_only && governing_law != upstream_state {
            out.push(departure(
                &format!("{base}/governing_law"),
                "governing_law.upstream_state_only",
                format!("the law of {} instead of {} needs approval", governing_law.name(), upstream_state.name()),
            ));
        }

        let sp = &policy.security_controls;
        let security_controls = match &c.security_controls {
            Choice::Off => {
                if !sp.may_be_off {
                    out.push(departure(
                        &format!("{base}/security_controls"),
                        "security_controls.may_be_off",
                        "removing the security controls provision needs approval".into(),
                    ));
                }
                None
            }
            Choice::Default if !sp.default_on => None,
            Choice::Default => Some(sp.default_log_retention_years),
            Choice::On(i) => {
                let years = i.log_retention_years.unwrap_or(sp.default_log_retention_years);
                if years < sp.min_log_retention_years {
                    out.push(departure(
                        &format!("{base}/security_controls/log_retention_years"),
                        "security_controls.min_log_retention_years",
                        format!(
                            "keeping audit logs {years} year(s) is less than the approved minimum of {}",
                            sp.min_log_retention_years
                        ),
                    ));
                }
                Some(years)
            }
        };

        let dp = &policy.data_location;
        let data_location = c.data_location.unwrap_or(dp.default_on);
        if !data_location && !dp.may_be_off {
            out.push(departure(
                &format!("{base}/data_location"),
                "data_location.may_be_off",
                "allowing PHI to be stored or accessed outside the United States needs approval".into(),
            ));
        }

        let op = &policy.subcontractor_objection;
        let subcontractor_objection_days = c.subcontractor_objection_days.unwrap_or(op.default_days);
        if subcontractor_objection_days < op.min_days {
            out.push(departure(
                &format!("{base}/subcontractor_objection_days"),
                "subcontractor_objection.min_days",
                format!(
                    "{subcontractor_objection_days} days to object to a new subcontractor is less than the approved minimum of {}",
                    op.min_days
                ),
            ));
        }

        let bp = &policy.breach_costs;
        let credit_monitoring_months = c
            .breach_costs
            .as_ref()
            .and_then(|b| b.credit_monitoring_months)
            .unwrap_or(bp.default_credit_monitoring_months);
        if credit_monitoring_months < bp.min_credit_monitoring_months {
            out.push(departure(
                &format!("{base}/breach_costs/credit_monitoring_months"),
                "breach_costs.min_credit_monitoring_months",
                format!(
                    "{credit_monitoring_months} months of credit monitoring is less than the approved minimum of {}",
                    bp.min_credit_monitoring_months
                ),
            ));
        }

        let agency = c.agency.unwrap_or(false);
        if agency && !policy.agency.agency_approved {
            out.push(departure(
                &format!("{base}/agency"),
                "agency.agency_approved",
                "making the business associate the covered entity's agent needs approval: its discovery and acts become the covered entity's (45 CFR 164.404(a)(2), 160.402(c))".into(),
            ));
        }

        let lp = &policy.change_in_law;
        let change_in_law_days = c.change_in_law_days.unwrap_or(lp.default_days);
        if !(lp.min_days..=lp.max_days).contains(&change_in_law_days) {
            out.push(departure(
                &format!("{base}/change_in_law_days"),
                "change_in_law",
                format!(
                    "{change_in_law_days} days to agree an amendment after a change in law is outside the approved range of {}–{} days",
                    lp.min_days, lp.max_days
                ),
            ));
        }

        (
            Provisions {
                audit_rights,
                liability,
                preemption,
                cyber_insurance,
                cure_period_days,
                limited_data_set,
                governing_law,
                security_controls,
                data_location,
                subcontractor_objection_days,
                credit_monitoring_months,
                part2: c.part2.unwrap_or(false),
                agency,
                change_in_law_days,
                small_cell_minimum: policy.dua.small_cell_minimum,
            },
            out,
        )
    }

    /// The template context (`prov` in templates/README.md).
    pub fn context(&self) -> serde_json::Value {
        use serde_json::json;
        json!({
            "audit": self.audit_rights.as_ref().map(|a| json!({
                "notice_days": a.notice_days,
                "notice_text": days_text(a.notice_days),
                "per_year": a.per_year,
                "per_year_text": if a.per_year == 1 { "once".to_string() } else { format!("{} ({}) times", number_words(a.per_year), a.per_year) },
                "cost": a.cost,
            })),
            "liability": self.liability.as_ref().map(|l| json!({
                "mutual": l.mutual,
                "cap_text": cap_text(l),
                "carve_out": l.phi_carve_out,
                "public_body": l.public_body,
            })),
            "preemption": self.preemption,
            "insurance": self.cyber_insurance.map(|c| json!({"coverage_text": usd(c)})),
            "cure": {"days": self.cure_period_days, "text": days_text(self.cure_period_days)},
            "lds": self.limited_data_set.as_ref().map(|l| json!({"dua_reference": l.dua_reference})),
            "governing_law": {"code": self.governing_law.code(), "name": self.governing_law.name()},
            "security": self.security_controls.map(|y| json!({"log_years_text": years_text(y)})),
            "location": self.data_location,
            "objection": {"days": self.subcontractor_objection_days, "text": days_text(self.subcontractor_objection_days)},
            "costs": {"months": self.credit_monitoring_months, "text": months_text(self.credit_monitoring_months)},
            "part2": self.part2,
            "agency": self.agency,
            "change_in_law": {"days": self.change_in_law_days, "text": days_text(self.change_in_law_days)},
            "small_cell": self.small_cell_minimum,
            "small_cell_text": format!("{} ({})", number_words(self.small_cell_minimum), self.small_cell_minimum),
        })
    }

    /// The provisions as the check report lists them: (tag, name, enabled, parameters).
    pub fn summary(&self) -> Vec<ProvisionRow> {
        use serde_json::json;
        let row = |tag: &'static str, name: &'static str, on: bool, parameters: serde_json::Value| ProvisionRow {
            tag,
            name,
            enabled: on,
            parameters,
            clause: None,
        };
        vec![
            row("P-AUDIT", "Audit and documentation rights", self.audit_rights.is_some(), json!(self.audit_rights)),
            row("P-LIABILITY", "Liability and indemnification", self.liability.is_some(), json!(self.liability)),
            row("P-PREEMPTION", "Preemption and state law", self.preemption, json!({})),
            row(
                "P-INSURANCE",
                "Cyber insurance",
                self.cyber_insurance.is_some(),
                json!({"coverage_usd": self.cyber_insurance}),
            ),
            row("P-CURE", "Cure period before termination", true, json!({"days": self.cure_period_days})),
            row(
                "P-LDS",
                "Limited data set governed by a DUA",
                self.limited_data_set.is_some(),
                json!(self.limited_data_set),
            ),
            row("P-LAW", "Governing law", true, json!({"state": self.governing_law.code()})),
            row("P-NOTICES", "Notices", true, json!({})),
            row(
                "P-SECURITY",
                "Security controls (MFA, encryption, logging, access reviews, testing, incident response)",
                self.security_controls.is_some(),
                json!({"log_retention_years": self.security_controls}),
            ),
            row(
                "P-LOCATION",
                "Data location: PHI stored and accessed only in the United States",
                self.data_location,
                json!({"united_states_only": self.data_location}),
            ),
            row(
                "P-OBJECTION",
                "Right to object to a new subcontractor",
                true,
                json!({"days": self.subcontractor_objection_days}),
            ),
            row(
                "P-COSTS",
                "Breach notification and its costs",
                true,
                json!({"credit_monitoring_months": self.credit_monitoring_months}),
            ),
            row("P-AGENCY", "Independent contractor (or agency)", true, json!({"agent": self.agency})),
            row("P-CHANGE", "Change in law", true, json!({"days_to_amend": self.change_in_law_days})),
            row("P-PART2", "42 CFR Part 2 (substance use disorder records)", self.part2, json!({"part2": self.part2})),
        ]
    }

    /// Text each enabled provision's clause must contain (its parameters as printed).
    pub fn expected_text(&self, tag: &str) -> Vec<String> {
        match tag {
            "P-AUDIT" => self.audit_rights.iter().map(|a| days_text(a.notice_days)).collect(),
            "P-LIABILITY" => self
                .liability
                .iter()
                .map(|l| match l.cap {
                    Cap::MultipleOfFees(m) => multiple_text(m),
                    Cap::AmountUsd(a) => usd(a),
                })
                .collect(),
            "P-INSURANCE" => self.cyber_insurance.iter().map(|c| usd(*c)).collect(),
            "P-CURE" if self.cure_period_days == 0 => vec!["without a cure period".to_string()],
            "P-CURE" => vec![days_text(self.cure_period_days)],
            "P-LAW" => vec![self.governing_law.name().to_string()],
            "P-SECURITY" => self.security_controls.iter().map(|y| years_text(*y)).collect(),
            "P-LOCATION" => vec!["United States".to_string()],
            "P-OBJECTION" => vec![days_text(self.subcontractor_objection_days)],
            "P-COSTS" => vec![months_text(self.credit_monitoring_months)],
            "P-AGENCY" if self.agency => vec!["agent of".to_string()],
            "P-AGENCY" => vec!["independent contractor".to_string()],
            "P-CHANGE" => vec![days_text(self.change_in_law_days)],
            "P-PART2" => vec!["42 CFR Part 2".to_string(), "2.11".to_string()],
            _ => Vec::new(),
        }
    }
}

/// One negotiated provision in the check report.
#[derive(Debug, Clone, Serialize)]
pub struct ProvisionRow {
    pub tag: &'static str,
    pub name: &'static str,
    pub enabled: bool,
    pub parameters: serde_json::Value,
    /// The clause that carries it (`8.2 Liability and Indemnification`), filled by the checker.
    pub clause: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx() -> StateCode {
        StateCode::parse("TX").expect("TX")
    }

    #[test]
    fn the_shipped_policy_parses_and_its_defaults_need_no_approval() {
        let (p, departures) = Provisions::resolve(&ProvisionChoices::default(), Policy::embedded(), tx(), 10);
        assert!(departures.is_empty(), "{departures:?}");
        assert!(p.audit_rights.is_some() && p.liability.is_some() && p.preemption && p.cyber_insurance.is_some());
        assert_eq!(p.governing_law, tx());
        assert!(p.limited_data_set.is_none());
    }

    #[test]
    fn departures_name_the_parameter_and_the_policy_rule() {
        let c = ProvisionChoices {
            liability: Choice::On(LiabilityInput { cap: Some(Cap::MultipleOfFees(1.0)), ..Default::default() }),
            cure_period_days: Some(60),
            governing_law: StateCode::parse("DE").ok(),
            ..Default::default()
        };
        let (_, d) = Provisions::resolve(&c, Policy::embedded(), tx(), 45);
        let pointers: Vec<_> = d.iter().filter_map(|f| f.pointer.as_deref()).collect();
        assert!(pointers.contains(&"/provisions/liability/cap_multiple_of_fees"), "{pointers:?}");
        assert!(pointers.contains(&"/provisions/cure_period_days"));
        assert!(pointers.contains(&"/provisions/governing_law"));
        assert!(pointers.contains(&"/breach_notice_days"));
        assert!(
            d.iter()
                .all(|f| f.level == Level::NeedsApproval
                    && f.element.as_deref().is_some_and(|e| e.starts_with("policy ")))
        );
    }

    #[test]
    fn money_and_multiples_read_as_an_agreement_writes_them() {
        assert_eq!(usd(2_000_000), "US$2,000,000");
        assert_eq!(usd(999), "US$999");
        assert_eq!(multiple_text(2.0), "two (2) times");
        assert_eq!(multiple_text(1.5), "1.5 times");
    }

    #[test]
    fn invalid_policies_are_rejected() {
        let bad = DEFAULT_POLICY.replace("max_days = 30\n", "max_days = 30\nsurprise = 1\n");
        assert!(Policy::from_toml(&bad).is_err());
    }
}
