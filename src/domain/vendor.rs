//! The vendor register: a vendor's identity, its HIPAA role, data flows, due diligence,
//! agreements, subcontractors and obligations, and the rules that turn them into a standing.
//! Pure: no storage, no clock (callers pass `today`).
//!
//! # Role determination (45 CFR 160.103)
//!
//! The questionnaire ([`Answers`]) is decided in this order ([`determine`]):
//! 1. only de-identified information (164.514(a)–(b)) → **not a business associate**: it is not PHI;
//! 2. only a limited data set (164.514(e)) → **DUA needed**: an LDS is still PHI;
//! 3. no PHI created, received, maintained or transmitted for us → **not a business associate**;
//! 4. transport only, no more than transient storage, no routine access → **conduit** (no BAA;
//!    the conduit exception of the 2013 Omnibus Rule preamble);
//! 5. PHI handled while we are ourselves a business associate → **subcontractor** (160.103);
//! 6. otherwise → **business associate** (160.103).
//!
//! # Risk tier ([`computed_tier`])
//!
//! No PHI flowing (no categories, no limited data set, no Part 2 records) → low. Otherwise the
//! volume band sets the start: `high` (50,000 or more individuals a year) → high, `medium`
//! (500–49,999) or not yet known → medium, `low` (under 500) → low. Then one step up (at most
//! high) when any data location is outside the US or a sensitive category flows
//! ([`SENSITIVE`]); 42 CFR Part 2 records make it high. An override with a reason replaces the
//! computed tier (both are kept).
//!
//! # Reassessment
//!
//! Due `months` after the last assessment (or after the record was created), by tier
//! ([`ReassessPolicy`]: high 12, medium 24, low 36 months by default).

use serde::{Deserialize, Serialize};

use super::findings::Finding;
use super::intake::{Date, Email};

/// Categories that move the tier one step up.
pub const SENSITIVE: &[&str] =
    &["mental_health", "substance_use", "hiv", "genetic", "reproductive_health", "psychotherapy_notes"];

/// A vendor's record as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vendor {
    /// `v` + 16 hex digits.
    pub id: String,
    /// Starts at 1; each stored change is one more (the store refuses a stale write).
    pub revision: u64,
    pub legal_name: String,
    #[serde(default)]
    pub other_names: Vec<String>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub website: Option<String>,
    /// The staff person who owns the relationship (email).
    #[serde(default)]
    pub account_owner: Option<String>,
    #[serde(default)]
    pub privacy_contact: Option<Contact>,
    #[serde(default)]
    pub security_contact: Option<Contact>,
    /// None until the questionnaire is answered.
    #[serde(default)]
    pub determination: Option<Determination>,
    #[serde(default)]
    pub data_flows: DataFlows,
    #[serde(default)]
    pub documents: Vec<VendorDocument>,
    #[serde(default)]
    pub findings: Vec<OpenFinding>,
    #[serde(default)]
    pub tier_override: Option<TierOverride>,
    /// Countersign agreements with this vendor (ids).
    #[serde(default)]
    pub agreements: Vec<String>,
    /// Agreements on the vendor's own paper.
    #[serde(default)]
    pub papers: Vec<VendorPaper>,
    #[serde(default)]
    pub subcontractors: Vec<Subcontractor>,
    /// YYYY-MM-DD of the last completed reassessment.
    #[serde(default)]
    pub last_assessed: Option<String>,
    pub created_at: u64,
    pub created_by: String,
    pub updated_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub name: String,
    pub email: String,
}

/// The questionnaire's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answers {
    /// Does the vendor create, receive, maintain or transmit PHI for us?
    pub handles_phi: bool,
    /// Does it only transport PHI (no more than transient storage, no routine access)?
    pub transmission_only: bool,
    /// Does it receive only de-identified information?
    pub deidentified_only: bool,
    /// Does it receive only a limited data set?
    pub limited_data_set_only: bool,
    /// Do we hold this PHI as a business associate of another covered entity?
    pub we_are_business_associate: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    BusinessAssociate,
    Subcontractor,
    Conduit,
    NotBusinessAssociate,
    DuaNeeded,
}

impl Role {
    pub const ALL: [Role; 5] =
        [Role::BusinessAssociate, Role::Subcontractor, Role::DuaNeeded, Role::Conduit, Role::NotBusinessAssociate];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::BusinessAssociate => "business_associate",
            Role::Subcontractor => "subcontractor",
            Role::Conduit => "conduit",
            Role::NotBusinessAssociate => "not_business_associate",
            Role::DuaNeeded => "dua_needed",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::BusinessAssociate => "Business associate",
            Role::Subcontractor => "Subcontractor",
            Role::Conduit => "Conduit (no BAA needed)",
            Role::NotBusinessAssociate => "Not a business associate",
            Role::DuaNeeded => "DUA needed",
        }
    }

    /// The agreement kind the vendor must have executed (`baa` or `dua`), if any.
    pub fn requires(self) -> Option<&'static str> {
        match self {
            Role::BusinessAssociate | Role::Subcontractor => Some("baa"),
            Role::DuaNeeded => Some("dua"),
            Role::Conduit | Role::NotBusinessAssociate => None,
        }
    }
}

