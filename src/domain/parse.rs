//! Intake parsing: JSON text → a typed [`Intake`], or every problem at once.
//!
//! Parse, don't validate: the JSON text is read into a `serde_json::Value`, then one walk over
//! it builds the typed intake while collecting a [`Finding`] (`Finding::field(pointer, reason)`,
//! RFC 6901 pointer) for every problem it meets. It never stops at the first problem, and it
//! never panics.
//!
//! Text rules, for every string: NFC-normalized, trimmed, length-limited, and every character
//! must satisfy the caller's `printable` (the embedded font's coverage). Control characters are
//! rejected; line breaks are allowed only in exhibit text. A JSON `null` is treated as an absent
//! field; an empty optional string (`phone`, `parent_agreement_id`) is treated as absent too.
//! Duplicate keys in an object are errors (serde_json alone would keep the last silently).

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use unicode_normalization::UnicodeNormalization;

use super::findings::Finding;
use super::identifiers;
use super::intake::{
    Address, Baa, BaaOptions, Contact, Date, Dua, Email, Exhibit, Intake, Kind, Party, Purpose, Relationship, Role,
    Side, Signer, StateCode, Subcontractor, Term,
};
use super::provisions::{
    AuditInput, BreachCostsInput, Cap, Choice, CostBearer, InsuranceInput, LdsInput, LiabilityInput, ProvisionChoices,
    SecurityInput,
};

/// Names, titles, street and city lines, exhibit titles.
pub const MAX_NAME_CHARS: usize = 200;
/// One entry of a list of phrases (`phi_types`, `data_elements`, …), a subcontractor's services.
pub const MAX_ITEM_CHARS: usize = 500;
/// Free text: `services`, `project_description`.
pub const MAX_TEXT_CHARS: usize = 5000;
/// One exhibit's text.
pub const MAX_EXHIBIT_CHARS: usize = 20_000;
/// Phone numbers.
pub const MAX_PHONE_CHARS: usize = 40;
/// Email addresses (RFC 5321 path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Any list.
pub const MAX_ITEMS: usize = 100;
/// Signing order: 1–`MAX_SIGNING_ORDER`.
pub const MAX_SIGNING_ORDER: i64 = 999;

const COMMON_FIELDS: &[&str] =
    &["kind", "signers", "effective_date", "term", "states", "breach_notice_days", "exhibits"];
const BAA_FIELDS: &[&str] =
    &["relationship", "services", "use_cases", "phi_types", "subcontractors", "options", "provisions"];
const PROVISION_FIELDS: &[&str] = &[
    "audit_rights",
    "liability",
    "preemption",
    "cyber_insurance",
    "cure_period_days",
    "limited_data_set",
    "governing_law",
    "security_controls",
    "data_location",
    "subcontractor_objection_days",
    "breach_costs",
    "part2",
    "agency",
    "change_in_law_days",
];
const SECURITY_FIELDS: &[&str] = &["log_retention_years"];
const BREACH_COSTS_FIELDS: &[&str] = &["credit_monitoring_months"];
const AUDIT_FIELDS: &[&str] = &["notice_days", "per_year", "cost"];
const LIABILITY_FIELDS: &[&str] =
    &["mutual", "cap_multiple_of_fees", "cap_amount_usd", "cap_floor_usd", "phi_carve_out", "public_body"];
const INSURANCE_FIELDS: &[&str] = &["coverage_usd"];
const LDS_FIELDS: &[&str] = &["dua_reference"];
const DUA_FIELDS: &[&str] = &["purpose", "project_description", "permitted_recipients", "data_elements"];
const PARTY_FIELDS: &[&str] = &["legal_name", "address", "privacy_contact", "security_contact"];
const CA_FACILITY: &str = "california_licensed_facility";
const ADDRESS_FIELDS: &[&str] = &["street", "city", "state", "postal_code"];
const CONTACT_FIELDS: &[&str] = &["name", "email", "phone"];
const SIGNER_FIELDS: &[&str] = &["party", "name", "title", "email", "order", "verify_email_code"];
const TERM_FIELDS: &[&str] = &["months", "auto_renew"];
const SUBCONTRACTOR_FIELDS: &[&str] = &["legal_name", "services", "baa_in_place"];
const OPTIONS_FIELDS: &[&str] = &["management_and_administration", "data_aggregation", "de_identification"];
const EXHIBIT_FIELDS: &[&str] = &["title", "text"];
const ALL_ROLES: [Role; 4] = [Role::CoveredEntity, Role::BusinessAssociate, Role::Subcontractor, Role::DataRecipient];

/// Common misnamings, suggested when the right name is a field of that object.
const ALIASES: &[(&str, &str)] = &[
    ("zip", "postal_code"),
    ("zip_code", "postal_code"),
    ("zipcode", "postal_code"),
    ("postcode", "postal_code"),
    ("type", "kind"),
    ("phone_number", "phone"),
    ("telephone", "phone"),
    ("email_address", "email"),
    ("e_mail", "email"),
    ("name", "legal_name"),
    ("start_date", "effective_date"),
    ("breach_notification_days", "breach_notice_days"),
];

/// Parses an intake. `printable` tells whether the document font can print a character.
///
/// On failure, returns every problem found, each a `Finding::field` whose pointer is the RFC 6901
/// JSON pointer of the offending field (`""` for the whole document).
pub fn parse_intake(json: &str, printable: &dyn Fn(char) -> bool) -> Result<Intake, Vec<Finding>> {
    let json = json.strip_prefix('\u{feff}').unwrap_or(json);
    let value: Value = match serde_json::from_str(json) {
        Ok(v) => v,
        Err(e) => return Err(vec![malformed(&e)]),
    };
    let mut p = Parser { printable, findings: Vec::new() };
    for ptr in duplicate_keys(json) {
        p.findings.push(Finding::field(ptr, "duplicate field; give each field once"));
    }
    let intake = p.intake(&value);
    match intake {
        Ok(intake) if p.findings.is_empty() => Ok(intake),
        _ => {
            if p.findings.is_empty() {
                // Every failure path reports before failing; this is a safety net, not a path.
                p.findings.push(Finding::field("", "the intake could not be parsed"));
            }
            Err(p.findings)
        }
    }
}

fn malformed(e: &serde_json::Error) -> Finding {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let reason = full.strip_suffix(&suffix).unwrap_or(&full);
    Finding::field("", format!("malformed JSON at line {}, column {}: {reason}", e.line(), e.column()))
}

/// `parent` + `/key`, with `~` and `/` escaped (RFC 6901).
fn child(parent: &str, key: &str) -> String {
    format!("{parent}/{}", key.replace('~', "~0").replace('/', "~1"))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn expected(what: &str, v: &Value) -> String {
    format!("expected {what}, found {}", type_name(v))
}

/// A value quoted for a message, shortened if long.
fn quote(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() > MAX {
        let short: String = s.chars().take(MAX).collect();
        format!("{short:?}…")
    } else {
        format!("{s:?}")
    }
}

fn quoted_list(items: &[&str]) -> String {
    let q: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    match q.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The nearest known field name, if reasonably close.
fn suggest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let norm: String = key.trim().to_lowercase().chars().map(|c| if c == ' ' || c == '-' { '_' } else { c }).collect();
    if let Some(k) = known.iter().find(|k| **k == norm) {
        return Some(k);
    }
    if let Some((_, k)) = ALIASES.iter().find(|(alias, k)| *alias == norm && known.contains(k)) {
        return known.iter().find(|n| *n == k).copied();
    }
    known
        .iter()
        .map(|k| (*k, strsim::jaro_winkler(&norm, k), strsim::normalized_damerau_levenshtein(&norm, k)))
        .filter(|(_, jw, ndl)| *jw >= 0.86 || *ndl >= 0.7)
        .max_by(|a, b| (a.1 + a.2).total_cmp(&(b.1 + b.2)))
        .map(|(k, _, _)| k)
}

/// A problem was found and reported; the value is unusable.
#[derive(Debug, Clone, Copy)]
struct Reported;

type Res<T> = Result<T, Reported>;

/// An object being read, with its pointer.
struct Obj<'v> {
    map: &'v Map<String, Value>,
    ptr: String,
}

impl<'v> Obj<'v> {
    /// The field's value; `null` counts as absent.
    fn get(&self, key: &str) -> Option<&'v Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn ptr(&self, key: &str) -> String {
        child(&self.ptr, key)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tag {
    Baa,
    Dua,
}

/// What `kind` and `relationship` make of the agreement.
struct Shape {
    tag: Option<Tag>,
    /// For a BAA with a valid (or defaulted) relationship.
    relationship: Option<Relationship>,
    /// `[upstream, downstream]`, when known.
    parties: Option<[Role; 2]>,
    /// The party keys accepted at the top level and as `signers/*/party`.
    roles: Vec<Role>,
}

impl Shape {
    fn new(tag: Option<Tag>, relationship: Option<Relationship>) -> Shape {
        let parties = match (tag, relationship) {
            (Some(Tag::Dua), _) => Some([Role::CoveredEntity, Role::DataRecipient]),
            (Some(Tag::Baa), Some(Relationship::CoveredEntityToBusinessAssociate)) => {
                Some([Role::CoveredEntity, Role::BusinessAssociate])
            }
            (Some(Tag::Baa), Some(Relationship::BusinessAssociateToSubcontractor)) => {
                Some([Role::BusinessAssociate, Role::Subcontractor])
            }
            _ => None,
        };
        let roles = match (parties, tag) {
            (Some(p), _) => p.to_vec(),
            (None, Some(Tag::Baa)) => vec![Role::CoveredEntity, Role::BusinessAssociate, Role::Subcontractor],
            _ => ALL_ROLES.to_vec(),
        };
        Shape { tag, relationship, parties, roles }
    }

