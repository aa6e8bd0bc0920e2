//! The intake as a flat HTML form: every input is named by its intake JSON pointer
//! (`/covered_entity/legal_name`, `/signers/1/email`), so the one intake parser reports each
//! problem against the input that caused it. [`unflatten`] turns the posted pointer → value pairs
//! into intake JSON; [`flatten`] turns an intake back into pairs to prefill the form.
//!
//! Form values are all text; the intake has numbers and booleans. The type of a value comes from
//! its field name ([`NUMBERS`], [`BOOLEANS`]): a number field whose text is not a number stays
//! text, so the parser says "expected a number" beside it instead of the form guessing.
//! An empty value is a field left out (the parser reports a required one as missing, an optional
//! one takes the policy default).

use serde_json::{Map, Value};

use super::findings::Finding;

/// Fields whose values are numbers in the intake.
pub const NUMBERS: &[&str] = &[
    "order",
    "months",
    "breach_notice_days",
    "notice_days",
    "per_year",
    "cap_multiple_of_fees",
    "cap_amount_usd",
    "cap_floor_usd",
    "coverage_usd",
    "cure_period_days",
    "subcontractor_objection_days",
    "change_in_law_days",
    "log_retention_years",
    "credit_monitoring_months",
];

/// Fields whose values are booleans in the intake (checkboxes and on/off selects).
pub const BOOLEANS: &[&str] = &[
    "auto_renew",
    "baa_in_place",
    "management_and_administration",
    "data_aggregation",
    "de_identification",
    "mutual",
    "phi_carve_out",
    "california_licensed_facility",
    "preemption",
    "data_location",
    "part2",
    "agency",
];

/// No list in an intake may be longer (the parser's own limit); a larger index is refused
/// before anything is built, so a hostile form cannot make the server allocate a huge list.
pub const MAX_INDEX: usize = super::parse::MAX_ITEMS;

/// Builds intake JSON from pointer → value pairs, in the order posted. Keys that are not
/// pointers (`csrf`, `action`) are ignored. A repeated scalar key keeps its last value (a hidden
/// `false` followed by a checked checkbox's `true`); the segment `-` appends to a list
/// (`/states/-`). A provision set to `false` stays off whatever parameters came with it; set to
/// `true` with parameters, the parameters win (an object turns it on). List holes (an
/// entirely blank row before a filled one) become an empty row, so later rows keep their
/// indices and the parser's pointers still name the right inputs; blank rows at the end are
/// dropped.
pub fn unflatten(pairs: &[(String, String)]) -> Result<Value, Vec<Finding>> {
    let mut root = Node::Object(Vec::new());
    let mut errors = Vec::new();
    for (key, value) in pairs {
        let Some(rest) = key.strip_prefix('/') else { continue };
        if value.is_empty() {
            continue;
        }
        let segments: Vec<String> = rest.split('/').map(|s| s.replace("~1", "/").replace("~0", "~")).collect();
        if let Some(bad) = segments.iter().find(|s| s.parse::<usize>().is_ok_and(|i| i >= MAX_INDEX)) {
            errors.push(Finding::field(key.clone(), format!("row {bad} is beyond the limit of {MAX_INDEX} rows")));
            continue;
        }
        let leaf = typed(segments.last().map_or("", String::as_str), value, &segments);
        root.insert(&segments, leaf);
    }
    if errors.is_empty() { Ok(root.into_value()) } else { Err(errors) }
}

/// Intake JSON as pointer → text pairs (the inverse of [`unflatten`] for what it produces).
pub fn flatten(v: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    walk(v, String::new(), &mut out);
    out
}

fn walk(v: &Value, ptr: String, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                walk(v, format!("{ptr}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                walk(v, format!("{ptr}/{i}"), out);
            }
        }
        Value::Null => {}
        Value::String(s) => out.push((ptr, s.clone())),
        Value::Bool(b) => out.push((ptr, b.to_string())),
        Value::Number(n) => out.push((ptr, n.to_string())),
    }
}