/// The questionnaire's outcome, with who answered and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Determination {
    pub role: Role,
    pub reason: String,
    pub citation: String,
    pub answers: Answers,
    pub answered_by: String,
    pub answered_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Volume {
    /// Under 500 individuals a year.
    Low,
    /// 500–49,999.
    Medium,
    /// 50,000 or more.
    High,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Low,
    Medium,
    High,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::High, Tier::Medium, Tier::Low];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Low => "low",
            Tier::Medium => "medium",
            Tier::High => "high",
        }
    }

    fn up(self) -> Tier {
        match self {
            Tier::Low => Tier::Medium,
            _ => Tier::High,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
    /// US state code where a state law attaches.
    #[serde(default)]
    pub state: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataFlows {
    #[serde(default)]
    pub phi_categories: Vec<String>,
    #[serde(default)]
    pub systems: Vec<String>,
    #[serde(default)]
    pub locations: Vec<Location>,
    #[serde(default)]
    pub volume: Option<Volume>,
    #[serde(default)]
    pub limited_data_set: bool,
    /// 42 CFR Part 2 (substance use disorder) records.
    #[serde(default)]
    pub part2: bool,
}

impl DataFlows {
    /// PHI flows to the vendor.
    pub fn phi_flowing(&self) -> bool {
        !self.phi_categories.is_empty() || self.limited_data_set || self.part2
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    Soc2Type2,
    Hitrust,
    Iso27001,
    PenTestSummary,
    SecurityQuestionnaire,
    InsuranceCertificate,
}

impl DocKind {
    pub fn label(self) -> &'static str {
        match self {
            DocKind::Soc2Type2 => "SOC 2 Type II report",
            DocKind::Hitrust => "HITRUST certification",
            DocKind::Iso27001 => "ISO 27001 certificate",
            DocKind::PenTestSummary => "Penetration-test summary",
            DocKind::SecurityQuestionnaire => "Security questionnaire",
            DocKind::InsuranceCertificate => "Insurance certificate",
        }
    }

    pub fn parse(s: &str) -> Option<DocKind> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

/// A due-diligence document; its bytes are stored content-addressed by SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VendorDocument {
    pub kind: DocKind,
    pub sha256: String,
    pub bytes: u64,
    #[serde(default)]
    pub issued: Option<String>,
    #[serde(default)]
    pub expires: Option<String>,
    pub uploaded_by: String,
    pub uploaded_at: u64,
}

/// An open (or closed) due-diligence finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenFinding {
    pub title: String,
    pub owner: String,
    #[serde(default)]
    pub due: Option<String>,
    #[serde(default)]
    pub closed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierOverride {
    pub tier: Tier,
    pub reason: String,
    pub by: String,
    pub at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subcontractor {
    pub name: String,
    #[serde(default)]
    pub services: Option<String>,
    #[serde(default)]
    pub downstream_baa_confirmed: bool,
}

/// An executed agreement on the vendor's own paper: a vendor document, not an agreement
/// executed in Countersign (no signing state, no audit chain of its own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VendorPaper {
    pub sha256: String,
    pub bytes: u64,
    pub terms: PaperTerms,
    pub uploaded_by: String,
    pub uploaded_at: u64,
}

/// The key terms recorded from a vendor-paper agreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaperTerms {
    /// `baa`, `dua` or `subcontractor_baa`.
    pub kind: String,
    pub title: String,
    pub effective_date: String,
    #[serde(default)]
    pub term_months: Option<u16>,
    #[serde(default)]
    pub auto_renew: bool,
    #[serde(default)]
    pub breach_notice_days: Option<u16>,
    /// `return`, `destroy` or `return_or_destroy`.
    #[serde(default)]
    pub return_or_destroy: Option<String>,
    /// Days of notice to stop a renewal (default 30).
    #[serde(default)]
    pub notice_days: Option<u16>,
}

/// Reassessment intervals by tier, in months.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReassessPolicy {
    pub high_months: u32,
    pub medium_months: u32,
    pub low_months: u32,
}

impl Default for ReassessPolicy {
    fn default() -> Self {
        ReassessPolicy { high_months: 12, medium_months: 24, low_months: 36 }
    }
}

