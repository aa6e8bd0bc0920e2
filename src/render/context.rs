//! Templates and their context: intake → tera → markup.
//!
//! The templates are compiled into the binary (so the same intake gives the same bytes on every
//! machine) and can be overridden from a directory for counsel's edits (`--templates DIR`).
//! Autoescaping is on for `.md.tera` with [`model::escape_markup`]: intake values are data,
//! never markup.

use std::path::Path;

use serde::Serialize;
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

#[derive(Serialize)]
struct ContactCtx<'a> {
    name: &'a str,
    email: &'a str,
    phone: &'a Option<String>,
}

impl<'a> ContactCtx<'a> {
    fn of(c: &'a crate::domain::intake::Contact) -> ContactCtx<'a> {
        ContactCtx { name: &c.name, email: c.email.as_str(), phone: &c.phone }
    }
}

#[derive(Serialize)]
struct PartyCtx<'a> {
    label: &'static str,
    role: &'static str,
    legal_name: &'a str,
    address: String,
    privacy_contact: ContactCtx<'a>,
    security_contact: ContactCtx<'a>,
}

fn party(p: &Party) -> PartyCtx<'_> {
    PartyCtx {
        label: p.role.label(),
        role: p.role.key(),
        legal_name: &p.legal_name,
        address: p.address.one_line(),
        privacy_contact: ContactCtx::of(&p.privacy_contact),
        security_contact: ContactCtx::of(&p.security_contact),
    }
}

#[derive(Serialize)]
struct TermCtx {
    months: u16,
    auto_renew: bool,
    text: String,
}

#[derive(Serialize)]
struct BreachCtx {
    days: u32,
    unit: addenda::DayUnit,
    immediately: bool,
    text: String,
}

#[derive(Serialize)]
struct CodeName<'a> {
    code: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
struct ExhibitCtx<'a> {
    letter: String,
    title: &'a str,
}

/// `contact_details` → `contact details`.
pub fn humanize(s: &str) -> String {
    s.replace('_', " ")
}

/// Puts `value` in the context under `key`. The values here are plain data (strings, numbers,
/// lists, string-keyed maps), which always convert; were one not to, debug builds (the tests)
/// stop here, and a release build leaves the key out: a template printing it fails to render
/// (an undefined variable is an error in tera), one testing it in a condition reads false.
fn put<T: Serialize + ?Sized>(ctx: &mut Context, key: &'static str, value: &T) {
    match tera::Value::try_from_serializable(value) {
        Ok(v) => ctx.insert_value(key, v),
        Err(e) => debug_assert!(false, "the context value {key} does not convert: {e}"),
    }
}

/// Whose electronic-signature law the agreement cites: the governing-law state's, then each
/// party's state's.
fn esign_states(intake: &Intake, prov: &serde_json::Value) -> Vec<StateCode> {
    let mut states: Vec<StateCode> = Vec::new();
    if let Some(code) = prov["governing_law"]["code"].as_str()
        && let Ok(s) = StateCode::parse(code)
    {
        states.push(s);
    }
    states.push(intake.upstream.address.state);
    states.push(intake.downstream.address.state);
    states
}

