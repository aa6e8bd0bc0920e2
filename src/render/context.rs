//! Templates and their context: intake → tera → markup.
//!
//! The templates are compiled into the binary (so the same intake gives the same bytes on every
//! machine) and can be overridden from a directory for counsel's edits (`--templates DIR`).
//! Autoescaping is on for `.md.tera` with [`model::escape_markup`]: intake values are data,
//! never markup.

use std::path::Path;

use serde_json::{Value, json};
use tera::{Context, Tera};

use super::model;
use crate::domain::addenda::{self, BreachClock};
use crate::domain::intake::{Intake, Kind, Party, Purpose, Relationship};
use crate::domain::states::{StateCode, esign_laws};
use crate::domain::words::number_words;

/// The built-in agreement templates.
pub const AGREEMENT_TEMPLATES: &[(&str, &str)] = &[
    ("baa.md.tera", include_str!("../../templates/baa.md.tera")),
    ("dua.md.tera", include_str!("../../templates/dua.md.tera")),
];

/// A loaded set of templates.
pub struct Templates {
    tera: Tera,
    /// SHA-256 over every template's name and source.
    pub digest: String,
}

/// Why templates could not be loaded or rendered. Carries tera's message, which names the
/// template, line and column.
#[derive(Debug, thiserror::Error)]
#[error("template error: {0}")]
pub struct TemplateError(String);

impl From<tera::Error> for TemplateError {
    fn from(e: tera::Error) -> Self {
        // tera 2 puts file:line:col in the source chain; keep all of it.
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        TemplateError(msg)
    }
}

impl Templates {
    /// The templates compiled into the binary.
    pub fn builtin() -> Result<Templates, TemplateError> {
        let addenda = addenda::ADDENDUM_TEMPLATES.iter().map(|(code, src)| (format!("addenda/{code}.md.tera"), *src));
        let all = AGREEMENT_TEMPLATES.iter().map(|(n, s)| (n.to_string(), *s)).chain(addenda);
        Self::from_sources(all.map(|(n, s)| (n, s.to_string())))
    }

    /// The built-in templates, with any file of the same name in `dir` (and `dir/../addenda`)
    /// taking its place.
    pub fn with_overrides(dir: &Path) -> Result<Templates, TemplateError> {
        let mut sources: Vec<(String, String)> =
            AGREEMENT_TEMPLATES.iter().map(|(n, s)| (n.to_string(), s.to_string())).collect();
        sources
            .extend(addenda::ADDENDUM_TEMPLATES.iter().map(|(c, s)| (format!("addenda/{c}.md.tera"), s.to_string())));
        for (name, src) in sources.iter_mut() {
            let path = if let Some(rest) = name.strip_prefix("addenda/") {
                dir.join("..").join("addenda").join(rest)
            } else {
                dir.join(name.as_str())
            };
            if let Ok(text) = std::fs::read_to_string(&path) {
                *src = text;
            }
        }
        Self::from_sources(sources)
    }

    /// Templates from (name, source) pairs; used by tests that edit a template.
    pub fn from_sources(sources: impl IntoIterator<Item = (String, String)>) -> Result<Templates, TemplateError> {
        use sha2::Digest;
        let mut tera = Tera::new();
        tera.set_escape_fn(model::escape_markup);
        tera.autoescape_on([".md.tera"]);
        let mut sources: Vec<(String, String)> = sources.into_iter().collect();
        sources.sort();
        let mut h = sha2::Sha256::new();
        for (name, src) in &sources {
            h.update(name.as_bytes());
            h.update([0]);
            h.update(src.as_bytes());
            h.update([0]);
            tera.add_raw_template(name, src)?;
        }
        Ok(Templates { tera, digest: hex::encode(h.finalize()) })
    }

    pub fn render(&self, name: &str, ctx: &Context) -> Result<String, TemplateError> {
        Ok(self.tera.render(name, ctx)?)
    }

    pub fn has(&self, name: &str) -> bool {
        self.tera.contains_template(name)
    }
}

/// The template name of an intake's body.
pub fn body_template(intake: &Intake) -> &'static str {
    match intake.kind {
        Kind::Baa(_) => "baa.md.tera",
        Kind::Dua(_) => "dua.md.tera",
    }
}