impl ReassessPolicy {
    pub fn months(&self, t: Tier) -> u32 {
        match t {
            Tier::High => self.high_months,
            Tier::Medium => self.medium_months,
            Tier::Low => self.low_months,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Input: parse, don't validate.
// ---------------------------------------------------------------------------------------------

/// A create or update body as sent: every section optional (a create needs `legal_name`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorInput {
    pub legal_name: Option<String>,
    pub other_names: Option<Vec<String>>,
    pub address: Option<String>,
    pub website: Option<String>,
    pub account_owner: Option<String>,
    pub privacy_contact: Option<Contact>,
    pub security_contact: Option<Contact>,
    pub data_flows: Option<DataFlows>,
    pub findings: Option<Vec<OpenFinding>>,
    pub subcontractors: Option<Vec<Subcontractor>>,
    /// `{"tier", "reason"}`, or `null` to remove an override.
    #[serde(default, deserialize_with = "some_nullable")]
    pub tier_override: Option<Option<OverrideInput>>,
    pub last_assessed: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideInput {
    pub tier: Tier,
    pub reason: String,
}

fn some_nullable<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The questionnaire as sent: `handles_phi` is required, the rest default to `false`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswersInput {
    pub handles_phi: Option<bool>,
    #[serde(default)]
    pub transmission_only: bool,
    #[serde(default)]
    pub deidentified_only: bool,
    #[serde(default)]
    pub limited_data_set_only: bool,
    #[serde(default)]
    pub we_are_business_associate: bool,
}

/// Collects findings while checking.
struct Check(Vec<Finding>);

impl Check {
    fn err(&mut self, pointer: impl Into<String>, reason: impl Into<String>) {
        self.0.push(Finding::field(pointer, reason));
    }

    fn text(&mut self, pointer: &str, v: &str, max: usize) -> String {
        let t = v.trim();
        if t.is_empty() {
            self.err(pointer, "must not be empty");
        } else if t.chars().count() > max {
            self.err(pointer, format!("at most {max} characters"));
        } else if t.chars().any(char::is_control) {
            self.err(pointer, "must not contain control characters");
        }
        t.to_string()
    }

    fn email(&mut self, pointer: &str, v: &str) -> String {
        match Email::parse(v.trim()) {
            Ok(e) => e.as_str().to_string(),
            Err(why) => {
                self.err(pointer, why);
                v.to_string()
            }
        }
    }

    fn date(&mut self, pointer: &str, v: &str) -> Option<Date> {
        match Date::parse(v.trim()) {
            Ok(d) => Some(d),
            Err(why) => {
                self.err(pointer, why);
                None
            }
        }
    }

    fn contact(&mut self, pointer: &str, c: &Contact) -> Contact {
        Contact {
            name: self.text(&format!("{pointer}/name"), &c.name, 200),
            email: self.email(&format!("{pointer}/email"), &c.email),
        }
    }
}

/// Checks an input against the record (`create`: `legal_name` is required) and applies it to a
/// copy. Returns the new record and the names of the sections that changed, or every problem
/// at once with its JSON pointer. Nothing changes unless everything is valid.
pub fn apply(
    current: &Vendor,
    input: VendorInput,
    create: bool,
    who: &str,
    now: u64,
) -> Result<(Vendor, Vec<&'static str>), Vec<Finding>> {
    let mut c = Check(Vec::new());
    let mut v = current.clone();
    let mut changed = Vec::new();
    match &input.legal_name {
        Some(n) => {
            v.legal_name = c.text("/legal_name", n, 200);
            changed.push("identity");
        }
        None if create => c.err("/legal_name", "required: the vendor's legal name"),
        None => {}
    }
    if let Some(names) = &input.other_names {
        v.other_names = names.iter().enumerate().map(|(i, n)| c.text(&format!("/other_names/{i}"), n, 200)).collect();
        changed.push("identity");
    }
    if let Some(a) = &input.address {
        v.address = Some(c.text("/address", a, 500));
        changed.push("identity");
    }
    if let Some(w) = &input.website {
        let w = c.text("/website", w, 300);
        if !(w.starts_with("https://") || w.starts_with("http://")) || w.contains(char::is_whitespace) {
            c.err("/website", "must be an http:// or https:// address");
        }
        v.website = Some(w);
        changed.push("identity");
    }
    if let Some(o) = &input.account_owner {
        v.account_owner = Some(c.email("/account_owner", o));
        changed.push("identity");
    }
    if let Some(p) = &input.privacy_contact {
        v.privacy_contact = Some(c.contact("/privacy_contact", p));
        changed.push("identity");
    }
    if let Some(p) = &input.security_contact {
        v.security_contact = Some(c.contact("/security_contact", p));
        changed.push("identity");
    }
    if let Some(f) = &input.data_flows {
        let mut f = f.clone();
        for (i, cat) in f.phi_categories.iter_mut().enumerate() {
            *cat = c.text(&format!("/data_flows/phi_categories/{i}"), cat, 100).to_lowercase().replace([' ', '-'], "_");
        }
        for (i, s) in f.systems.iter_mut().enumerate() {
            *s = c.text(&format!("/data_flows/systems/{i}"), s, 200);
        }
        for (i, l) in f.locations.iter_mut().enumerate() {
            let p = format!("/data_flows/locations/{i}");
            l.country = l.country.trim().to_ascii_uppercase();
            if l.country.len() != 2 || !l.country.bytes().all(|b| b.is_ascii_uppercase()) {
                c.err(format!("{p}/country"), "an ISO 3166-1 alpha-2 country code, e.g. US");
            }
            if let Some(s) = &l.state {
                let s = s.trim().to_ascii_uppercase();
                if l.country != "US" {
                    c.err(format!("{p}/state"), "a state is recorded only for locations in the US");
                } else if super::states::StateCode::parse(&s).is_err() {
                    c.err(format!("{p}/state"), "not a US state code");
                }
                l.state = Some(s);
            }
        }
        v.data_flows = f;
        changed.push("data_flows");
    }
    if let Some(fs) = &input.findings {
        v.findings = fs
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let due = f.due.as_ref().map(|d| {
                    c.date(&format!("/findings/{i}/due"), d);
                    d.trim().to_string()
                });
                OpenFinding {
                    title: c.text(&format!("/findings/{i}/title"), &f.title, 300),
                    owner: c.text(&format!("/findings/{i}/owner"), &f.owner, 200),
                    due,
                    closed: f.closed,
                }
            })
            .collect();
        changed.push("findings");
    }
    if let Some(ss) = &input.subcontractors {
        v.subcontractors = ss
            .iter()
            .enumerate()
            .map(|(i, s)| Subcontractor {
                name: c.text(&format!("/subcontractors/{i}/name"), &s.name, 200),
                services: s.services.as_ref().map(|x| c.text(&format!("/subcontractors/{i}/services"), x, 300)),
                downstream_baa_confirmed: s.downstream_baa_confirmed,
            })
            .collect();
        changed.push("subcontractors");
    }
    if let Some(o) = &input.tier_override {
        v.tier_override = o.as_ref().map(|o| TierOverride {
            tier: o.tier,
            reason: c.text("/tier_override/reason", &o.reason, 500),
            by: who.to_string(),
            at: now,
        });
        changed.push("risk");
    }
    if let Some(d) = &input.last_assessed {
        c.date("/last_assessed", d);
        v.last_assessed = Some(d.trim().to_string());
        changed.push("reassessment");
    }
    if !c.0.is_empty() {
        return Err(c.0);
    }
    changed.dedup();
    Ok((v, changed))
}

/// The questionnaire's answers, checked: `handles_phi` is required and at most one of the
/// "only" answers may be true.
pub fn parse_answers(input: &AnswersInput) -> Result<Answers, Vec<Finding>> {
    let mut c = Check(Vec::new());
    if input.handles_phi.is_none() {
        c.err("/handles_phi", "required: does the vendor create, receive, maintain or transmit PHI for us?");
    }
    let only = [
        ("/transmission_only", input.transmission_only),
        ("/deidentified_only", input.deidentified_only),
        ("/limited_data_set_only", input.limited_data_set_only),
    ];
    let mut seen = None;
    for (p, on) in only {
        if !on {
            continue;
        }
        match seen {
            None => seen = Some(p),
            Some(first) => c.err(p, format!("contradicts {first}: answer at most one of the \"only\" questions")),
        }
    }
    if !c.0.is_empty() {
        return Err(c.0);
    }
    Ok(Answers {
        handles_phi: input.handles_phi.unwrap_or(false),
        transmission_only: input.transmission_only,
        deidentified_only: input.deidentified_only,
        limited_data_set_only: input.limited_data_set_only,
        we_are_business_associate: input.we_are_business_associate,
    })
}

/// The role the answers give, with the reason and the citation (see the module documentation).
pub fn determine(a: &Answers) -> (Role, &'static str, &'static str) {
    if a.deidentified_only {
        return (
            Role::NotBusinessAssociate,
            "The vendor receives only information de-identified under 164.514(b), which is not protected health \
             information: it is not a business associate and needs no BAA.",
            "45 CFR 160.103 (protected health information); 164.514(a)–(b); 164.502(d)(2)",
        );
    }
    if a.limited_data_set_only {
        return (
            Role::DuaNeeded,
            "The vendor receives only a limited data set, which is still PHI: a data use agreement meeting \
             164.514(e)(4) is required before it is disclosed (for a business associate using it for our health \
             care operations, the DUA satisfies 164.504(e)).",
            "45 CFR 164.514(e)(3)–(4); 164.504(e)(3)(iv); 160.103",
        );
    }
    if !a.handles_phi {
        return (
            Role::NotBusinessAssociate,
            "The vendor does not create, receive, maintain or transmit PHI for us: it is not a business associate.",
            "45 CFR 160.103 (business associate)",
        );
    }
    if a.transmission_only {
        return (
            Role::Conduit,
            "The vendor only transports PHI, with no more than transient storage and no routine access: a mere \
             conduit is not a business associate and needs no BAA. A vendor that stores PHI, even encrypted, is \
             not a conduit.",
            "45 CFR 160.103 (business associate); conduit exception, 78 Fed. Reg. 5566, 5571–72 (Jan. 25, 2013)",
        );
    }
    if a.we_are_business_associate {
        return (
            Role::Subcontractor,
            "We hold this PHI as a business associate and the vendor handles it on our behalf: it is a \
             subcontractor, itself a business associate, and needs a subcontractor BAA with the same terms.",
            "45 CFR 160.103 (subcontractor; business associate, paragraph (3)(iii)); 164.502(e)(1)(ii); 164.504(e)(5)",
        );
    }
    (
        Role::BusinessAssociate,
        "The vendor creates, receives, maintains or transmits PHI on our behalf: it is a business associate and \
         needs an executed BAA before PHI flows.",
        "45 CFR 160.103 (business associate, paragraph (1)); 164.502(e); 164.504(e)",
    )
}

/// The tier the data flows give (see the module documentation).
pub fn computed_tier(f: &DataFlows) -> Tier {
    if !f.phi_flowing() {
        return Tier::Low;
    }
    if f.part2 {
        return Tier::High;
    }
    let base = match f.volume {
        Some(Volume::High) => Tier::High,
        Some(Volume::Low) => Tier::Low,
        Some(Volume::Medium) | None => Tier::Medium,
    };
    let abroad = f.locations.iter().any(|l| l.country != "US");
    let sensitive = f.phi_categories.iter().any(|c| SENSITIVE.contains(&c.as_str()));
    if abroad || sensitive { base.up() } else { base }
}

/// Unix seconds → calendar date (UTC).
pub fn date_of(secs: u64) -> Date {
    Date::from_unix(secs)
}

fn add_days(d: Date, days: i64) -> Date {
    date_of(u64::try_from((d.days_since_epoch() + days).max(0)).unwrap_or(0) * 86_400)
}

/// An agreement with this vendor, as the obligations register needs it: a Countersign
/// agreement (from its record and intake) or a vendor-paper one (from its recorded terms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgreementTerms {
    /// The agreement id, or `paper:<sha256>`.
    pub source: String,
    pub title: String,
    /// `baa`, `dua`, `subcontractor_baa`.
    pub kind: String,
    /// `executed`, or the Countersign status (`draft`, `sent`, …); vendor paper is `executed`.
    pub status: String,
    pub vendor_paper: bool,
    pub effective: Option<Date>,
    pub term_months: Option<u16>,
    pub auto_renew: bool,
    pub breach_notice_days: Option<u32>,
    /// (notice days, audits per year).
    pub audit: Option<(u32, u32)>,
    pub return_or_destroy: Option<String>,
    pub notice_days: u16,
    /// Required cyber insurance (US$), when the agreement has the provision.
    pub cyber_insurance: Option<u64>,
    /// The date the agreement ended (terminated), if it did.
    pub ended: Option<Date>,
}