    /// Known top-level fields, and explanations for fields that belong to another shape.
    fn top_fields(&self) -> (Vec<&'static str>, Vec<(&'static str, String)>) {
        let mut known = COMMON_FIELDS.to_vec();
        let mut notes = Vec::new();
        let sub = Some(Relationship::BusinessAssociateToSubcontractor);
        match self.tag {
            Some(Tag::Baa) => {
                known.extend(BAA_FIELDS);
                if self.relationship != Some(Relationship::CoveredEntityToBusinessAssociate) {
                    known.push("parent_agreement_id");
                }
                for f in DUA_FIELDS.iter().chain(&["data_recipient"]) {
                    notes.push((*f, format!("only a DUA has \"{f}\"")));
                }
                if self.relationship == Some(Relationship::CoveredEntityToBusinessAssociate) {
                    let needs = "needs relationship \"business_associate_to_subcontractor\"";
                    notes.push(("subcontractor", format!("a \"subcontractor\" party {needs}")));
                    notes.push(("parent_agreement_id", format!("\"parent_agreement_id\" {needs}")));
                } else if self.relationship == sub {
                    notes.push((
                        "covered_entity",
                        "a business_associate_to_subcontractor BAA has no covered_entity party".to_owned(),
                    ));
                }
            }
            Some(Tag::Dua) => {
                known.extend(DUA_FIELDS);
                for f in BAA_FIELDS.iter().chain(&["parent_agreement_id", "business_associate", "subcontractor"]) {
                    notes.push((*f, format!("only a BAA has \"{f}\"")));
                }
            }
            None => {
                known.extend(BAA_FIELDS);
                known.extend(DUA_FIELDS);
                known.push("parent_agreement_id");
            }
        }
        known.extend(self.roles.iter().map(|r| r.key()));
        (known, notes)
    }

    fn side(&self, role: Role) -> Side {
        match self.parties {
            Some([up, _]) if up == role => Side::Upstream,
            _ => Side::Downstream,
        }
    }
}

/// A signer before the party is mapped to a side.
struct RawSigner {
    role: Role,
    name: String,
    title: String,
    email: Email,
    order: u32,
    verify_email_code: bool,
}

struct Parser<'p> {
    printable: &'p dyn Fn(char) -> bool,
    findings: Vec<Finding>,
}

