//! Intake: the typed, validated agreement request.
//!
//! Values of these types exist only after `parse` has checked every rule, so the renderer and
//! the signing service never re-validate (parse, don't validate). Text is NFC-normalized and
//! every character is one the embedded font can print.

use serde::{Deserialize, Serialize};

/// A validated intake.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Intake {
    pub kind: Kind,
    /// The party that discloses PHI: the covered entity (BAA, DUA), or the business associate in
    /// a business associate → subcontractor BAA.
    pub upstream: Party,
    /// The party that receives PHI: business associate, subcontractor, or data recipient.
    pub downstream: Party,
    /// In signing order (stable: ties keep intake order).
    pub signers: Vec<Signer>,
    pub effective_date: Date,
    pub term: Term,
    /// Folded: no duplicates, in the order first given.
    pub states: Vec<StateCode>,
    /// 1–60 calendar days (45 CFR 164.410(b) for a BAA; DUA-06 for a DUA).
    pub breach_notice_days: u8,
    /// True when the covered entity is a California-licensed clinic or health facility
    /// (Cal. H&S 1280.15). Intake field `covered_entity.california_licensed_facility`.
    pub ca_licensed_facility: bool,
    pub exhibits: Vec<Exhibit>,
}

/// What kind of agreement, with the fields that only that kind has.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Kind {
    Baa(Baa),
    Dua(Dua),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Baa {
    pub relationship: Relationship,
    pub parent_agreement_id: Option<String>,
    pub services: String,
    pub use_cases: Vec<String>,
    /// As given (`contact_details`); `render` turns them into words.
    pub phi_types: Vec<String>,
    pub subcontractors: Vec<Subcontractor>,
    pub options: BaaOptions,
    /// Negotiated provisions as the intake chose them (defaults come from the policy).
    /// Boxed: the negotiated choices are the largest part of a BAA, and boxing keeps `Kind`'s
    /// variants of similar size (clippy::large_enum_variant).
    pub provisions: Box<super::provisions::ProvisionChoices>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Relationship {
    CoveredEntityToBusinessAssociate,
    BusinessAssociateToSubcontractor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct BaaOptions {
    pub management_and_administration: bool,
    pub data_aggregation: bool,
    pub de_identification: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subcontractor {
    pub legal_name: String,
    pub services: String,
    pub baa_in_place: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dua {
    pub purpose: Purpose,
    pub project_description: String,
    pub permitted_recipients: Vec<String>,
    pub data_elements: Vec<String>,
}

/// 45 CFR 164.514(e)(3)(i): the only purposes a limited data set may serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Research,
    PublicHealth,
    HealthCareOperations,
}

/// Which side of the agreement a party or signer is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Upstream,
    Downstream,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Party {
    /// The role as the intake names it: `covered_entity`, `business_associate`,
    /// `subcontractor`, `data_recipient`.
    pub role: Role,
    pub legal_name: String,
    pub address: Address,
    pub privacy_contact: Contact,
    pub security_contact: Contact,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    CoveredEntity,
    BusinessAssociate,
    Subcontractor,
    DataRecipient,
}

impl Role {
    /// The intake key and signer `party` value for this role.
    pub fn key(self) -> &'static str {
        match self {
            Role::CoveredEntity => "covered_entity",
            Role::BusinessAssociate => "business_associate",
            Role::Subcontractor => "subcontractor",
            Role::DataRecipient => "data_recipient",
        }
    }

    /// The defined term used in the agreement text.
    pub fn label(self) -> &'static str {
        match self {
            Role::CoveredEntity => "Covered Entity",
            Role::BusinessAssociate => "Business Associate",
            Role::Subcontractor => "Subcontractor",
            Role::DataRecipient => "Data Recipient",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Address {
    pub street: String,
    pub city: String,
    pub state: StateCode,
    pub postal_code: String,
}

impl Address {
    /// `88 Market St, Suite 400, San Francisco, CA 94105`
    pub fn one_line(&self) -> String {
        format!("{}, {}, {} {}", self.street, self.city, self.state.code(), self.postal_code)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contact {
    pub name: String,
    pub email: Email,
    pub phone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Signer {
    pub side: Side,
    pub name: String,
    pub title: String,
    pub email: Email,
    /// ≥ 1. Signers with the same order sign in parallel.
    pub order: u32,
    /// `verify_email_code`: the signer gives a one-time code sent to their address before the
    /// signature is accepted (default false; the policy may require it for everyone).
    pub verify_email_code: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Term {
    /// 1–120.
    pub months: u16,
    pub auto_renew: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exhibit {
    pub title: String,
    /// Paragraphs, split on blank lines in the intake text.
    pub paragraphs: Vec<String>,
}

/// An email address that passed the syntax check (`local@domain.tld`, no spaces, one `@`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Email, &'static str> {
        let s = s.trim();
        let (local, domain) = s.split_once('@').ok_or("not an email address")?;
        let ok_local = !local.is_empty()
            && local.len() <= 64
            && local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..");
        let labels: Vec<&str> = domain.split('.').collect();
        let ok_domain = labels.len() >= 2
            && domain.len() <= 253
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        // The domain is case-insensitive; the local part may not be (RFC 5321 §2.4), so keep it.
        if ok_local && ok_domain {
            Ok(Email(format!("{local}@{}", domain.to_ascii_lowercase())))
        } else {
            Err("not an email address")
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub use super::time::{Date, DateError};

pub use super::states::StateCode;