/// The agreement title.
pub fn title(intake: &Intake) -> &'static str {
    match &intake.kind {
        Kind::Baa(b) if b.relationship == Relationship::BusinessAssociateToSubcontractor => {
            "Subcontractor Business Associate Agreement"
        }
        Kind::Baa(_) => "Business Associate Agreement",
        Kind::Dua(_) => "Data Use Agreement",
    }
}

fn party(p: &Party) -> Value {
    let contact =
        |c: &crate::domain::intake::Contact| json!({"name": c.name, "email": c.email.as_str(), "phone": c.phone});
    json!({
        "label": p.role.label(),
        "role": p.role.key(),
        "legal_name": p.legal_name,
        "address": p.address.one_line(),
        "privacy_contact": contact(&p.privacy_contact),
        "security_contact": contact(&p.security_contact),
    })
}

/// `contact_details` → `contact details`.
pub fn humanize(s: &str) -> String {
    s.replace('_', " ")
}

/// Builds the template context (documented in `templates/README.md`).
pub fn context(intake: &Intake, clock: &BreachClock, addenda: &[(String, String)], prov: serde_json::Value) -> Context {
    let exhibits: Vec<Value> = intake
        .exhibits
        .iter()
        .enumerate()
        .map(|(i, e)| json!({"letter": exhibit_letter(i), "title": e.title}))
        .collect();
    // Electronic signatures: the law of the governing-law state, then of each party's state.
    let mut esign_states: Vec<StateCode> = Vec::new();
    if let Some(code) = prov["governing_law"]["code"].as_str()
        && let Ok(s) = StateCode::parse(code)
    {
        esign_states.push(s);
    }
    esign_states.push(intake.upstream.address.state);
    esign_states.push(intake.downstream.address.state);
    let mut v = json!({
        "esign_laws": esign_laws(&esign_states),
        "title": title(intake),
        "up": party(&intake.upstream),
        "down": party(&intake.downstream),
        "effective_date": intake.effective_date.long(),
        "term": {
            "months": intake.term.months,
            "auto_renew": intake.term.auto_renew,
            "text": format!("{} ({}) months", number_words(u32::from(intake.term.months)), intake.term.months),
        },
        "states": intake.states.iter().map(|s| json!({"code": s.code(), "name": s.name()})).collect::<Vec<_>>(),
        "breach": {
            "days": clock.days,
            "unit": clock.unit,
            "immediately": clock.immediately,
            "text": clock.text(),
        },
        "addenda": addenda.iter().map(|(code, name)| json!({"code": code, "name": name})).collect::<Vec<_>>(),
        "exhibits": exhibits,
        "prov": prov,
    });
    let extra = match &intake.kind {
        Kind::Baa(b) => json!({
            "kind": "baa",
            "reporting_clause": "Reporting of Improper Use or Disclosure",
            "subcontract": b.relationship == Relationship::BusinessAssociateToSubcontractor,
            "services": b.services,
            "use_cases": b.use_cases,
            "phi_types": b.phi_types.iter().map(|p| humanize(p)).collect::<Vec<_>>(),
            "subcontractors": b.subcontractors,
            "options": b.options,
            "parent_agreement_id": b.parent_agreement_id,
        }),
        Kind::Dua(d) => json!({
            "kind": "dua",
            "reporting_clause": "Reporting of Uses and Disclosures Not Provided For",
            "subcontract": false,
            "purpose": d.purpose,
            "purpose_text": purpose_text(d.purpose),
            "project_description": d.project_description,
            "permitted_recipients": d.permitted_recipients,
            "data_elements": d.data_elements,
        }),
    };
    if let (Value::Object(base), Value::Object(extra)) = (&mut v, extra) {
        base.extend(extra);
    }
    // Serializing plain JSON values cannot fail; an empty context would fail loudly at render.
    Context::from_serialize(&v).unwrap_or_default()
}

pub fn purpose_text(p: Purpose) -> &'static str {
    match p {
        Purpose::Research => "research",
        Purpose::PublicHealth => "public health",
        Purpose::HealthCareOperations => "health care operations",
    }
}

/// `A`, `B`, … `Z`, `AA`.
pub fn exhibit_letter(i: usize) -> String {
    model::letters(i).to_ascii_uppercase()
}