impl AgreementTerms {
    pub fn from_paper(p: &VendorPaper) -> AgreementTerms {
        let t = &p.terms;
        AgreementTerms {
            source: format!("paper:{}", p.sha256),
            title: t.title.clone(),
            kind: t.kind.clone(),
            status: "executed".into(),
            vendor_paper: true,
            effective: Date::parse(&t.effective_date).ok(),
            term_months: t.term_months,
            auto_renew: t.auto_renew,
            breach_notice_days: t.breach_notice_days.map(u32::from),
            audit: None,
            return_or_destroy: t.return_or_destroy.clone(),
            notice_days: t.notice_days.unwrap_or(30),
            cyber_insurance: None,
            ended: None,
        }
    }

    fn executed(&self) -> bool {
        self.status == "executed" && self.ended.is_none()
    }

    fn covers(&self, kind: &str) -> bool {
        match kind {
            "baa" => self.kind == "baa" || self.kind == "subcontractor_baa",
            k => self.kind == k,
        }
    }

    /// The next date (≥ today) the term renews or ends, and whether it renews.
    fn next_term_date(&self, today: Date) -> Option<(Date, bool)> {
        let (eff, months) = (self.effective?, u32::from(self.term_months?));
        if months == 0 {
            return None;
        }
        let mut end = eff.add_months(months);
        if self.auto_renew {
            let mut k = 1;
            while end < today && k < 1200 {
                k += 1;
                end = eff.add_months(months * k);
            }
        }
        Some((end, self.auto_renew))
    }
}

/// One entry of the obligations register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Obligation {
    /// `breach_notice`, `audit_window`, `renewal`, `renewal_notice`, `term_end`,
    /// `return_or_destroy`, `insurance_renewal`.
    pub kind: &'static str,
    pub description: String,
    pub due: Option<String>,
    /// The agreement (or document) it comes from.
    pub source: String,
}

/// The obligations derived from the executed agreements' own parameters, and the insurance
/// certificates on file.
pub fn obligations(v: &Vendor, terms: &[AgreementTerms], today: Date) -> Vec<Obligation> {
    let mut out = Vec::new();
    let contact = v
        .privacy_contact
        .as_ref()
        .or(v.security_contact.as_ref())
        .map(|c| format!("{} <{}>", c.name, c.email))
        .unwrap_or_else(|| "the vendor's privacy contact (not recorded yet)".into());
    for t in terms.iter().filter(|t| t.executed()) {
        let src = t.source.clone();
        if let Some(days) = t.breach_notice_days {
            out.push(Obligation {
                kind: "breach_notice",
                description: format!(
                    "{} must report a breach of unsecured PHI within {days} days of discovery (45 CFR 164.410; {}). Contact: {contact}.",
                    v.legal_name, t.title
                ),
                due: None,
                source: src.clone(),
            });
        }
        if let (Some((notice, per_year)), Some(eff)) = (t.audit, t.effective) {
            let mut window_end = eff.add_months(12);
            let mut k = 1;
            while window_end < today && k < 1200 {
                k += 1;
                window_end = eff.add_months(12 * k);
            }
            out.push(Obligation {
                kind: "audit_window",
                description: format!(
                    "We may audit {per_year} time(s) a contract year on {notice} days' notice; this year's window closes on {}.",
                    window_end.long()
                ),
                due: Some(window_end.to_string()),
                source: src.clone(),
            });
        }
        if let Some((date, renews)) = t.next_term_date(today) {
            if renews {
                let notice = add_days(date, -i64::from(t.notice_days));
                out.push(Obligation {
                    kind: "renewal",
                    description: format!("{} renews on {}.", t.title, date.long()),
                    due: Some(date.to_string()),
                    source: src.clone(),
                });
                out.push(Obligation {
                    kind: "renewal_notice",
                    description: format!(
                        "Give notice by {} ({} days before) to stop the renewal of {}.",
                        notice.long(),
                        t.notice_days,
                        t.title
                    ),
                    due: Some(notice.to_string()),
                    source: src.clone(),
                });
            } else {
                out.push(Obligation {
                    kind: "term_end",
                    description: format!("{} ends on {}.", t.title, date.long()),
                    due: Some(date.to_string()),
                    source: src.clone(),
                });
            }
            let how = t.return_or_destroy.as_deref().unwrap_or("return_or_destroy").replace('_', " ");
            out.push(Obligation {
                kind: "return_or_destroy",
                description: format!(
                    "At termination the vendor must {how} all PHI and keep no copies, or extend protections where that is infeasible (45 CFR 164.504(e)(2)(ii)(J)).",
                ),
                due: (!renews).then(|| date.to_string()),
                source: src.clone(),
            });
        } else if t.return_or_destroy.is_some() || t.kind.contains("baa") {
            out.push(Obligation {
                kind: "return_or_destroy",
                description: "At termination the vendor must return or destroy all PHI and keep no copies (45 CFR 164.504(e)(2)(ii)(J)).".into(),
                due: None,
                source: src.clone(),
            });
        }
        if let Some(usd) = t.cyber_insurance {
            out.push(Obligation {
                kind: "insurance_required",
                description: format!(
                    "{} requires cyber insurance of at least US${usd}: keep a current certificate on file.",
                    t.title
                ),
                due: None,
                source: src.clone(),
            });
        }
    }
    for d in v.documents.iter().filter(|d| d.kind == DocKind::InsuranceCertificate) {
        if let Some(exp) = d.expires.as_deref().and_then(|e| Date::parse(e).ok()) {
            out.push(Obligation {
                kind: "insurance_renewal",
                description: format!(
                    "The insurance certificate on file expires on {}: ask for the renewal.",
                    exp.long()
                ),
                due: Some(exp.to_string()),
                source: format!("document:{}", d.sha256),
            });
        }
    }
    out
}