impl Parser<'_> {
    fn report(&mut self, ptr: &str, msg: impl Into<String>) {
        self.findings.push(Finding::field(ptr, msg));
    }

    fn fail<T>(&mut self, ptr: &str, msg: impl Into<String>) -> Res<T> {
        self.report(ptr, msg);
        Err(Reported)
    }

    // ----- structure -----

    /// `v` as an object whose fields are all in `known`; unknown fields are reported (the object
    /// is still returned so its known fields get checked too).
    fn object<'v>(&mut self, v: &'v Value, ptr: &str, known: &[&str], notes: &[(&str, String)]) -> Res<Obj<'v>> {
        let Value::Object(map) = v else {
            return self.fail(ptr, expected("an object", v));
        };
        let o = Obj { map, ptr: ptr.to_owned() };
        self.unknown_fields(&o, known, notes);
        Ok(o)
    }

    fn unknown_fields(&mut self, o: &Obj, known: &[&str], notes: &[(&str, String)]) {
        for key in o.map.keys() {
            if known.contains(&key.as_str()) {
                continue;
            }
            let mut msg = String::from("unknown field");
            let suggestion = suggest(key, known);
            let note = notes.iter().find(|(k, _)| k == key).map(|(_, n)| n.as_str());
            if let Some(s) = suggestion {
                msg.push_str(&format!("; did you mean \"{s}\"?"));
            }
            if let Some(n) = note {
                msg.push_str(&format!(" ({n})"));
            }
            if suggestion.is_none() && note.is_none() {
                msg.push_str(&format!("; expected one of: {}", known.join(", ")));
            }
            self.report(&o.ptr(key), msg);
        }
    }

    /// A required field.
    fn req<'v, T>(&mut self, o: &Obj<'v>, key: &str, f: impl FnOnce(&mut Self, &'v Value, &str) -> Res<T>) -> Res<T> {
        let ptr = o.ptr(key);
        match o.get(key) {
            Some(v) => f(self, v, &ptr),
            None => self.fail(&ptr, "required"),
        }
    }

    /// An optional field (`null` = absent).
    fn opt<'v, T>(
        &mut self,
        o: &Obj<'v>,
        key: &str,
        f: impl FnOnce(&mut Self, &'v Value, &str) -> Res<T>,
    ) -> Res<Option<T>> {
        let ptr = o.ptr(key);
        match o.get(key) {
            Some(v) => f(self, v, &ptr).map(Some),
            None => Ok(None),
        }
    }

    /// A list of at most `MAX_ITEMS`, each item parsed (all of them, even after a failure).
    fn list<'v, T>(
        &mut self,
        v: &'v Value,
        ptr: &str,
        non_empty: bool,
        mut item: impl FnMut(&mut Self, &'v Value, &str) -> Res<T>,
    ) -> Res<Vec<T>> {
        let Value::Array(items) = v else {
            return self.fail(ptr, expected("a list", v));
        };
        if non_empty && items.is_empty() {
            return self.fail(ptr, "must not be empty");
        }
        if items.len() > MAX_ITEMS {
            return self.fail(ptr, format!("must have at most {MAX_ITEMS} items (has {})", items.len()));
        }
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, it) in items.iter().enumerate() {
            match item(self, it, &format!("{ptr}/{i}")) {
                Ok(x) => out.push(x),
                Err(Reported) => ok = false,
            }
        }
        if ok { Ok(out) } else { Err(Reported) }
    }

    // ----- scalars -----

    fn string<'v>(&mut self, v: &'v Value, ptr: &str) -> Res<&'v str> {
        match v {
            Value::String(s) => Ok(s),
            _ => self.fail(ptr, expected("a string", v)),
        }
    }

    /// NFC, trim, length and character checks. May return an empty string.
    fn clean(&mut self, raw: &str, ptr: &str, max: usize, multiline: bool) -> Res<String> {
        let raw = if multiline { raw.replace("\r\n", "\n").replace('\r', "\n") } else { raw.to_owned() };
        let nfc: String = raw.nfc().collect();
        let s = nfc.trim();
        let mut ok = true;
        let len = s.chars().count();
        if len > max {
            self.report(ptr, format!("must be at most {max} characters (has {len})"));
            ok = false;
        }
        let mut line_break = false;
        let mut bad: Vec<char> = Vec::new();
        for c in s.chars() {
            if c == '\n' && multiline {
                continue;
            }
            if c == '\n' || c == '\r' {
                line_break = true;
            } else if (c.is_control() || !(self.printable)(c)) && !bad.contains(&c) {
                bad.push(c);
            }
        }
        if line_break {
            self.report(ptr, "line breaks are not allowed here");
            ok = false;
        }
        const SHOWN: usize = 3;
        for &c in bad.iter().take(SHOWN) {
            let msg = if c.is_control() {
                format!("control character U+{:04X} is not allowed", u32::from(c))
            } else {
                format!("character \"{c}\" (U+{:04X}) cannot be printed by the document font", u32::from(c))
            };
            self.report(ptr, msg);
            ok = false;
        }
        if bad.len() > SHOWN {
            self.report(ptr, format!("{} more characters cannot be printed by the document font", bad.len() - SHOWN));
        }
        if ok { Ok(s.to_owned()) } else { Err(Reported) }
    }

    /// Required single-line text.
    fn text(&mut self, v: &Value, ptr: &str, max: usize) -> Res<String> {
        let raw = self.string(v, ptr)?;
        let s = self.clean(raw, ptr, max, false)?;
        if s.is_empty() { self.fail(ptr, "must not be empty") } else { Ok(s) }
    }

    /// Optional single-line text: blank means absent.
    fn text_or_blank(&mut self, v: &Value, ptr: &str, max: usize) -> Res<Option<String>> {
        let raw = self.string(v, ptr)?;
        let s = self.clean(raw, ptr, max, false)?;
        Ok(if s.is_empty() { None } else { Some(s) })
    }

    fn text_list(&mut self, v: &Value, ptr: &str, non_empty: bool) -> Res<Vec<String>> {
        self.list(v, ptr, non_empty, |p, v, ptr| p.text(v, ptr, MAX_ITEM_CHARS))
    }

    fn boolean(&mut self, v: &Value, ptr: &str) -> Res<bool> {
        match v {
            Value::Bool(b) => Ok(*b),
            _ => self.fail(ptr, expected("true or false", v)),
        }
    }

    /// An integer in `lo..=hi`; `range` is the message when out of range.
    fn integer(&mut self, v: &Value, ptr: &str, lo: i64, hi: i64, range: &str) -> Res<i64> {
        let Value::Number(n) = v else {
            return self.fail(ptr, expected("an integer", v));
        };
        let in_range = if let Some(i) = n.as_i64() {
            (lo..=hi).contains(&i).then_some(i)
        } else if n.as_u64().is_some() {
            None
        } else {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() != 0.0 || !f.is_finite() {
                return self.fail(ptr, "expected an integer");
            }
            // Whole numbers written as 10.0 or 1e2: accept when in range.
            (f >= lo as f64 && f <= hi as f64).then_some(f as i64)
        };
        match in_range {
            Some(i) => Ok(i),
            None => self.fail(ptr, range),
        }
    }

    fn date(&mut self, v: &Value, ptr: &str) -> Res<Date> {
        let s = self.text(v, ptr, 40)?;
        Date::parse(&s).or_else(|reason| self.fail(ptr, format!("{} is not a valid date: {reason}", quote(&s))))
    }

    fn state(&mut self, v: &Value, ptr: &str) -> Res<StateCode> {
        let s = self.text(v, ptr, 40)?;
        StateCode::parse(&s).or_else(|reason| self.fail(ptr, format!("{} is {reason}", quote(&s))))
    }

    fn email(&mut self, v: &Value, ptr: &str) -> Res<Email> {
        let s = self.text(v, ptr, MAX_EMAIL_CHARS)?;
        Email::parse(&s).or_else(|reason| self.fail(ptr, reason))
    }

    fn postal_code(&mut self, v: &Value, ptr: &str) -> Res<String> {
        let s = self.text(v, ptr, 40)?;
        if is_zip(&s) {
            Ok(s)
        } else {
            self.fail(ptr, format!("{} is not a US ZIP code (12345 or 12345-6789)", quote(&s)))
        }
    }

    fn phone(&mut self, v: &Value, ptr: &str) -> Res<Option<String>> {
        match self.text_or_blank(v, ptr, MAX_PHONE_CHARS)? {
            Some(s) if !is_phone(&s) => self.fail(ptr, format!("{} is not a phone number", quote(&s))),
            other => Ok(other),
        }
    }

    // ----- the intake -----

    fn intake(&mut self, root: &Value) -> Res<Intake> {
        let Value::Object(map) = root else {
            return self.fail("", expected("a JSON object", root));
        };
        let top = Obj { map, ptr: String::new() };
        let tag = self.req(&top, "kind", |p, v, ptr| {
            let s = p.string(v, ptr)?;
            match s.trim().to_ascii_lowercase().as_str() {
                "baa" => Ok(Tag::Baa),
                "dua" => Ok(Tag::Dua),
                _ => p.fail(ptr, format!("{} is not an agreement kind; must be \"baa\" or \"dua\"", quote(s))),
            }
        });
        let relationship = match tag {
            Ok(Tag::Baa) => self
                .opt(&top, "relationship", |p, v, ptr| p.relationship(v, ptr))
                .map(|r| r.unwrap_or(Relationship::CoveredEntityToBusinessAssociate))
                .ok(),
            _ => None,
        };
        let shape = Shape::new(tag.ok(), relationship);
        let (known, notes) = shape.top_fields();
        self.unknown_fields(&top, &known, &notes);

        let mut parties: Vec<(Role, Res<(Party, bool)>)> = Vec::new();
        for &role in &shape.roles {
            let parse = |p: &mut Self, v: &Value, ptr: &str| p.party(v, ptr, role);
            let party = if shape.parties.is_some() {
                self.req(&top, role.key(), parse).map(Some)
            } else {
                self.opt(&top, role.key(), parse)
            };
            if let Some(party) = party.transpose() {
                parties.push((role, party));
            }
        }
        let signers = self.signers(&top, &shape);
        let effective_date = self.req(&top, "effective_date", |p, v, ptr| p.date(v, ptr));
        let term = self.req(&top, "term", |p, v, ptr| p.term(v, ptr));
        let states = self.opt(&top, "states", |p, v, ptr| p.states(v, ptr));
        let breach_message = match shape.tag {
            Some(Tag::Baa) => "must be 1–60 (45 CFR 164.410(b))",
            Some(Tag::Dua) => "must be 1–60 (the DUA-06 reporting duty, 45 CFR 164.514(e)(4)(ii)(C)(3))",
            None => "must be 1–60",
        };
        let breach = self.req(&top, "breach_notice_days", |p, v, ptr| p.integer(v, ptr, 1, 60, breach_message));
        let exhibits = self.opt(&top, "exhibits", |p, v, ptr| p.list(v, ptr, false, |p, v, ptr| p.exhibit(v, ptr)));
        let kind = match (shape.tag, shape.relationship) {
            (Some(Tag::Baa), Some(rel)) => self.baa(&top, rel).map(Kind::Baa),
            (Some(Tag::Dua), _) => self.dua(&top).map(Kind::Dua),
            _ => Err(Reported),
        };

        let [up_role, down_role] = shape.parties.ok_or(Reported)?;
        let mut take = |role: Role| -> Res<(Party, bool)> {
            let i = parties.iter().position(|(r, _)| *r == role).ok_or(Reported)?;
            parties.swap_remove(i).1
        };
        let (upstream, up_ca) = take(up_role)?;
        let (downstream, _) = take(down_role)?;
        Ok(Intake {
            kind: kind?,
            upstream,
            downstream,
            signers: signers?,
            effective_date: effective_date?,
            term: term?,
            states: states?.unwrap_or_default(),
            breach_notice_days: u8::try_from(breach?).map_err(|_| Reported)?,
            ca_licensed_facility: up_role == Role::CoveredEntity && up_ca,
            exhibits: exhibits?.unwrap_or_default(),
        })
    }

    fn relationship(&mut self, v: &Value, ptr: &str) -> Res<Relationship> {
        let s = self.string(v, ptr)?;
        match s.trim().to_ascii_lowercase().as_str() {
            "covered_entity_to_business_associate" => Ok(Relationship::CoveredEntityToBusinessAssociate),
            "business_associate_to_subcontractor" => Ok(Relationship::BusinessAssociateToSubcontractor),
            _ => self.fail(
                ptr,
                format!(
                    "{} is not a relationship; must be \"covered_entity_to_business_associate\" or \
                     \"business_associate_to_subcontractor\"",
                    quote(s)
                ),
            ),
        }
    }

    /// A party, and its `california_licensed_facility` flag (covered entity only).
    fn party(&mut self, v: &Value, ptr: &str, role: Role) -> Res<(Party, bool)> {
        let is_ce = role == Role::CoveredEntity;
        let mut known = PARTY_FIELDS.to_vec();
        let mut notes = Vec::new();
        if is_ce {
            known.push(CA_FACILITY);
        } else {
            notes.push((CA_FACILITY, "only covered_entity has it".to_owned()));
        }
        let o = self.object(v, ptr, &known, &notes)?;
        let legal_name = self.req(&o, "legal_name", |p, v, ptr| p.text(v, ptr, MAX_NAME_CHARS));
        let address = self.req(&o, "address", |p, v, ptr| p.address(v, ptr));
        let privacy_contact = self.req(&o, "privacy_contact", |p, v, ptr| p.contact(v, ptr));
        let security_contact = self.req(&o, "security_contact", |p, v, ptr| p.contact(v, ptr));
        let ca = if is_ce { self.opt(&o, CA_FACILITY, |p, v, ptr| p.boolean(v, ptr)) } else { Ok(None) };
        let party = Party {
            role,
            legal_name: legal_name?,
            address: address?,
            privacy_contact: privacy_contact?,
            security_contact: security_contact?,
        };
        Ok((party, ca?.unwrap_or(false)))
    }

    fn address(&mut self, v: &Value, ptr: &str) -> Res<Address> {
        let o = self.object(v, ptr, ADDRESS_FIELDS, &[])?;
        let street = self.req(&o, "street", |p, v, ptr| p.text(v, ptr, MAX_NAME_CHARS));
        let city = self.req(&o, "city", |p, v, ptr| p.text(v, ptr, MAX_NAME_CHARS));
        let state = self.req(&o, "state", |p, v, ptr| p.state(v, ptr));
        let postal_code = self.req(&o, "postal_code", |p, v, ptr| p.postal_code(v, ptr));
        Ok(Address { street: street?, city: city?, state: state?, postal_code: postal_code? })
    }

    fn contact(&mut self, v: &Value, ptr: &str) -> Res<Contact> {
        let o = self.object(v, ptr, CONTACT_FIELDS, &[])?;
        let name = self.req(&o, "name", |p, v, ptr| p.text(v, ptr, MAX_NAME_CHARS));
        let email = self.req(&o, "email", |p, v, ptr| p.email(v, ptr));
        let phone = self.opt(&o, "phone", |p, v, ptr| p.phone(v, ptr));
        Ok(Contact { name: name?, email: email?, phone: phone?.flatten() })
    }

    fn signers(&mut self, top: &Obj, shape: &Shape) -> Res<Vec<Signer>> {
        let ptr = top.ptr("signers");
        let Some(v) = top.get("signers") else {
            return self.fail(&ptr, "required");
        };
        let mut named: Vec<Role> = Vec::new();
        let raw = self.list(v, &ptr, true, |p, v, ptr| p.signer(v, ptr, shape, &mut named));
        let listed = matches!(v, Value::Array(items) if !items.is_empty() && items.len() <= MAX_ITEMS);
        let mut covered = true;
        if let (true, Some(parties)) = (listed, shape.parties) {
            for role in parties {
                if !named.contains(&role) {
                    self.report(&ptr, format!("no signer for {}; each party needs at least one", role.key()));
                    covered = false;
                }
            }
        }
        let raw = raw?;
        if !covered {
            return Err(Reported);
        }
        let mut signers: Vec<Signer> = raw
            .into_iter()
            .map(|s| Signer {
                side: shape.side(s.role),
                name: s.name,
                title: s.title,
                email: s.email,
                order: s.order,
                verify_email_code: s.verify_email_code,
            })
            .collect();
        signers.sort_by_key(|s| s.order); // stable: ties keep intake order
        Ok(signers)
    }

    fn signer(&mut self, v: &Value, ptr: &str, shape: &Shape, named: &mut Vec<Role>) -> Res<RawSigner> {
        let o = self.object(v, ptr, SIGNER_FIELDS, &[])?;
        let role = self.req(&o, "party", |p, v, ptr| {
            let s = p.text(v, ptr, MAX_NAME_CHARS)?;
            let key = s.to_ascii_lowercase();
            match shape.roles.iter().find(|r| r.key() == key) {
                Some(r) => Ok(*r),
                None => {
                    let keys: Vec<&str> = shape.roles.iter().map(|r| r.key()).collect();
                    p.fail(
                        ptr,
                        format!("{} is not a party to this agreement; expected {}", quote(&s), quoted_list(&keys)),
                    )
                }
            }
        });
        if let Ok(r) = role {
            named.push(r);
        }
        let name = self.req(&o, "name", |p, v, ptr| p.text(v, ptr, MAX_NAME_CHARS));
        let title = self.req(&o, "title", |p, v, ptr| p.text(v, ptr, MAX_NAME_CHARS));
        let email = self.req(&o, "email", |p, v, ptr| p.email(v, ptr));
        let order_msg = format!("must be 1–{MAX_SIGNING_ORDER}");
        let order = self.req(&o, "order", |p, v, ptr| p.integer(v, ptr, 1, MAX_SIGNING_ORDER, &order_msg));
        let code = self.opt(&o, "verify_email_code", |p, v, ptr| p.boolean(v, ptr));
        Ok(RawSigner {
            role: role?,
            name: name?,
            title: title?,
            email: email?,
            order: u32::try_from(order?).map_err(|_| Reported)?,
            verify_email_code: code?.unwrap_or(false),
        })
    }

    fn term(&mut self, v: &Value, ptr: &str) -> Res<Term> {
        let o = self.object(v, ptr, TERM_FIELDS, &[])?;
        let months = self.req(&o, "months", |p, v, ptr| p.integer(v, ptr, 1, 120, "must be 1–120"));
        let auto_renew = self.req(&o, "auto_renew", |p, v, ptr| p.boolean(v, ptr));
        Ok(Term { months: u16::try_from(months?).map_err(|_| Reported)?, auto_renew: auto_renew? })
    }

    /// State codes, duplicates folded (first occurrence kept).
    fn states(&mut self, v: &Value, ptr: &str) -> Res<Vec<StateCode>> {
        let codes = self.list(v, ptr, false, |p, v, ptr| p.state(v, ptr))?;
        let mut seen = HashSet::new();
        Ok(codes.into_iter().filter(|c| seen.insert(*c)).collect())
    }

    fn exhibit(&mut self, v: &Value, ptr: &str) -> Res<Exhibit> {
        let o = self.object(v, ptr, EXHIBIT_FIELDS, &[])?;
        let title = self.req(&o, "title", |p, v, ptr| p.text(v, ptr, MAX_NAME_CHARS));
        let text = self.req(&o, "text", |p, v, ptr| {
            let raw = p.string(v, ptr)?;
            let s = p.clean(raw, ptr, MAX_EXHIBIT_CHARS, true)?;
            if s.is_empty() { p.fail(ptr, "must not be empty") } else { Ok(paragraphs(&s)) }
        });
        Ok(Exhibit { title: title?, paragraphs: text? })
    }

    fn baa(&mut self, top: &Obj, relationship: Relationship) -> Res<Baa> {
        let parent_agreement_id = match relationship {
            Relationship::BusinessAssociateToSubcontractor => {
                self.opt(top, "parent_agreement_id", |p, v, ptr| p.text_or_blank(v, ptr, MAX_NAME_CHARS))
            }
            Relationship::CoveredEntityToBusinessAssociate => Ok(None),
        };
        let services = self.req(top, "services", |p, v, ptr| p.text(v, ptr, MAX_TEXT_CHARS));
        let use_cases = self.opt(top, "use_cases", |p, v, ptr| p.text_list(v, ptr, false));
        let phi_types = self.req(top, "phi_types", |p, v, ptr| p.text_list(v, ptr, true));
        let subcontractors =
            self.opt(top, "subcontractors", |p, v, ptr| p.list(v, ptr, false, |p, v, ptr| p.subcontractor(v, ptr)));
        let options = self.opt(top, "options", |p, v, ptr| p.options(v, ptr));
        let provisions = self.opt(top, "provisions", |p, v, ptr| p.provisions(v, ptr, relationship));
        Ok(Baa {
            provisions: Box::new(provisions?.unwrap_or_default()),
            relationship,
            parent_agreement_id: parent_agreement_id?.flatten(),
            services: services?,
            use_cases: use_cases?.unwrap_or_default(),
            phi_types: phi_types?,
            subcontractors: subcontractors?.unwrap_or_default(),
            options: options?.unwrap_or_default(),
        })
    }

    fn subcontractor(&mut self, v: &Value, ptr: &str) -> Res<Subcontractor> {
        let o = self.object(v, ptr, SUBCONTRACTOR_FIELDS, &[])?;
        let legal_name = self.req(&o, "legal_name", |p, v, ptr| p.text(v, ptr, MAX_NAME_CHARS));
        let services = self.req(&o, "services", |p, v, ptr| p.text(v, ptr, MAX_ITEM_CHARS));
        let baa_in_place = self.req(&o, "baa_in_place", |p, v, ptr| p.boolean(v, ptr));
        Ok(Subcontractor { legal_name: legal_name?, services: services?, baa_in_place: baa_in_place? })
    }

    fn options(&mut self, v: &Value, ptr: &str) -> Res<BaaOptions> {
        let o = self.object(v, ptr, OPTIONS_FIELDS, &[])?;
        let flag =
            |p: &mut Self, key: &str| p.opt(&o, key, |p, v, ptr| p.boolean(v, ptr)).map(Option::unwrap_or_default);
        let management_and_administration = flag(self, "management_and_administration");
        let data_aggregation = flag(self, "data_aggregation");
        let de_identification = flag(self, "de_identification");
        Ok(BaaOptions {
            management_and_administration: management_and_administration?,
            data_aggregation: data_aggregation?,
            de_identification: de_identification?,
        })
    }

    /// `false` turns a provision off; an object sets its parameters; absent keeps the default.
    fn choice<T>(
        &mut self,
        v: &Value,
        ptr: &str,
        on: impl FnOnce(&mut Self, &Value, &str) -> Res<T>,
    ) -> Res<Choice<T>> {
        match v {
            Value::Bool(false) => Ok(Choice::Off),
            Value::Object(_) => on(self, v, ptr).map(Choice::On),
            _ => self.fail(ptr, expected("false or an object", v)),
        }
    }

    fn provisions(&mut self, v: &Value, ptr: &str, relationship: Relationship) -> Res<ProvisionChoices> {
        let o = self.object(v, ptr, PROVISION_FIELDS, &[])?;
        let audit_rights = self.opt(&o, "audit_rights", |p, v, ptr| {
            p.choice(v, ptr, |p, v, ptr| {
                let o = p.object(v, ptr, AUDIT_FIELDS, &[])?;
                let notice_days = p.opt(&o, "notice_days", |p, v, ptr| p.integer(v, ptr, 0, 365, "must be 0–365"));
                let per_year = p.opt(&o, "per_year", |p, v, ptr| p.integer(v, ptr, 1, 12, "must be 1–12"));
                let cost = p.opt(&o, "cost", |p, v, ptr| {
                    let s = p.text(v, ptr, 40)?;
                    match s.as_str() {
                        "covered_entity" => Ok(CostBearer::CoveredEntity),
                        "business_associate" => Ok(CostBearer::BusinessAssociate),
                        "shared" => Ok(CostBearer::Shared),
                        _ => p.fail(
                            ptr,
                            format!("{} is not one of covered_entity, business_associate, shared", quote(&s)),
                        ),
                    }
                });
                Ok(AuditInput {
                    notice_days: notice_days?.map(|n| n as u32),
                    per_year: per_year?.map(|n| n as u32),
                    cost: cost?,
                })
            })
        });
        let liability = self.opt(&o, "liability", |p, v, ptr| {
            p.choice(v, ptr, |p, v, ptr| {
                let o = p.object(v, ptr, LIABILITY_FIELDS, &[])?;
                let mutual = p.opt(&o, "mutual", |p, v, ptr| p.boolean(v, ptr));
                let multiple = p.opt(&o, "cap_multiple_of_fees", |p, v, ptr| match v.as_f64() {
                    Some(m) if (0.1..=100.0).contains(&m) => Ok(m),
                    Some(_) => p.fail(ptr, "must be between 0.1 and 100"),
                    None => p.fail(ptr, expected("a number", v)),
                });
                let amount = p.opt(&o, "cap_amount_usd", |p, v, ptr| {
                    p.integer(v, ptr, 1, 1_000_000_000_000, "must be a whole number of US dollars, at least 1")
                });
                let carve = p.opt(&o, "phi_carve_out", |p, v, ptr| p.boolean(v, ptr));
                let floor = p.opt(&o, "cap_floor_usd", |p, v, ptr| {
                    p.integer(v, ptr, 1, 1_000_000_000_000, "must be a whole number of US dollars, at least 1")
                });
                let parties: [&str; 2] = match relationship {
                    Relationship::CoveredEntityToBusinessAssociate => ["covered_entity", "business_associate"],
                    Relationship::BusinessAssociateToSubcontractor => ["business_associate", "subcontractor"],
                };
                let public_body = p.opt(&o, "public_body", |p, v, ptr| {
                    let s = p.text(v, ptr, 40)?;
                    if parties.contains(&s.as_str()) {
                        Ok(s)
                    } else {
                        p.fail(ptr, format!("{} is not one of {}", quote(&s), parties.join(", ")))
                    }
                });
                let (multiple, amount) = (multiple?, amount?);
                let cap = match (multiple, amount) {
                    (Some(_), Some(_)) => {
                        return p
                            .fail(&o.ptr("cap_amount_usd"), "give cap_multiple_of_fees or cap_amount_usd, not both");
                    }
                    (Some(m), None) => Some(Cap::MultipleOfFees(m)),
                    (None, Some(a)) => Some(Cap::AmountUsd(a as u64)),
                    (None, None) => None,
                };
                let cap_floor_usd = floor?.map(|n| n as u64);
                if cap_floor_usd.is_some() && matches!(cap, Some(Cap::AmountUsd(_))) {
                    return p
                        .fail(&o.ptr("cap_floor_usd"), "a floor goes with cap_multiple_of_fees, not cap_amount_usd");
                }
                Ok(LiabilityInput {
                    mutual: mutual?,
                    cap,
                    cap_floor_usd,
                    phi_carve_out: carve?,
                    public_body: public_body?,
                })
            })
        });
        let preemption = self.opt(&o, "preemption", |p, v, ptr| p.boolean(v, ptr));
        let cyber_insurance = self.opt(&o, "cyber_insurance", |p, v, ptr| {
            p.choice(v, ptr, |p, v, ptr| {
                let o = p.object(v, ptr, INSURANCE_FIELDS, &[])?;
                let c = p.opt(&o, "coverage_usd", |p, v, ptr| {
                    p.integer(v, ptr, 1, 1_000_000_000_000, "must be a whole number of US dollars, at least 1")
                });
                Ok(InsuranceInput { coverage_usd: c?.map(|n| n as u64) })
            })
        });
        let cure = self.opt(&o, "cure_period_days", |p, v, ptr| p.integer(v, ptr, 0, 60, "must be 0–60 days"));
        let lds = self.opt(&o, "limited_data_set", |p, v, ptr| match v {
            Value::Bool(true) => Ok(Choice::On(LdsInput::default())),
            _ => p.choice(v, ptr, |p, v, ptr| {
                let o = p.object(v, ptr, LDS_FIELDS, &[])?;
                let r = p.opt(&o, "dua_reference", |p, v, ptr| p.text_or_blank(v, ptr, MAX_NAME_CHARS));
                Ok(LdsInput { dua_reference: r?.flatten() })
            }),
        });
        let law = self.opt(&o, "governing_law", |p, v, ptr| p.state(v, ptr));
        let security = self.opt(&o, "security_controls", |p, v, ptr| {
            p.choice(v, ptr, |p, v, ptr| {
                let o = p.object(v, ptr, SECURITY_FIELDS, &[])?;
                let y = p.opt(&o, "log_retention_years", |p, v, ptr| p.integer(v, ptr, 1, 50, "must be 1–50 years"));
                Ok(SecurityInput { log_retention_years: y?.map(|n| n as u32) })
            })
        });
        let location = self.opt(&o, "data_location", |p, v, ptr| p.boolean(v, ptr));
        let objection =
            self.opt(&o, "subcontractor_objection_days", |p, v, ptr| p.integer(v, ptr, 0, 60, "must be 0–60 days"));
        let costs = self.opt(&o, "breach_costs", |p, v, ptr| {
            let o = p.object(v, ptr, BREACH_COSTS_FIELDS, &[])?;
            let m = p.opt(&o, "credit_monitoring_months", |p, v, ptr| p.integer(v, ptr, 0, 60, "must be 0–60 months"));
            Ok(BreachCostsInput { credit_monitoring_months: m?.map(|n| n as u32) })
        });
        let part2 = self.opt(&o, "part2", |p, v, ptr| p.boolean(v, ptr));
        let agency = self.opt(&o, "agency", |p, v, ptr| p.boolean(v, ptr));
        let change = self.opt(&o, "change_in_law_days", |p, v, ptr| p.integer(v, ptr, 1, 365, "must be 1–365 days"));
        Ok(ProvisionChoices {
            security_controls: security?.unwrap_or_default(),
            data_location: location?,
            subcontractor_objection_days: objection?.map(|n| n as u32),
            breach_costs: costs?,
            part2: part2?,
            agency: agency?,
            change_in_law_days: change?.map(|n| n as u32),
            audit_rights: audit_rights?.unwrap_or_default(),
            liability: liability?.unwrap_or_default(),
            preemption: preemption?,
            cyber_insurance: cyber_insurance?.unwrap_or_default(),
            cure_period_days: cure?.map(|n| n as u32),
            limited_data_set: lds?.unwrap_or_default(),
            governing_law: law?,
        })
    }

    fn dua(&mut self, top: &Obj) -> Res<Dua> {
        let purpose = self.req(top, "purpose", |p, v, ptr| {
            let s = p.text(v, ptr, MAX_NAME_CHARS)?;
            match s.to_lowercase().as_str() {
                "research" => Ok(Purpose::Research),
                "public_health" | "public health" => Ok(Purpose::PublicHealth),
                "health_care_operations" | "health care operations" => Ok(Purpose::HealthCareOperations),
                _ => p.fail(
                    ptr,
                    format!(
                        "{} is not a permitted purpose; a limited data set may be used only for research, \
                         public_health or health_care_operations (45 CFR 164.514(e)(3)(i))",
                        quote(&s)
                    ),
                ),
            }
        });
        let project_description = self.req(top, "project_description", |p, v, ptr| p.text(v, ptr, MAX_TEXT_CHARS));
        let permitted_recipients = self.req(top, "permitted_recipients", |p, v, ptr| p.text_list(v, ptr, true));
        let data_elements = self.req(top, "data_elements", |p, v, ptr| {
            p.list(v, ptr, true, |p, v, ptr| {
                let s = p.text(v, ptr, MAX_ITEM_CHARS)?;
                match identifiers::screen(&s) {
                    Some(id) => p.fail(
                        ptr,
                        format!(
                            "{} is a direct identifier ({}, {}) and may not be in a limited data set",
                            quote(&s),
                            id.name,
                            id.citation
                        ),
                    ),
                    None => Ok(s),
                }
            })
        });
        Ok(Dua {
            purpose: purpose?,
            project_description: project_description?,
            permitted_recipients: permitted_recipients?,
            data_elements: data_elements?,
        })
    }
}