fn typed(name: &str, value: &str, segments: &[String]) -> Value {
    let provision_switch = segments.len() == 2 && segments[0] == "provisions";
    if BOOLEANS.contains(&name) || provision_switch {
        match value {
            "true" => return Value::Bool(true),
            "false" => return Value::Bool(false),
            _ => {}
        }
    }
    if NUMBERS.contains(&name) {
        let t = value.trim();
        if let Ok(n) = t.parse::<i64>() {
            return Value::from(n);
        }
        if let Some(n) = t.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(value.to_string())
}

/// The tree being built: objects keep the order keys first came in; lists are sparse until the
/// end.
enum Node {
    Leaf(Value),
    Object(Vec<(String, Node)>),
    List(std::collections::BTreeMap<usize, Node>, usize),
}

impl Node {
    fn insert(&mut self, segments: &[String], leaf: Value) {
        let Some((first, rest)) = segments.split_first() else { return };
        let index = if first == "-" { Some(None) } else { first.parse::<usize>().ok().map(Some) };
        // A `false` switch outranks parameters given with it; anything else gives way to them.
        if let Node::Leaf(v) = self {
            if *v == Value::Bool(false) {
                return;
            }
            *self = if index.is_some() { Node::List(Default::default(), 0) } else { Node::Object(Vec::new()) };
        }
        let child = match (self, index) {
            (Node::List(items, next), Some(i)) => {
                let i = i.unwrap_or(*next);
                *next = (*next).max(i + 1);
                items.entry(i).or_insert_with(|| Node::empty_for(rest))
            }
            (Node::Object(fields), None) => {
                let pos = match fields.iter().position(|(k, _)| k == first) {
                    Some(p) => p,
                    None => {
                        fields.push((first.clone(), Node::empty_for(rest)));
                        fields.len() - 1
                    }
                };
                &mut fields[pos].1
            }
            // A list index under an object (or a name under a list): the key is the field's name.
            (Node::Object(fields), Some(_)) => {
                fields.push((first.clone(), Node::empty_for(rest)));
                let last = fields.len() - 1;
                &mut fields[last].1
            }
            (Node::List(..), None) | (Node::Leaf(_), _) => return,
        };
        if rest.is_empty() {
            match child {
                Node::Leaf(_) => *child = Node::Leaf(leaf),
                // Parameters already given: `false` turns the provision off, `true` adds nothing.
                _ if leaf == Value::Bool(false) => *child = Node::Leaf(leaf),
                _ => {}
            }
        } else {
            child.insert(rest, leaf);
        }
    }

    fn empty_for(rest: &[String]) -> Node {
        match rest.first() {
            None => Node::Leaf(Value::Null),
            Some(s) if s == "-" || s.parse::<usize>().is_ok() => Node::List(Default::default(), 0),
            Some(_) => Node::Object(Vec::new()),
        }
    }

    fn into_value(self) -> Value {
        match self {
            Node::Leaf(v) => v,
            Node::Object(fields) => {
                Value::Object(fields.into_iter().map(|(k, n)| (k, n.into_value())).collect::<Map<_, _>>())
            }
            Node::List(items, _) => {
                let len = items.keys().next_back().map_or(0, |k| k + 1);
                let mut values: Vec<Option<Value>> = (0..len).map(|_| None).collect();
                let mut objects = false;
                for (i, n) in items {
                    let v = n.into_value();
                    objects |= v.is_object();
                    values[i] = Some(v);
                }
                let hole = if objects { Value::Object(Map::new()) } else { Value::String(String::new()) };
                Value::Array(values.into_iter().map(|v| v.unwrap_or_else(|| hole.clone())).collect())
            }
        }
    }
}

/// Drops row `index` of the list at `list` (`/signers`) and moves the rows after it up one, so
/// the form can remove a row without JavaScript.
pub fn remove_row(pairs: &[(String, String)], list: &str, index: usize) -> Vec<(String, String)> {
    let prefix = format!("{list}/");
    pairs
        .iter()
        .filter_map(|(k, v)| {
            let Some(rest) = k.strip_prefix(&prefix) else { return Some((k.clone(), v.clone())) };
            let (i, tail) = rest.split_once('/').map_or((rest, ""), |(i, t)| (i, t));
            match i.parse::<usize>() {
                Ok(i) if i == index => None,
                Ok(i) if i > index => {
                    let tail = if tail.is_empty() { String::new() } else { format!("/{tail}") };
                    Some((format!("{prefix}{}{tail}", i - 1), v.clone()))
                }
                _ => Some((k.clone(), v.clone())),
            }
        })
        .collect()
}

/// How many rows the list at `list` has in these pairs (blank rows count: they are on screen).
pub fn rows(pairs: &[(String, String)], list: &str) -> usize {
    let prefix = format!("{list}/");
    pairs
        .iter()
        .filter_map(|(k, _)| k.strip_prefix(&prefix)?.split('/').next()?.parse::<usize>().ok())
        .filter(|i| *i < MAX_INDEX)
        .map(|i| i + 1)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn pointers_become_nested_objects_and_lists_with_typed_values() {
        let v = unflatten(&p(&[
            ("csrf", "ignored"),
            ("/kind", "baa"),
            ("/covered_entity/legal_name", "Lakeside"),
            ("/signers/0/name", "Priya"),
            ("/signers/0/order", "1"),
            ("/signers/1/name", "Zoë"),
            ("/signers/1/order", " 2 "),
            ("/term/auto_renew", "false"),
            ("/term/auto_renew", "true"),
            ("/states/-", "TX"),
            ("/states/-", "CA"),
            ("/provisions/liability/cap_multiple_of_fees", "2.5"),
            ("/covered_entity/security_contact/phone", ""),
        ]))
        .expect("builds");
        assert_eq!(
            v,
            json!({"kind": "baa", "covered_entity": {"legal_name": "Lakeside"},
                "signers": [{"name": "Priya", "order": 1}, {"name": "Zoë", "order": 2}],
                "term": {"auto_renew": true}, "states": ["TX", "CA"],
                "provisions": {"liability": {"cap_multiple_of_fees": 2.5}}})
        );
    }

    #[test]
    fn a_number_field_that_is_not_a_number_stays_text_for_the_parser_to_report() {
        let v = unflatten(&p(&[("/breach_notice_days", "ten"), ("/signers/0/name", "12")])).expect("builds");
        assert_eq!(v, json!({"breach_notice_days": "ten", "signers": [{"name": "12"}]}));
    }

    #[test]
    fn a_provision_switched_off_ignores_its_parameters_and_on_gives_way_to_them() {
        let off = unflatten(&p(&[("/provisions/audit_rights", "false"), ("/provisions/audit_rights/per_year", "2")]));
        assert_eq!(off.expect("builds"), json!({"provisions": {"audit_rights": false}}));
        let off_after =
            unflatten(&p(&[("/provisions/audit_rights/per_year", "2"), ("/provisions/audit_rights", "false")]));
        assert_eq!(off_after.expect("builds"), json!({"provisions": {"audit_rights": false}}));
        let on = unflatten(&p(&[
            ("/provisions/limited_data_set", "true"),
            ("/provisions/limited_data_set/dua_reference", "DUA-7"),
        ]));
        assert_eq!(on.expect("builds"), json!({"provisions": {"limited_data_set": {"dua_reference": "DUA-7"}}}));
        let bare = unflatten(&p(&[("/provisions/limited_data_set", "true")]));
        assert_eq!(bare.expect("builds"), json!({"provisions": {"limited_data_set": true}}));
    }

    #[test]
    fn a_blank_row_keeps_later_rows_at_their_indices_and_trailing_blank_rows_vanish() {
        let v = unflatten(&p(&[
            ("/use_cases/0", ""),
            ("/use_cases/1", "reminders"),
            ("/use_cases/2", ""),
            ("/subcontractors/1/legal_name", "Harbor"),
        ]))
        .expect("builds");
        assert_eq!(v, json!({"use_cases": ["", "reminders"], "subcontractors": [{}, {"legal_name": "Harbor"}]}));
    }

    #[test]
    fn an_index_beyond_the_list_limit_is_refused_without_building_it() {
        let e = unflatten(&p(&[("/signers/4000000000/email", "x@y.example")])).expect_err("refused");
        assert_eq!(e[0].pointer.as_deref(), Some("/signers/4000000000/email"));
    }

    #[test]
    fn flatten_then_unflatten_gives_back_the_example_intake() {
        for file in ["baa-tx-ca.json", "dua-ny-research.json"] {
            let path = format!("{}/examples/intake/{file}", env!("CARGO_MANIFEST_DIR"));
            let v: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("example")).expect("json");
            assert_eq!(unflatten(&flatten(&v)).expect("builds"), v, "{file}");
        }
    }

    #[test]
    fn removing_a_row_moves_the_later_rows_up() {
        let pairs = p(&[
            ("/signers/0/name", "A"),
            ("/signers/1/name", "B"),
            ("/signers/2/name", "C"),
            ("/signers/2/email", "c@x.example"),
            ("/states/-", "TX"),
        ]);
        assert_eq!(rows(&pairs, "/signers"), 3);
        let left = remove_row(&pairs, "/signers", 1);
        assert_eq!(
            left,
            p(&[
                ("/signers/0/name", "A"),
                ("/signers/1/name", "C"),
                ("/signers/1/email", "c@x.example"),
                ("/states/-", "TX")
            ])
        );
        assert_eq!(rows(&left, "/signers"), 2);
    }
}