/// Something about a vendor that needs attention, and the day it became true.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    /// `missing_agreement`, `document_expired`, `document_expiring`, `soc2_stale`,
    /// `reassessment_due`, `finding_overdue`, `subcontractor_unconfirmed`.
    pub code: &'static str,
    pub message: String,
    pub since: String,
}

/// Whether the required agreement is in place: `executed`, `in_progress`, `missing`, or
/// `not_required` (no determination yet, or a role that needs none).
pub fn agreement_status(v: &Vendor, terms: &[AgreementTerms]) -> &'static str {
    let Some(kind) = v.determination.as_ref().and_then(|d| d.role.requires()) else { return "not_required" };
    if terms.iter().any(|t| t.covers(kind) && t.executed()) {
        "executed"
    } else if terms.iter().any(|t| {
        t.covers(kind) && !matches!(t.status.as_str(), "voided" | "declined" | "expired" | "terminated" | "closed")
    }) {
        "in_progress"
    } else {
        "missing"
    }
}

/// A vendor's standing today: tier, reassessment, agreement status, flags and obligations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Standing {
    pub tier: Tier,
    pub computed_tier: Tier,
    pub next_reassessment: String,
    pub reassessment_due: bool,
    pub baa_status: &'static str,
    pub flags: Vec<Flag>,
    pub obligations: Vec<Obligation>,
}

/// The date the next reassessment falls due.
pub fn next_reassessment(v: &Vendor, tier: Tier, policy: &ReassessPolicy) -> Date {
    let from = v.last_assessed.as_deref().and_then(|d| Date::parse(d).ok()).unwrap_or_else(|| date_of(v.created_at));
    from.add_months(policy.months(tier))
}

pub fn standing(v: &Vendor, terms: &[AgreementTerms], today: Date, policy: &ReassessPolicy) -> Standing {
    let computed = computed_tier(&v.data_flows);
    let tier = v.tier_override.as_ref().map_or(computed, |o| o.tier);
    let next = next_reassessment(v, tier, policy);
    let status = agreement_status(v, terms);
    let mut flags = Vec::new();
    if let (Some(d), "missing" | "in_progress") = (&v.determination, status)
        && (v.data_flows.phi_flowing() || d.role == Role::DuaNeeded)
    {
        let kind = d.role.requires().unwrap_or("baa").to_uppercase();
        flags.push(Flag {
            code: "missing_agreement",
            message: format!(
                "{}: PHI flows to this vendor and no executed {kind} is on file ({}).",
                d.role.label(),
                if status == "in_progress" { "one is in progress" } else { "none started" }
            ),
            since: date_of(d.answered_at).to_string(),
        });
    }
    if next <= today {
        flags.push(Flag {
            code: "reassessment_due",
            message: format!("The {} reassessment was due on {}.", tier.as_str(), next.long()),
            since: next.to_string(),
        });
    }
    let latest_soc2 = v
        .documents
        .iter()
        .filter(|d| d.kind == DocKind::Soc2Type2)
        .filter_map(|d| d.issued.as_deref().and_then(|i| Date::parse(i).ok()))
        .max();
    if let Some(issued) = latest_soc2 {
        let stale = issued.add_months(12);
        if stale <= today {
            flags.push(Flag {
                code: "soc2_stale",
                message: format!(
                    "The latest SOC 2 Type II report was issued on {}: more than 12 months ago.",
                    issued.long()
                ),
                since: stale.to_string(),
            });
        }
    }
    for d in &v.documents {
        let Some(exp) = d.expires.as_deref().and_then(|e| Date::parse(e).ok()) else { continue };
        if exp <= today {
            flags.push(Flag {
                code: "document_expired",
                message: format!("{} expired on {}.", d.kind.label(), exp.long()),
                since: exp.to_string(),
            });
        } else if add_days(exp, -30) <= today {
            flags.push(Flag {
                code: "document_expiring",
                message: format!("{} expires on {}.", d.kind.label(), exp.long()),
                since: add_days(exp, -30).to_string(),
            });
        }
    }
    for f in v.findings.iter().filter(|f| !f.closed) {
        if let Some(due) = f.due.as_deref().and_then(|d| Date::parse(d).ok())
            && due < today
        {
            flags.push(Flag {
                code: "finding_overdue",
                message: format!("Finding \"{}\" (owner {}) was due on {}.", f.title, f.owner, due.long()),
                since: add_days(due, 1).to_string(),
            });
        }
    }
    for s in v.subcontractors.iter().filter(|s| !s.downstream_baa_confirmed) {
        flags.push(Flag {
            code: "subcontractor_unconfirmed",
            message: format!("Subcontractor {}: its downstream BAA is not confirmed.", s.name),
            since: date_of(v.updated_at).to_string(),
        });
    }
    Standing {
        tier,
        computed_tier: computed,
        next_reassessment: next.to_string(),
        reassessment_due: next <= today,
        baa_status: status,
        flags,
        obligations: obligations(v, terms, today),
    }
}