/// Builds the template context (documented in `templates/README.md`). Each value goes into
/// tera's own representation directly, without a `serde_json::Value` on the way (issue 14:
/// building the context that way was a twelfth of a render).
pub fn context(intake: &Intake, clock: &BreachClock, addenda: &[(String, String)], prov: serde_json::Value) -> Context {
    let mut ctx = Context::new();
    put(&mut ctx, "esign_laws", &esign_laws(&esign_states(intake, &prov)));
    put(&mut ctx, "title", title(intake));
    put(&mut ctx, "up", &party(&intake.upstream));
    put(&mut ctx, "down", &party(&intake.downstream));
    put(&mut ctx, "effective_date", &intake.effective_date.long());
    put(
        &mut ctx,
        "term",
        &TermCtx {
            months: intake.term.months,
            auto_renew: intake.term.auto_renew,
            text: format!("{} ({}) months", number_words(u32::from(intake.term.months)), intake.term.months),
        },
    );
    let states: Vec<CodeName> = intake.states.iter().map(|s| CodeName { code: s.code(), name: s.name() }).collect();
    put(&mut ctx, "states", &states);
    put(
        &mut ctx,
        "breach",
        &BreachCtx { days: clock.days, unit: clock.unit, immediately: clock.immediately, text: clock.text() },
    );
    let addenda: Vec<CodeName> = addenda.iter().map(|(code, name)| CodeName { code, name }).collect();
    put(&mut ctx, "addenda", &addenda);
    let exhibits: Vec<ExhibitCtx> = intake
        .exhibits
        .iter()
        .enumerate()
        .map(|(i, e)| ExhibitCtx { letter: exhibit_letter(i), title: &e.title })
        .collect();
    put(&mut ctx, "exhibits", &exhibits);
    put(&mut ctx, "prov", &prov);
    match &intake.kind {
        Kind::Baa(b) => {
            put(&mut ctx, "kind", "baa");
            put(&mut ctx, "reporting_clause", "Reporting of Improper Use or Disclosure");
            put(&mut ctx, "subcontract", &(b.relationship == Relationship::BusinessAssociateToSubcontractor));
            put(&mut ctx, "services", &b.services);
            put(&mut ctx, "use_cases", &b.use_cases);
            put(&mut ctx, "phi_types", &b.phi_types.iter().map(|p| humanize(p)).collect::<Vec<_>>());
            put(&mut ctx, "subcontractors", &b.subcontractors);
            put(&mut ctx, "options", &b.options);
            put(&mut ctx, "parent_agreement_id", &b.parent_agreement_id);
        }
        Kind::Dua(d) => {
            put(&mut ctx, "kind", "dua");
            put(&mut ctx, "reporting_clause", "Reporting of Uses and Disclosures Not Provided For");
            put(&mut ctx, "subcontract", &false);
            put(&mut ctx, "purpose", &d.purpose);
            put(&mut ctx, "purpose_text", purpose_text(d.purpose));
            put(&mut ctx, "project_description", &d.project_description);
            put(&mut ctx, "permitted_recipients", &d.permitted_recipients);
            put(&mut ctx, "data_elements", &d.data_elements);
        }
    }
    ctx
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::domain::provisions::{Policy, ProvisionChoices, Provisions};

    fn party_json(p: &Party) -> Value {
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

    /// The context as it was built before: through `serde_json::Value`.
    fn context_json(
        intake: &Intake,
        clock: &BreachClock,
        addenda: &[(String, String)],
        prov: serde_json::Value,
    ) -> Context {
        let exhibits: Vec<Value> = intake
            .exhibits
            .iter()
            .enumerate()
            .map(|(i, e)| json!({"letter": exhibit_letter(i), "title": e.title}))
            .collect();
        let mut v = json!({
            "esign_laws": esign_laws(&esign_states(intake, &prov)),
            "title": title(intake),
            "up": party_json(&intake.upstream),
            "down": party_json(&intake.downstream),
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

    fn intake(name: &str, edit: impl Fn(&mut Value)) -> Intake {
        let text = std::fs::read_to_string(format!("{}/examples/intake/{name}", env!("CARGO_MANIFEST_DIR")))
            .expect("example intake");
        let mut v: Value = serde_json::from_str(&text).expect("json");
        edit(&mut v);
        crate::domain::parse::parse_intake(&v.to_string(), &crate::render::fonts::printable).expect("intake parses")
    }

    #[test]
    fn the_context_built_directly_equals_the_context_built_through_json() {
        let baa = |edit: fn(&mut Value)| intake("baa-tx-ca.json", edit);
        let dua = |edit: fn(&mut Value)| intake("dua-ny-research.json", edit);
        let cases = [
            baa(|_| {}),
            baa(|v| {
                v["states"] = json!(["CA", "TX", "NY", "FL", "WA", "IL", "CO", "MA"]);
                v["exhibits"] = json!([{"title": "Data Flows", "text": "One.\n\nTwo."}]);
                v["covered_entity"]["privacy_contact"]["phone"] = Value::Null;
            }),
            baa(|v| {
                // A subcontractor BAA under a parent agreement: the parties move down a tier.
                let Value::Object(o) = v else { return };
                let (ce, ba) = (o.remove("covered_entity"), o.remove("business_associate"));
                o.insert("business_associate".into(), ce.unwrap_or_default());
                o.insert("subcontractor".into(), ba.unwrap_or_default());
                o.insert("relationship".into(), json!("business_associate_to_subcontractor"));
                o.insert("parent_agreement_id".into(), json!("AGR-0001"));
                o.insert(
                    "signers".into(),
                    json!([
                        {"party": "subcontractor", "name": "Priya Raman", "title": "VP, Legal", "email": "priya@northwind.example", "order": 1},
                        {"party": "business_associate", "name": "Zoë Ångström", "title": "CCO", "email": "zoe@lakeside.example", "order": 2}
                    ]),
                );
            }),
            baa(|v| v["states"] = json!([])),
            dua(|_| {}),
            dua(|v| v["states"] = json!(["NY", "CA"])),
        ];
        let policy = Policy::embedded();
        for intake in &cases {
            let sel = addenda::select(
                addenda::Catalog::embedded(),
                &intake.states,
                addenda::ClockInput {
                    intake_days: u32::from(intake.breach_notice_days),
                    ca_licensed_facility: intake.ca_licensed_facility,
                    subcontract: false,
                    margins: policy.breach_clock.margins(),
                },
            );
            let names: Vec<(String, String)> = sel.addenda.iter().map(|s| (s.code.clone(), s.name.clone())).collect();
            let choices = match &intake.kind {
                Kind::Baa(b) => (*b.provisions).clone(),
                Kind::Dua(_) => ProvisionChoices::default(),
            };
            let (prov, _) = Provisions::resolve(&choices, policy, intake.upstream.address.state, sel.clock.days);
            let direct = context(intake, &sel.clock, &names, prov.context());
            let through_json = context_json(intake, &sel.clock, &names, prov.context());
            assert_eq!(direct, through_json);
            assert!(direct.get("up").is_some() && direct.get("kind").is_some(), "a real context, not two empty ones");
        }
    }
}