/// `12345` or `12345-6789`.
fn is_zip(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: &[u8]| r.iter().all(u8::is_ascii_digit);
    match b.len() {
        5 => digits(b),
        10 => digits(&b[..5]) && b[5] == b'-' && digits(&b[6..]),
        _ => false,
    }
}

/// Digits with the usual punctuation (`+1 (512) 555-0100`), 7–15 digits, optional extension
/// (`x 12`, `ext. 12`).
fn is_phone(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let (main, ext) = match lower.split_once("ext").or_else(|| lower.split_once('x')) {
        Some((m, e)) => (m, Some(e.trim_start_matches(['.', ' ', ':']))),
        None => (lower.as_str(), None),
    };
    let main_digits = main.chars().filter(char::is_ascii_digit).count();
    main.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c))
        && (7..=15).contains(&main_digits)
        && ext.is_none_or(|e| (1..=6).contains(&e.len()) && e.chars().all(|c| c.is_ascii_digit()))
}

/// Splits exhibit text on blank lines; each paragraph's lines are joined with single spaces.
fn paragraphs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines: Vec<&str> = Vec::new();
    for line in text.split('\n') {
        let line = line.trim();
        if line.is_empty() {
            if !lines.is_empty() {
                out.push(lines.join(" "));
                lines.clear();
            }
        } else {
            lines.push(line);
        }
    }
    if !lines.is_empty() {
        out.push(lines.join(" "));
    }
    out
}