// ---------------------------------------------------------------------------------------------
// The executive report.
// ---------------------------------------------------------------------------------------------

/// One row of the register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegisterRow {
    pub id: String,
    pub name: String,
    /// The role (`business_associate`, …) or `undetermined`.
    pub determination: String,
    pub tier: Tier,
    pub baa_status: String,
    pub next_reassessment: String,
}

/// The executive report's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub as_of: String,
    pub vendors: usize,
    pub rows: Vec<RegisterRow>,
    /// (tier, count), high first.
    pub by_tier: Vec<(String, usize)>,
    /// (determination, count), including `undetermined`.
    pub by_determination: Vec<(String, usize)>,
    /// Business associates and subcontractors.
    pub business_associates: usize,
    /// Of those, without an executed BAA.
    pub business_associates_without_baa: usize,
    pub overdue_reassessments: usize,
    pub overdue_findings: usize,
    pub expiring_documents: usize,
    pub renewing_90_days: usize,
    pub unconfirmed_subcontractors: usize,
}

/// The report over every vendor's record and standing.
pub fn report(vendors: &[(&Vendor, &Standing)], today: Date) -> Report {
    let mut rows: Vec<RegisterRow> = vendors
        .iter()
        .map(|(v, s)| RegisterRow {
            id: v.id.clone(),
            name: v.legal_name.clone(),
            determination: v.determination.as_ref().map_or("undetermined", |d| d.role.as_str()).to_string(),
            tier: s.tier,
            baa_status: s.baa_status.to_string(),
            next_reassessment: s.next_reassessment.clone(),
        })
        .collect();
    rows.sort_by(|a, b| fold(&a.name).cmp(&fold(&b.name)).then_with(|| a.id.cmp(&b.id)));
    let count = |f: &dyn Fn(&Vendor, &Standing) -> bool| vendors.iter().filter(|(v, s)| f(v, s)).count();
    let by_tier = Tier::ALL.iter().map(|t| (t.as_str().to_string(), count(&|_, s| s.tier == *t))).collect();
    let mut by_determination: Vec<(String, usize)> = Role::ALL
        .iter()
        .map(|r| (r.as_str().to_string(), count(&|v, _| v.determination.as_ref().is_some_and(|d| d.role == *r))))
        .collect();
    by_determination.push(("undetermined".into(), count(&|v, _| v.determination.is_none())));
    let sum = |figure: &str| vendors.iter().map(|(v, s)| counts_toward(figure, v, s, today)).sum::<usize>();
    Report {
        as_of: today.to_string(),
        vendors: vendors.len(),
        rows,
        by_tier,
        by_determination,
        business_associates: sum("business_associates"),
        business_associates_without_baa: sum("business_associates_without_baa"),
        overdue_reassessments: sum("overdue_reassessments"),
        overdue_findings: sum("overdue_findings"),
        expiring_documents: sum("expiring_documents"),
        renewing_90_days: sum("renewing_90_days"),
        unconfirmed_subcontractors: sum("unconfirmed_subcontractors"),
    }
}

/// The report's figures that can select vendors (the vendor list's `figure` filter and the
/// dashboard's links), besides tier and determination.
pub const FIGURES: [&str; 7] = [
    "business_associates",
    "business_associates_without_baa",
    "overdue_reassessments",
    "overdue_findings",
    "expiring_documents",
    "renewing_90_days",
    "unconfirmed_subcontractors",
];

/// How much one vendor adds to a figure of the report (0 when it is not counted): the one
/// definition behind the report, the dashboard and the vendor list's `figure` filter, so a
/// figure's link lists exactly the vendors it counts.
pub fn counts_toward(figure: &str, v: &Vendor, s: &Standing, today: Date) -> usize {
    let ba = v.determination.as_ref().is_some_and(|d| d.role.requires() == Some("baa"));
    let flags = |codes: &[&str]| s.flags.iter().filter(|f| codes.contains(&f.code)).count();
    let horizon = add_days(today, 90);
    let within = |o: &Obligation| {
        matches!(o.kind, "renewal" | "term_end")
            && o.due.as_deref().and_then(|d| Date::parse(d).ok()).is_some_and(|d| d >= today && d <= horizon)
    };
    match figure {
        "business_associates" => usize::from(ba),
        "business_associates_without_baa" => usize::from(ba && s.baa_status != "executed"),
        "overdue_reassessments" => usize::from(s.reassessment_due),
        "overdue_findings" => flags(&["finding_overdue"]),
        "expiring_documents" => flags(&["document_expired", "document_expiring", "soc2_stale"]),
        "renewing_90_days" => usize::from(s.obligations.iter().any(within)),
        "unconfirmed_subcontractors" => flags(&["subcontractor_unconfirmed"]),
        _ => 0,
    }
}

impl Report {
    /// The summary figures as (name, value), in the order the CSV and PDF print them.
    pub fn figures(&self) -> Vec<(String, usize)> {
        let mut out = vec![("vendors".to_string(), self.vendors)];
        out.extend(self.by_tier.iter().map(|(t, n)| (format!("tier_{t}"), *n)));
        out.extend(self.by_determination.iter().map(|(d, n)| (format!("determination_{d}"), *n)));
        out.extend([
            ("business_associates".to_string(), self.business_associates),
            ("business_associates_without_baa".to_string(), self.business_associates_without_baa),
            ("overdue_reassessments".to_string(), self.overdue_reassessments),
            ("overdue_findings".to_string(), self.overdue_findings),
            ("expiring_documents".to_string(), self.expiring_documents),
            ("renewing_90_days".to_string(), self.renewing_90_days),
            ("unconfirmed_subcontractors".to_string(), self.unconfirmed_subcontractors),
        ]);
        out
    }

    /// The register, then a blank line, then `figure,value` rows.
    pub fn to_csv(&self) -> String {
        let mut s = String::from("id,name,determination,tier,baa_status,next_reassessment\n");
        for r in &self.rows {
            s.push_str(&format!(
                "{},{},{},{},{},{}\n",
                csv_cell(&r.id),
                csv_cell(&r.name),
                r.determination,
                r.tier.as_str(),
                r.baa_status,
                r.next_reassessment
            ));
        }
        s.push_str("\nfigure,value\n");
        for (k, v) in self.figures() {
            s.push_str(&format!("{k},{v}\n"));
        }
        s
    }
}

