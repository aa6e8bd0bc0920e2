//! Clause-level differences between two versions of an agreement: which clauses were added,
//! removed or changed, and the changed words (word diff by `similar`).
//!
//! Clauses are matched by where they sit and what they are called (article heading + clause
//! heading, or attachment + heading), not by number, so inserting a clause does not make every
//! later clause look changed.

use serde::Serialize;
use similar::{ChangeTag, TextDiff};

use super::model::Document;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Added,
    Removed,
    Changed,
}

/// One clause that differs.
#[derive(Debug, Clone, Serialize)]
pub struct ClauseDiff {
    /// `Obligations of Business Associate › Reporting of Improper Use or Disclosure`
    pub clause: String,
    pub change: Change,
    /// Clause number in the old and new version.
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    /// Words removed and added, in order.
    pub removed: Vec<String>,
    pub added: Vec<String>,
    /// The changed passage with `[-removed-]{+added+}` marks and a little context.
    pub inline: String,
    /// The same passage as pieces for a page to mark up (`<del>`/`<ins>`), so text that itself
    /// contains `[-` or `{+` is never mistaken for a mark. Not part of the API's JSON.
    #[serde(skip)]
    pub segments: Vec<Segment>,
}

/// One piece of a changed passage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// `same`, `removed`, `added`, or `gap` (unchanged text left out between two changes).
    pub kind: &'static str,
    pub text: String,
}

/// Appends `text` as `kind`, merging it into the previous piece of the same kind.
fn push(segments: &mut Vec<Segment>, kind: &'static str, text: &str) {
    match segments.last_mut() {
        Some(last) if last.kind == kind && kind != "gap" => last.text.push_str(text),
        _ => segments.push(Segment { kind, text: text.to_string() }),
    }
}

/// (key, number, text) for every clause and every article introduction.
fn units(d: &Document) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let text = |blocks: &[super::model::Block]| blocks.iter().map(|b| b.plain()).collect::<Vec<_>>().join("\n");
    for a in &d.articles {
        if !a.intro.is_empty() {
            out.push((format!("{} (introduction)", a.heading), a.number.to_string(), text(&a.intro)));
        }
        for c in &a.clauses {
            out.push((format!("{} › {}", a.heading, c.heading), c.number.clone(), c.text()));
        }
    }
    for x in &d.attachments {
        if !x.intro.is_empty() {
            out.push((format!("{} (introduction)", x.label), x.label.clone(), text(&x.intro)));
        }
        for c in &x.clauses {
            out.push((format!("{} › {}", x.label, c.heading), format!("{} {}", x.label, c.number), c.text()));
        }
    }
    for s in &d.signatures {
        out.push((
            format!("Signatures › {}", s.party_label),
            String::new(),
            format!("{} {} {}", s.party_name, s.signer_name, s.signer_title),
        ));
    }
    out
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

/// Compares two documents clause by clause.
pub fn diff(old: &Document, new: &Document) -> Vec<ClauseDiff> {
    let a = units(old);
    let b = units(new);
    let mut out = Vec::new();
    for (key, num, text) in &a {
        match b.iter().find(|(k, _, _)| k == key) {
            None => out.push(ClauseDiff {
                clause: key.clone(),
                change: Change::Removed,
                from_number: Some(num.clone()),
                to_number: None,
                removed: words(text),
                added: Vec::new(),
                inline: String::new(),
                segments: vec![Segment { kind: "removed", text: text.clone() }],
            }),
            Some((_, num2, text2)) if text2 != text => {
                let d = TextDiff::from_words(text.as_str(), text2.as_str());
                let (mut removed, mut added, mut inline) = (Vec::new(), Vec::new(), String::new());
                let mut segments = Vec::new();
                for group in d.grouped_ops(3) {
                    if !inline.is_empty() {
                        inline.push_str(" … ");
                        push(&mut segments, "gap", " … ");
                    }
                    for op in group {
                        for ch in d.iter_changes(&op) {
                            let v = ch.value();
                            match ch.tag() {
                                ChangeTag::Equal => {
                                    inline.push_str(v);
                                    push(&mut segments, "same", v);
                                }
                                ChangeTag::Delete => {
                                    removed.extend(words(v));
                                    inline.push_str(&format!("[-{v}-]"));
                                    push(&mut segments, "removed", v);
                                }
                                ChangeTag::Insert => {
                                    added.extend(words(v));
                                    inline.push_str(&format!("{{+{v}+}}"));
                                    push(&mut segments, "added", v);
                                }
                            }
                        }
                    }
                }
                out.push(ClauseDiff {
                    clause: key.clone(),
                    change: Change::Changed,
                    from_number: Some(num.clone()),
                    to_number: Some(num2.clone()),
                    removed,
                    added,
                    inline: inline.replace("-][-", "").replace("+}{+", ""),
                    segments,
                });
            }
            Some(_) => {}
        }
    }
    for (key, num, text) in &b {
        if !a.iter().any(|(k, _, _)| k == key) {
            out.push(ClauseDiff {
                clause: key.clone(),
                change: Change::Added,
                from_number: None,
                to_number: Some(num.clone()),
                removed: Vec::new(),
                added: words(text),
                inline: String::new(),
                segments: vec![Segment { kind: "added", text: text.clone() }],
            });
        }
    }
    out
}