/// Pointers of keys given more than once in the same object.
fn duplicate_keys(json: &str) -> Vec<String> {
    let mut dups = Vec::new();
    let mut de = serde_json::Deserializer::from_str(json);
    // The text already parsed as a Value, so this cannot fail; if it somehow did, the partial
    // list is still right as far as it goes.
    let _ = DupScan { ptr: String::new(), dups: &mut dups }.deserialize(&mut de);
    dups
}

struct DupScan<'a> {
    ptr: String,
    dups: &'a mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for DupScan<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DupScan<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let DupScan { ptr, dups } = self;
        let mut i = 0usize;
        while seq.next_element_seed(DupScan { ptr: format!("{ptr}/{i}"), dups: &mut *dups })?.is_some() {
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let DupScan { ptr, dups } = self;
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let at = child(&ptr, &key);
            if !seen.insert(key) {
                dups.push(at.clone());
            }
            map.next_value_seed(DupScan { ptr: at, dups: &mut *dups })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::findings::Level;
    use super::*;
    use proptest::prelude::*;

    const BAA: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/intake/baa-tx-ca.json"));
    const DUA: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/intake/dua-ny-research.json"));

    /// Latin-1 + Latin Extended-A/B and the typographic punctuation the font carries.
    fn printable(c: char) -> bool {
        (c as u32) < 0x250 || "–—‘’“”•…".contains(c)
    }

    fn json(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    fn parse(v: &Value) -> Result<Intake, Vec<Finding>> {
        parse_intake(&v.to_string(), &printable)
    }

    fn ok(v: &Value) -> Intake {
        match parse(v) {
            Ok(i) => i,
            Err(f) => panic!("expected success, got {}", render(&f)),
        }
    }

    fn errors(v: &Value) -> Vec<Finding> {
        match parse(v) {
            Ok(_) => panic!("expected findings"),
            Err(f) => f,
        }
    }

    fn render(findings: &[Finding]) -> String {
        findings.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("\n")
    }

    /// The finding at `pointer`; panics listing all findings if there is none.
    fn at<'f>(findings: &'f [Finding], pointer: &str) -> &'f Finding {
        findings
            .iter()
            .find(|f| f.pointer.as_deref() == Some(pointer))
            .unwrap_or_else(|| panic!("no finding at {pointer:?}; got:\n{}", render(findings)))
    }

    /// Sets the value at `pointer`, adding the field if its object lacks it.
    fn set(v: &mut Value, pointer: &str, new: Value) {
        if let Some(slot) = v.pointer_mut(pointer) {
            *slot = new;
            return;
        }
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let key = key.replace("~1", "/").replace("~0", "~");
        v.pointer_mut(parent).and_then(Value::as_object_mut).unwrap_or_else(|| panic!("no {pointer}")).insert(key, new);
    }

    fn remove(v: &mut Value, pointer: &str) {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        v.pointer_mut(parent).unwrap().as_object_mut().unwrap().remove(key).unwrap();
    }

    #[test]
    fn baa_example_parses() {
        let i = ok(&json(BAA));
        let Kind::Baa(baa) = &i.kind else { panic!("not a BAA") };
        assert_eq!(baa.relationship, Relationship::CoveredEntityToBusinessAssociate);
        assert_eq!(baa.parent_agreement_id, None);
        assert_eq!(baa.services, "Appointment reminders and two-way patient messaging");
        assert_eq!(baa.use_cases, ["appointment reminders", "patient intake forms"]);
        assert_eq!(baa.phi_types, ["names", "contact_details", "medical_record_numbers", "appointment_information"]);
        assert_eq!(
            baa.subcontractors,
            [Subcontractor {
                legal_name: "Harbor Cloud Hosting LLC".into(),
                services: "infrastructure hosting".into(),
                baa_in_place: true
            }]
        );
        assert_eq!(
            baa.options,
            BaaOptions { management_and_administration: true, data_aggregation: false, de_identification: false }
        );
        assert_eq!(i.upstream.role, Role::CoveredEntity);
        assert_eq!(i.upstream.legal_name, "Lakeside Family Clinic, P.C.");
        assert_eq!(i.upstream.address.one_line(), "1200 Shoreline Dr, Austin, TX 78701");
        assert_eq!(i.upstream.privacy_contact.phone.as_deref(), Some("+1 512 555 0100"));
        assert_eq!(i.upstream.security_contact.phone, None);
        assert_eq!(i.downstream.role, Role::BusinessAssociate);
        assert_eq!(i.downstream.security_contact.name, "Łukasz Żółć");
        assert_eq!(i.downstream.privacy_contact.email.as_str(), "privacy@northwind.example");
        let signers: Vec<(&str, Side, u32)> = i.signers.iter().map(|s| (s.name.as_str(), s.side, s.order)).collect();
        assert_eq!(signers, [("Priya Raman", Side::Downstream, 1), ("Zoë Ångström", Side::Upstream, 2)]);
        assert_eq!(i.effective_date, Date { year: 2027, month: 1, day: 1 });
        assert_eq!(i.term, Term { months: 36, auto_renew: true });
        let states: Vec<&str> = i.states.iter().map(|s| s.code()).collect();
        assert_eq!(states, ["TX", "CA"]);
        assert_eq!(i.breach_notice_days, 10);
        assert!(!i.ca_licensed_facility);
        assert!(i.exhibits.is_empty());
    }

    #[test]
    fn dua_example_parses() {
        let i = ok(&json(DUA));
        let Kind::Dua(dua) = &i.kind else { panic!("not a DUA") };
        assert_eq!(dua.purpose, Purpose::Research);
        assert_eq!(dua.project_description, "Retrospective study of appointment no-show rates by distance to clinic");
        assert_eq!(dua.permitted_recipients.len(), 2);
        assert_eq!(
            dua.data_elements,
            ["dates of service", "5-digit ZIP code", "age at visit", "diagnosis codes", "appointment status"]
        );
        assert_eq!((i.upstream.role, i.downstream.role), (Role::CoveredEntity, Role::DataRecipient));
        let signers: Vec<(&str, Side)> = i.signers.iter().map(|s| (s.name.as_str(), s.side)).collect();
        assert_eq!(signers, [("Irene Novak", Side::Downstream), ("Grace Kim", Side::Upstream)]);
        assert_eq!(i.states.iter().map(|s| s.code()).collect::<Vec<_>>(), ["NY"]);
        assert_eq!(i.breach_notice_days, 15);
        assert_eq!(i.term, Term { months: 24, auto_renew: false });
    }

    #[test]
    fn examples_parse_as_written() {
        // The exact file text, not a re-serialization.
        assert!(parse_intake(BAA, &printable).is_ok());
        assert!(parse_intake(DUA, &printable).is_ok());
    }

    #[test]
    fn unknown_field_suggests_the_nearest_name() {
        let mut v = json(BAA);
        let ba = v.as_object_mut().unwrap().remove("business_associate").unwrap();
        v.as_object_mut().unwrap().insert("business_asociate".into(), ba);
        let f = errors(&v);
        assert_eq!(
            at(&f, "/business_asociate").to_string(),
            "/business_asociate: unknown field; did you mean \"business_associate\"?"
        );
        assert_eq!(at(&f, "/business_associate").message, "required");
    }

    #[test]
    fn unknown_nested_field_suggests_or_lists() {
        let mut v = json(BAA);
        v["covered_entity"]["address"]["zip"] = "78701".into();
        v["term"]["montsh"] = 12.into();
        v["term"]["frobnicate"] = true.into();
        let f = errors(&v);
        assert!(at(&f, "/covered_entity/address/zip").message.contains("did you mean \"postal_code\"?"));
        assert!(at(&f, "/term/montsh").message.contains("did you mean \"months\"?"));
        assert_eq!(at(&f, "/term/frobnicate").message, "unknown field; expected one of: months, auto_renew");
    }

    #[test]
    fn fields_of_the_other_kind_are_unknown() {
        let mut v = json(BAA);
        v["purpose"] = "research".into();
        v["business_associate"]["california_licensed_facility"] = true.into();
        let f = errors(&v);
        assert_eq!(at(&f, "/purpose").message, "unknown field (only a DUA has \"purpose\")");
        assert!(at(&f, "/business_associate/california_licensed_facility").message.starts_with("unknown field"));

        let mut v = json(DUA);
        v["services"] = "hosting".into();
        assert_eq!(at(&errors(&v), "/services").message, "unknown field (only a BAA has \"services\")");
    }

    #[test]
    fn bad_signer_email() {
        let mut v = json(BAA);
        set(&mut v, "/signers/1/email", "zoe at lakeside".into());
        let f = errors(&v);
        assert_eq!(f.len(), 1, "{}", render(&f));
        assert_eq!(f[0].to_string(), "/signers/1/email: not an email address");
        assert_eq!((f[0].level, f[0].code), (Level::Error, "invalid_field"));
    }

    #[test]
    fn breach_notice_days_range() {
        for days in [61, 0, -5] {
            let mut v = json(BAA);
            v["breach_notice_days"] = days.into();
            assert_eq!(errors(&v)[0].to_string(), "/breach_notice_days: must be 1–60 (45 CFR 164.410(b))", "{days}");
        }
        let mut v = json(DUA);
        v["breach_notice_days"] = 61.into();
        assert_eq!(
            at(&errors(&v), "/breach_notice_days").message,
            "must be 1–60 (the DUA-06 reporting duty, 45 CFR 164.514(e)(4)(ii)(C)(3))"
        );
        v["breach_notice_days"] = "10".into();
        assert_eq!(at(&errors(&v), "/breach_notice_days").message, "expected an integer, found a string");
        v["breach_notice_days"] = json("10.5");
        assert_eq!(at(&errors(&v), "/breach_notice_days").message, "expected an integer");
    }

    #[test]
    fn impossible_date() {
        let mut v = json(BAA);
        v["effective_date"] = "2027-02-30".into();
        assert_eq!(at(&errors(&v), "/effective_date").message, "\"2027-02-30\" is not a valid date: no such date");
        for bad in ["02/01/2027", "2027-+1-01", "2027-1-01"] {
            v["effective_date"] = bad.into();
            assert!(at(&errors(&v), "/effective_date").message.contains("YYYY-MM-DD"), "{bad}");
        }
    }

    #[test]
    fn unknown_state_code() {
        let mut v = json(BAA);
        v["states"] = json(r#"["ZZ", "TX"]"#);
        let f = errors(&v);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].to_string(), "/states/0: \"ZZ\" is not a US state or territory code");
        v["states"] = json(r#"["ca", "TX", "CA", "pr"]"#);
        let codes: Vec<&str> = ok(&v).states.iter().map(|s| s.code()).collect();
        assert_eq!(codes, ["CA", "TX", "PR"]);
        v["covered_entity"]["address"]["state"] = "XX".into();
        assert!(at(&errors(&v), "/covered_entity/address/state").message.contains("\"XX\""));
    }

    #[test]
    fn direct_identifier_in_a_limited_data_set() {
        let mut v = json(DUA);
        set(&mut v, "/data_elements/2", "patient email".into());
        let f = errors(&v);
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].to_string(),
            "/data_elements/2: \"patient email\" is a direct identifier (email addresses, 45 CFR 164.514(e)(2)(v)) \
             and may not be in a limited data set"
        );
    }

    #[test]
    fn dua_purpose() {
        let mut v = json(DUA);
        for (given, want) in [
            ("public health", Purpose::PublicHealth),
            ("Health Care Operations", Purpose::HealthCareOperations),
            ("health_care_operations", Purpose::HealthCareOperations),
            ("public_health", Purpose::PublicHealth),
        ] {
            v["purpose"] = given.into();
            let Kind::Dua(d) = ok(&v).kind else { panic!() };
            assert_eq!(d.purpose, want);
        }
        v["purpose"] = "marketing".into();
        assert!(at(&errors(&v), "/purpose").message.contains("45 CFR 164.514(e)(3)(i)"));
    }

    #[test]
    fn missing_privacy_contact() {
        let mut v = json(BAA);
        remove(&mut v, "/business_associate/privacy_contact");
        let f = errors(&v);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].to_string(), "/business_associate/privacy_contact: required");
    }

    #[test]
    fn signer_for_a_party_not_in_the_agreement() {
        let mut v = json(BAA);
        set(&mut v, "/signers/0/party", "data_recipient".into());
        let f = errors(&v);
        assert_eq!(
            at(&f, "/signers/0/party").message,
            "\"data_recipient\" is not a party to this agreement; expected \"covered_entity\" or \"business_associate\""
        );
        assert!(at(&f, "/signers").message.contains("business_associate"));
    }

    #[test]
    fn every_party_needs_a_signer() {
        let mut v = json(BAA);
        v["signers"].as_array_mut().unwrap().remove(1);
        let f = errors(&v);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].to_string(), "/signers: no signer for covered_entity; each party needs at least one");
        v["signers"] = json("[]");
        assert_eq!(at(&errors(&v), "/signers").message, "must not be empty");
    }

    #[test]
    fn a_bad_signer_field_does_not_hide_its_party() {
        let mut v = json(BAA);
        set(&mut v, "/signers/1/order", 0.into());
        let f = errors(&v);
        assert_eq!(f.len(), 1, "{}", render(&f));
        assert_eq!(f[0].to_string(), "/signers/1/order: must be 1–999");
    }

    #[test]
    fn signers_sorted_by_order_stably() {
        let mut v = json(BAA);
        v["signers"] = json(
            r#"[
            {"party": "covered_entity", "name": "A", "title": "T", "email": "a@x.example", "order": 2},
            {"party": "business_associate", "name": "B", "title": "T", "email": "b@x.example", "order": 1},
            {"party": "business_associate", "name": "C", "title": "T", "email": "c@x.example", "order": 2},
            {"party": "covered_entity", "name": "D", "title": "T", "email": "d@x.example", "order": 1}
        ]"#,
        );
        let names: Vec<String> = ok(&v).signers.into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["B", "D", "A", "C"]);
    }

    #[test]
    fn unprintable_character() {
        let mut v = json(BAA);
        set(&mut v, "/business_associate/legal_name", "Snowman ☃ Messaging".into());
        let f = errors(&v);
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].to_string(),
            "/business_associate/legal_name: character \"☃\" (U+2603) cannot be printed by the document font"
        );
    }

    #[test]
    fn control_characters_and_line_breaks() {
        let mut v = json(BAA);
        set(&mut v, "/services", "Messaging\tand reminders".into());
        set(&mut v, "/covered_entity/address/street", "1200 Shoreline Dr\nSuite 5".into());
        let f = errors(&v);
        assert_eq!(at(&f, "/services").message, "control character U+0009 is not allowed");
        assert_eq!(at(&f, "/covered_entity/address/street").message, "line breaks are not allowed here");
    }

    #[test]
    fn text_is_nfc_normalized_and_trimmed() {
        let mut v = json(BAA);
        set(&mut v, "/signers/1/name", "  Zoe\u{308} A\u{30a}ngstro\u{308}m \n".into());
        let i = ok(&v);
        assert_eq!(i.signers[1].name, "Zoë Ångström");
        assert_eq!(i.signers[1].name, json(BAA)["signers"][1]["name"].as_str().unwrap());
    }

    #[test]
    fn empty_and_overlong_text() {
        let mut v = json(BAA);
        set(&mut v, "/covered_entity/legal_name", "   ".into());
        set(&mut v, "/business_associate/legal_name", "x".repeat(MAX_NAME_CHARS + 1).into());
        set(&mut v, "/phi_types", json("[]"));
        set(&mut v, "/use_cases/1", "".into());
        set(&mut v, "/covered_entity/privacy_contact/phone", "".into());
        let f = errors(&v);
        assert_eq!(at(&f, "/covered_entity/legal_name").message, "must not be empty");
        assert_eq!(at(&f, "/business_associate/legal_name").message, "must be at most 200 characters (has 201)");
        assert_eq!(at(&f, "/phi_types").message, "must not be empty");
        assert_eq!(at(&f, "/use_cases/1").message, "must not be empty");
        assert!(f.iter().all(|x| x.pointer.as_deref() != Some("/covered_entity/privacy_contact/phone")));
        let mut v = json(BAA);
        v["use_cases"] = Value::Array(vec!["x".into(); MAX_ITEMS + 1]);
        assert_eq!(at(&errors(&v), "/use_cases").message, "must have at most 100 items (has 101)");
    }

    #[test]
    fn wrong_json_types() {
        let mut v = json(BAA);
        set(&mut v, "/term/months", "36".into());
        set(&mut v, "/term/auto_renew", "yes".into());
        set(&mut v, "/options", json("[]"));
        set(&mut v, "/phi_types", "names".into());
        let f = errors(&v);
        assert_eq!(at(&f, "/term/months").message, "expected an integer, found a string");
        assert_eq!(at(&f, "/term/auto_renew").message, "expected true or false, found a string");
        assert_eq!(at(&f, "/options").message, "expected an object, found a list");
        assert_eq!(at(&f, "/phi_types").message, "expected a list, found a string");
        assert_eq!(at(&errors(&json("[1]")), "").message, "expected a JSON object, found a list");
    }

    #[test]
    fn zip_and_phone() {
        let mut v = json(BAA);
        for zip in ["78701-1234", " 78701 "] {
            set(&mut v, "/covered_entity/address/postal_code", zip.into());
            ok(&v);
        }
        for phone in ["(512) 555-0100", "512.555.0100 ext. 12", "+44 20 7946 0958"] {
            set(&mut v, "/covered_entity/privacy_contact/phone", phone.into());
            ok(&v);
        }
        set(&mut v, "/covered_entity/address/postal_code", "7870".into());
        set(&mut v, "/covered_entity/privacy_contact/phone", "call the front desk".into());
        let f = errors(&v);
        assert!(at(&f, "/covered_entity/address/postal_code").message.contains("not a US ZIP code"));
        assert!(at(&f, "/covered_entity/privacy_contact/phone").message.contains("not a phone number"));
    }

    #[test]
    fn many_errors_reported_together() {
        let mut v = json(BAA);
        set(&mut v, "/signers/1/email", "nope".into());
        v["breach_notice_days"] = 90.into();
        v["effective_date"] = "2027-13-01".into();
        remove(&mut v, "/covered_entity/security_contact");
        v["extra"] = 1.into();
        let f = errors(&v);
        let pointers: Vec<&str> = f.iter().filter_map(|f| f.pointer.as_deref()).collect();
        for p in
            ["/signers/1/email", "/breach_notice_days", "/effective_date", "/covered_entity/security_contact", "/extra"]
        {
            assert!(pointers.contains(&p), "missing {p} in {pointers:?}");
        }
    }

    #[test]
    fn missing_kind_still_reports_generic_problems() {
        let mut v = json(BAA);
        remove(&mut v, "/kind");
        set(&mut v, "/signers/1/email", "nope".into());
        v["term"]["months"] = 0.into();
        v["covered_entity"]["address"]["state"] = "ZZ".into();
        let f = errors(&v);
        assert_eq!(at(&f, "/kind").message, "required");
        at(&f, "/signers/1/email");
        at(&f, "/term/months");
        at(&f, "/covered_entity/address/state");
        v["kind"] = "nda".into();
        assert!(at(&errors(&v), "/kind").message.contains("\"baa\" or \"dua\""));
    }

    #[test]
    fn subcontractor_baa() {
        let mut v = json(BAA);
        let obj = v.as_object_mut().unwrap();
        let ba = obj.remove("business_associate").unwrap();
        let ce = obj.remove("covered_entity").unwrap();
        obj.insert("business_associate".into(), ce);
        obj.insert("subcontractor".into(), ba);
        obj.insert("relationship".into(), "business_associate_to_subcontractor".into());
        obj.insert("parent_agreement_id".into(), "BAA-2027-001".into());
        set(&mut v, "/signers/0/party", "subcontractor".into());
        set(&mut v, "/signers/1/party", "business_associate".into());
        let i = ok(&v);
        let Kind::Baa(b) = &i.kind else { panic!() };
        assert_eq!(b.relationship, Relationship::BusinessAssociateToSubcontractor);
        assert_eq!(b.parent_agreement_id.as_deref(), Some("BAA-2027-001"));
        assert_eq!((i.upstream.role, i.downstream.role), (Role::BusinessAssociate, Role::Subcontractor));
        assert_eq!(i.signers[0].side, Side::Downstream);
        assert!(!i.ca_licensed_facility);

        // A covered entity party in a subcontract BAA is unknown, and so is parent_agreement_id in a CE→BA BAA.
        v["covered_entity"] = json(BAA)["covered_entity"].clone();
        assert!(at(&errors(&v), "/covered_entity").message.starts_with("unknown field"));
        let mut v = json(BAA);
        v["parent_agreement_id"] = "X".into();
        assert!(at(&errors(&v), "/parent_agreement_id").message.starts_with("unknown field"));
    }

    #[test]
    fn california_licensed_facility() {
        let mut v = json(BAA);
        v["covered_entity"]["california_licensed_facility"] = true.into();
        assert!(ok(&v).ca_licensed_facility);
        v["covered_entity"]["california_licensed_facility"] = "yes".into();
        at(&errors(&v), "/covered_entity/california_licensed_facility");
    }

    #[test]
    fn exhibits_split_into_paragraphs() {
        let mut v = json(BAA);
        v["exhibits"] = json(
            r#"[{"title": "Exhibit A — Study Staff", "text": "First line\n  continues here.\r\n\r\n \nSecond paragraph.\n"}]"#,
        );
        let i = ok(&v);
        assert_eq!(i.exhibits.len(), 1);
        assert_eq!(i.exhibits[0].title, "Exhibit A — Study Staff");
        assert_eq!(i.exhibits[0].paragraphs, ["First line continues here.", "Second paragraph."]);
        v["exhibits"] = json(r#"[{"title": "A", "text": "  \n\n "}]"#);
        assert_eq!(at(&errors(&v), "/exhibits/0/text").message, "must not be empty");
    }

    #[test]
    fn malformed_json_gives_line_and_column() {
        let f = parse_intake("{\n  \"kind\": \"baa\"\n  \"x\": 1\n}", &printable).unwrap_err();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].pointer.as_deref(), Some(""));
        assert_eq!(f[0].message, "malformed JSON at line 3, column 3: expected `,` or `}`");
        let f = parse_intake("", &printable).unwrap_err();
        assert!(f[0].message.starts_with("malformed JSON at line 1, column 0: EOF"), "{}", f[0].message);
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let text =
            BAA.replacen("\"breach_notice_days\": 10", "\"breach_notice_days\": 10, \"breach_notice_days\": 30", 1);
        let f = parse_intake(&text, &printable).unwrap_err();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].to_string(), "/breach_notice_days: duplicate field; give each field once");
    }

    #[test]
    fn pointers_escape_tilde_and_slash() {
        let mut v = json(BAA);
        v["a/b~c"] = 1.into();
        at(&errors(&v), "/a~1b~0c");
    }

    #[test]
    fn null_counts_as_absent() {
        let mut v = json(BAA);
        v["states"] = Value::Null;
        v["covered_entity"]["privacy_contact"]["phone"] = Value::Null;
        assert!(ok(&v).states.is_empty());
        v["services"] = Value::Null;
        assert_eq!(at(&errors(&v), "/services").message, "required");
    }

    // ----- properties -----

    /// (pointer, a value that is wrong there), against the BAA example.
    fn bad_leaves() -> Vec<(&'static str, Value)> {
        let j = |s: &str| json(s);
        vec![
            ("/kind", j(r#""contract""#)),
            ("/kind", j("1")),
            ("/relationship", j(r#""partners""#)),
            ("/covered_entity/legal_name", j(r#""""#)),
            ("/covered_entity/address/state", j(r#""ZZ""#)),
            ("/covered_entity/address/postal_code", j(r#""7870""#)),
            ("/covered_entity/address/postal_code", j("78701")),
            ("/covered_entity/privacy_contact/email", j(r#""privacy@""#)),
            ("/covered_entity/privacy_contact/phone", j(r#""not a phone""#)),
            ("/covered_entity/california_licensed_facility", j(r#""yes""#)),
            ("/business_associate/address/city", j("[]")),
            ("/business_associate/security_contact", j(r#""Sam""#)),
            ("/signers", j("{}")),
            ("/signers/0/party", j(r#""data_recipient""#)),
            ("/signers/0/email", j(r#""priya""#)),
            ("/signers/0/order", j("0")),
            ("/signers/1/order", j("-1")),
            ("/signers/1/order", j("1.5")),
            ("/signers/1/title", j("true")),
            ("/effective_date", j(r#""2027-02-30""#)),
            ("/effective_date", j(r#""2027-1-1""#)),
            ("/effective_date", j(r#""1899-12-31""#)),
            ("/term/months", j("0")),
            ("/term/months", j("121")),
            ("/term/months", j(r#""36""#)),
            ("/term/auto_renew", j("1")),
            ("/states/0", j(r#""ZZ""#)),
            ("/states", j(r#""TX""#)),
            ("/breach_notice_days", j("61")),
            ("/breach_notice_days", j("0")),
            ("/breach_notice_days", j("1e3")),
            ("/services", j("5")),
            ("/use_cases", j("{}")),
            ("/phi_types", j("[]")),
            ("/phi_types/2", j("null")),
            ("/subcontractors/0/baa_in_place", j("null")),
            ("/subcontractors/0/services", j(r#""""#)),
            ("/options/data_aggregation", j(r#""no""#)),
            ("/options", j("true")),
        ]
    }

    /// Pointers of every string leaf of `v`.
    fn string_leaves(v: &Value, ptr: String, out: &mut Vec<String>) {
        match v {
            Value::String(_) => out.push(ptr),
            Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| string_leaves(x, format!("{ptr}/{i}"), out)),
            Value::Object(m) => m.iter().for_each(|(k, x)| string_leaves(x, child(&ptr, k), out)),
            _ => {}
        }
    }

    /// Every pointer of `v` (all nodes).
    fn all_pointers(v: &Value, ptr: String, out: &mut Vec<String>) {
        match v {
            Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| all_pointers(x, format!("{ptr}/{i}"), out)),
            Value::Object(m) => m.iter().for_each(|(k, x)| all_pointers(x, child(&ptr, k), out)),
            _ => {}
        }
        out.push(ptr);
    }

    fn unprintable_char() -> impl Strategy<Value = char> {
        any::<char>().prop_filter("printable", |c| !printable(*c))
    }

    #[derive(Debug, Clone)]
    enum Damage {
        Empty,
        Replace(char),
        Insert(char, usize),
    }

    fn damage() -> impl Strategy<Value = Damage> {
        prop_oneof![
            Just(Damage::Empty),
            unprintable_char().prop_map(Damage::Replace),
            (unprintable_char(), any::<usize>()).prop_map(|(c, at)| Damage::Insert(c, at)),
        ]
    }

    #[rustfmt::skip]
    const KEYS: &[&str] = &[
        "kind", "relationship", "covered_entity", "business_associate", "subcontractor", "data_recipient",
        "signers", "effective_date", "term", "states", "breach_notice_days", "exhibits", "services", "use_cases",
        "phi_types", "subcontractors", "options", "purpose", "project_description", "permitted_recipients",
        "data_elements", "parent_agreement_id", "legal_name", "address", "privacy_contact", "security_contact",
        "street", "city", "state", "postal_code", "name", "email", "phone", "party", "title", "order", "months",
        "auto_renew", "baa_in_place", "text", "california_licensed_facility",
    ];

    fn known_key() -> impl Strategy<Value = String> {
        prop::sample::select(KEYS).prop_map(String::from)
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-100i64..100).prop_map(Value::from),
            any::<f64>().prop_map(Value::from), // NaN/inf become null
            any::<String>().prop_map(Value::String),
            prop::sample::select(&["baa", "dua", "TX", "2027-01-01", "a@b.example", "research", "covered_entity"][..])
                .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            let key = prop_oneof![known_key(), any::<String>()];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key, inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Every finding's pointer names a node of the input, or (for `required`) a field of one.
    fn pointers_resolve(input: &Value, findings: &[Finding]) -> bool {
        findings.iter().all(|f| {
            let Some(p) = f.pointer.as_deref() else { return false };
            input.pointer(p).is_some()
                || (f.message == "required"
                    && p.rsplit_once('/').is_some_and(|(parent, _)| input.pointer(parent).is_some()))
        })
    }

    proptest! {
        #[test]
        fn prop_bad_leaf_is_reported_at_its_pointer(i in 0..bad_leaves().len()) {
            let (pointer, bad) = bad_leaves().swap_remove(i);
            let mut v = json(BAA);
            set(&mut v, pointer, bad);
            let f = parse(&v).expect_err("bad value accepted");
            prop_assert!(
                f.iter().any(|x| x.pointer.as_deref() == Some(pointer)),
                "no finding at {}: {}", pointer, render(&f)
            );
        }

        #[test]
        fn prop_bad_text_is_reported_at_its_pointer(which in any::<prop::sample::Index>(), damage in damage()) {
            let mut v = json(BAA);
            let mut pointers = Vec::new();
            string_leaves(&v, String::new(), &mut pointers);
            let pointer = which.get(&pointers).clone();
            let original = v.pointer(&pointer).and_then(Value::as_str).unwrap().to_owned();
            let new = match damage {
                Damage::Empty => String::new(),
                Damage::Replace(c) => c.to_string(),
                Damage::Insert(c, at) => {
                    let mut chars: Vec<char> = original.chars().collect();
                    chars.insert(at % (chars.len() + 1), c);
                    chars.into_iter().collect()
                }
            };
            // Only damage that survives NFC and trimming counts (a trailing U+3000 is trimmed away,
            // a combining accent may compose into a printable letter); a blank optional phone is absent.
            let cleaned: String = new.nfc().collect();
            let cleaned = cleaned.trim();
            let damaged = cleaned.chars().any(|c| c.is_control() || !printable(c));
            prop_assume!(damaged || (cleaned.is_empty() && !pointer.ends_with("/phone")));
            set(&mut v, &pointer, new.into());
            let f = parse(&v).expect_err("damaged text accepted");
            prop_assert!(
                f.iter().any(|x| x.pointer.as_deref() == Some(pointer.as_str())),
                "no finding at {}: {}", pointer, render(&f)
            );
        }

        #[test]
        fn prop_arbitrary_text_never_panics(text in any::<String>()) {
            let _ = parse_intake(&text, &printable);
        }

        #[test]
        fn prop_edited_example_text_never_panics(
            at in any::<prop::sample::Index>(),
            cut in 0usize..40,
            insert in any::<String>(),
        ) {
            let chars: Vec<char> = BAA.chars().collect();
            let start = at.index(chars.len());
            let end = (start + cut).min(chars.len());
            let text: String =
                chars[..start].iter().copied().chain(insert.chars()).chain(chars[end..].iter().copied()).collect();
            let _ = parse_intake(&text, &printable);
        }

        #[test]
        fn prop_arbitrary_json_never_panics(
            mut top in prop::collection::btree_map(known_key(), arb_json(), 0..14),
            kind in prop::sample::select(&["baa", "dua", "x"][..]),
        ) {
            top.insert("kind".into(), kind.into());
            let v = Value::Object(top.into_iter().collect());
            if let Err(f) = parse(&v) {
                prop_assert!(!f.is_empty());
                prop_assert!(pointers_resolve(&v, &f), "{}", render(&f));
            }
        }

        #[test]
        fn prop_mutated_examples_never_panic(
            dua in any::<bool>(),
            which in any::<prop::sample::Index>(),
            new in arb_json(),
        ) {
            let mut v = json(if dua { DUA } else { BAA });
            let mut pointers = Vec::new();
            all_pointers(&v, String::new(), &mut pointers);
            let pointer = which.get(&pointers).clone();
            set(&mut v, &pointer, new);
            if let Err(f) = parse(&v) {
                prop_assert!(!f.is_empty());
                prop_assert!(pointers_resolve(&v, &f), "{}", render(&f));
            }
        }
    }
}