pub use super::fold::fold;

/// A CSV cell: quoted when needed, and a leading `= + - @` neutralised (spreadsheet formulas).
pub fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.to_string() };
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vendor() -> Vendor {
        Vendor {
            id: "v1".into(),
            revision: 1,
            legal_name: "Acme Cloud".into(),
            other_names: vec![],
            address: None,
            website: None,
            account_owner: None,
            privacy_contact: None,
            security_contact: None,
            determination: None,
            data_flows: DataFlows::default(),
            documents: vec![],
            findings: vec![],
            tier_override: None,
            agreements: vec![],
            papers: vec![],
            subcontractors: vec![],
            last_assessed: None,
            created_at: 1_799_064_000, // 2027-01-04
            created_by: "a@example.com".into(),
            updated_at: 1_799_064_000,
        }
    }

    fn d(s: &str) -> Date {
        Date::parse(s).expect("date")
    }

    fn answers(handles_phi: bool) -> Answers {
        Answers {
            handles_phi,
            transmission_only: false,
            deidentified_only: false,
            limited_data_set_only: false,
            we_are_business_associate: false,
        }
    }

    #[test]
    fn every_combination_of_answers_gives_one_role_with_a_citation() {
        // Property: all 32 answer sets decide to exactly the role of the first rule that applies.
        for bits in 0u8..32 {
            let a = Answers {
                handles_phi: bits & 1 != 0,
                transmission_only: bits & 2 != 0,
                deidentified_only: bits & 4 != 0,
                limited_data_set_only: bits & 8 != 0,
                we_are_business_associate: bits & 16 != 0,
            };
            let (role, reason, citation) = determine(&a);
            assert!(citation.starts_with("45 CFR"), "{citation}");
            assert!(!reason.is_empty());
            let want = if a.deidentified_only {
                Role::NotBusinessAssociate
            } else if a.limited_data_set_only {
                Role::DuaNeeded
            } else if !a.handles_phi {
                Role::NotBusinessAssociate
            } else if a.transmission_only {
                Role::Conduit
            } else if a.we_are_business_associate {
                Role::Subcontractor
            } else {
                Role::BusinessAssociate
            };
            assert_eq!(role, want, "{a:?}");
            if role.requires() == Some("baa") {
                assert!(citation.contains("160.103"), "BA roles cite the definition: {citation}");
            }
        }
    }

    #[test]
    fn the_questionnaire_needs_handles_phi_and_at_most_one_only_answer() {
        let e = parse_answers(&AnswersInput::default()).expect_err("missing");
        assert_eq!(e[0].pointer.as_deref(), Some("/handles_phi"));
        let both = AnswersInput {
            handles_phi: Some(true),
            transmission_only: true,
            deidentified_only: true,
            ..Default::default()
        };
        let e = parse_answers(&both).expect_err("contradiction");
        assert_eq!(e[0].pointer.as_deref(), Some("/deidentified_only"));
        assert!(parse_answers(&AnswersInput { handles_phi: Some(false), ..Default::default() }).is_ok());
    }

    #[test]
    fn an_empty_legal_name_is_refused_at_its_pointer_and_nothing_changes() {
        let v = vendor();
        let input =
            VendorInput { legal_name: Some("  ".into()), website: Some("ftp://x".into()), ..Default::default() };
        let e = apply(&v, input, true, "a", 1).expect_err("invalid");
        let ptrs: Vec<_> = e.iter().filter_map(|f| f.pointer.clone()).collect();
        assert_eq!(ptrs, ["/legal_name", "/website"]);
        let e = apply(&v, VendorInput::default(), true, "a", 1).expect_err("required");
        assert_eq!(e[0].pointer.as_deref(), Some("/legal_name"));
        let (ok, changed) =
            apply(&v, VendorInput { other_names: Some(vec!["Acme".into()]), ..Default::default() }, false, "a", 1)
                .expect("valid");
        assert_eq!(ok.other_names, ["Acme"]);
        assert_eq!(changed, ["identity"]);
    }

    #[test]
    fn data_locations_and_overrides_are_checked() {
        let v = vendor();
        let flows = DataFlows {
            locations: vec![
                Location { country: "de".into(), state: Some("CA".into()) },
                Location { country: "US".into(), state: Some("ZZ".into()) },
            ],
            ..Default::default()
        };
        let input = VendorInput {
            data_flows: Some(flows),
            tier_override: Some(Some(OverrideInput { tier: Tier::High, reason: "".into() })),
            ..Default::default()
        };
        let e = apply(&v, input, false, "a", 1).expect_err("invalid");
        let ptrs: Vec<_> = e.iter().filter_map(|f| f.pointer.clone()).collect();
        assert_eq!(ptrs, ["/data_flows/locations/0/state", "/data_flows/locations/1/state", "/tier_override/reason"]);
    }

    #[test]
    fn the_tier_follows_the_documented_rule() {
        let mut f = DataFlows::default();
        assert_eq!(computed_tier(&f), Tier::Low, "no PHI");
        f.phi_categories = vec!["demographic".into()];
        assert_eq!(computed_tier(&f), Tier::Medium, "volume unknown");
        f.volume = Some(Volume::Low);
        assert_eq!(computed_tier(&f), Tier::Low);
        f.locations = vec![Location { country: "IN".into(), state: None }];
        assert_eq!(computed_tier(&f), Tier::Medium, "abroad: one step up");
        f.phi_categories.push("mental_health".into());
        f.volume = Some(Volume::High);
        assert_eq!(computed_tier(&f), Tier::High, "capped at high");
        let p2 = DataFlows { part2: true, volume: Some(Volume::Low), ..Default::default() };
        assert_eq!(computed_tier(&p2), Tier::High);
    }

    #[test]
    fn more_risk_never_lowers_the_tier() {
        // Property: adding a risk factor to any flow never gives a lower tier.
        let vols = [None, Some(Volume::Low), Some(Volume::Medium), Some(Volume::High)];
        for vol in vols {
            for bits in 0u8..16 {
                let f = DataFlows {
                    phi_categories: if bits & 1 != 0 { vec!["claims".into()] } else { vec![] },
                    locations: if bits & 2 != 0 {
                        vec![Location { country: "CA".into(), state: None }]
                    } else {
                        vec![]
                    },
                    limited_data_set: bits & 4 != 0,
                    part2: bits & 8 != 0,
                    volume: vol,
                    systems: vec![],
                };
                let base = computed_tier(&f);
                let mut more = f.clone();
                more.phi_categories.push("genetic".into());
                assert!(computed_tier(&more) >= base, "{f:?}");
                let mut p2 = f.clone();
                p2.part2 = true;
                assert_eq!(computed_tier(&p2), Tier::High);
            }
        }
    }

    #[test]
    fn reassessment_falls_due_by_tier_and_policy() {
        let mut v = vendor();
        let p = ReassessPolicy::default();
        assert_eq!(next_reassessment(&v, Tier::High, &p), d("2028-01-04"));
        assert_eq!(next_reassessment(&v, Tier::Medium, &p), d("2029-01-04"));
        assert_eq!(next_reassessment(&v, Tier::Low, &p), d("2030-01-04"));
        v.last_assessed = Some("2027-06-30".into());
        let p = ReassessPolicy { high_months: 6, ..p };
        assert_eq!(next_reassessment(&v, Tier::High, &p), d("2027-12-30"));
    }

    fn ba(v: &mut Vendor) {
        let a = Answers { handles_phi: true, ..answers(true) };
        let (role, reason, citation) = determine(&a);
        v.determination = Some(Determination {
            role,
            reason: reason.into(),
            citation: citation.into(),
            answers: a,
            answered_by: "l@example.com".into(),
            answered_at: 1_799_064_000,
        });
    }

    fn paper(kind: &str) -> AgreementTerms {
        AgreementTerms::from_paper(&VendorPaper {
            sha256: "ab".into(),
            bytes: 1,
            terms: PaperTerms {
                kind: kind.into(),
                title: "Acme BAA".into(),
                effective_date: "2026-03-01".into(),
                term_months: Some(12),
                auto_renew: true,
                breach_notice_days: Some(10),
                return_or_destroy: Some("destroy".into()),
                notice_days: Some(60),
            },
            uploaded_by: "vm@example.com".into(),
            uploaded_at: 1,
        })
    }

    #[test]
    fn a_business_associate_with_phi_and_no_executed_baa_is_flagged_until_one_is_on_file() {
        let mut v = vendor();
        ba(&mut v);
        let today = d("2027-02-01");
        let p = ReassessPolicy::default();
        assert!(
            !standing(&v, &[], today, &p).flags.iter().any(|f| f.code == "missing_agreement"),
            "no PHI flowing yet"
        );
        v.data_flows.phi_categories = vec!["claims".into()];
        let s = standing(&v, &[], today, &p);
        let f = s.flags.iter().find(|f| f.code == "missing_agreement").expect("flagged");
        assert_eq!(f.since, "2027-01-04", "the day the determination made it true");
        assert_eq!(s.baa_status, "missing");
        let s = standing(&v, &[paper("baa")], today, &p);
        assert_eq!(s.baa_status, "executed");
        assert!(!s.flags.iter().any(|f| f.code == "missing_agreement"));
        assert_eq!(standing(&v, &[paper("dua")], today, &p).baa_status, "missing", "a DUA is not a BAA");
    }

    #[test]
    fn obligations_come_from_the_agreements_own_terms() {
        let mut v = vendor();
        v.privacy_contact = Some(Contact { name: "Pat".into(), email: "pat@acme.example".into() });
        v.documents.push(VendorDocument {
            kind: DocKind::InsuranceCertificate,
            sha256: "cd".into(),
            bytes: 1,
            issued: Some("2026-06-01".into()),
            expires: Some("2027-06-01".into()),
            uploaded_by: "x".into(),
            uploaded_at: 1,
        });
        let o = obligations(&v, &[paper("baa")], d("2027-02-01"));
        let kinds: Vec<_> = o.iter().map(|o| (o.kind, o.due.clone())).collect();
        assert_eq!(
            kinds,
            [
                ("breach_notice", None),
                ("renewal", Some("2027-03-01".into())),
                ("renewal_notice", Some("2026-12-31".into())),
                ("return_or_destroy", None),
                ("insurance_renewal", Some("2027-06-01".into())),
            ]
        );
        assert!(o[0].description.contains("within 10 days") && o[0].description.contains("pat@acme.example"));
        assert!(o[3].description.contains("destroy all PHI"));
    }

    #[test]
    fn a_soc2_report_older_than_twelve_months_is_flagged_the_day_it_turns() {
        let mut v = vendor();
        v.last_assessed = Some("2027-01-01".into());
        v.documents.push(VendorDocument {
            kind: DocKind::Soc2Type2,
            sha256: "ef".into(),
            bytes: 1,
            issued: Some("2026-03-15".into()),
            expires: None,
            uploaded_by: "x".into(),
            uploaded_at: 1,
        });
        let p = ReassessPolicy::default();
        assert!(standing(&v, &[], d("2027-03-14"), &p).flags.is_empty());
        let s = standing(&v, &[], d("2027-03-15"), &p);
        assert_eq!(
            s.flags.iter().map(|f| (f.code, f.since.as_str())).collect::<Vec<_>>(),
            [("soc2_stale", "2027-03-15")]
        );
    }

    #[test]
    fn the_report_counts_what_the_standings_say() {
        let mut a = vendor();
        ba(&mut a);
        a.data_flows.phi_categories = vec!["claims".into()];
        let mut b = vendor();
        b.id = "v2".into();
        b.legal_name = "Éclair Labs".into();
        b.subcontractors = vec![Subcontractor { name: "S".into(), services: None, downstream_baa_confirmed: false }];
        let today = d("2027-02-01");
        let p = ReassessPolicy::default();
        let (sa, sb) = (standing(&a, &[], today, &p), standing(&b, &[paper("baa")], today, &p));
        let r = report(&[(&a, &sa), (&b, &sb)], today);
        assert_eq!(r.vendors, 2);
        assert_eq!(r.business_associates, 1);
        assert_eq!(r.business_associates_without_baa, 1);
        assert_eq!(r.unconfirmed_subcontractors, 1);
        assert_eq!(r.renewing_90_days, 1, "b's paper renews on 2027-03-01");
        assert_eq!(r.rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["Acme Cloud", "Éclair Labs"]);
        let csv = r.to_csv();
        assert!(csv.contains("\nbusiness_associates_without_baa,1\n"), "{csv}");
        assert!(csv.contains("v1,Acme Cloud,business_associate,medium,missing,2029-01-04"), "{csv}");
        assert_eq!(csv_cell("=cmd()"), "'=cmd()");
        assert_eq!(fold("Ærø Médical ŁÓDŹ"), "aero medical lodz");
    }
}
