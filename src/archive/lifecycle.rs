//! Lifecycle listings from the search index: renewals due, agreements past retention and the
//! subcontractor chain, answered from the facts [`Index::upsert_life`] keeps per agreement
//! ([`Life`]) instead of decoding every stored agreement per request. They answer ids (and
//! what the index holds of each); the caller reads the entries it shows from the store.
//!
//! The rules are the record's own ([`crate::domain::agreement::Agreement::renewal_date`] and
//! `retention_until` call the same functions as [`Life`]), and the orders are those of a scan
//! over the store in id order: ties are broken by id.

use crate::domain::agreement::{Life, Status};
use crate::domain::intake::Date;

use super::search::{Index, Listed};

fn status_named(name: &str) -> Option<Status> {
    Status::ALL.into_iter().find(|s| s.as_str() == name)
}

/// Executed agreements whose renewal (or term end) falls within `days` of `today`, by date then
/// id.
pub fn renewal_due(index: &Index, today: Date, days: u32) -> Vec<(Date, Listed<'_>, &Life)> {
    let limit = today.days_since_epoch() + i64::from(days);
    let mut out: Vec<(Date, Listed<'_>, &Life)> = index
        .lives()
        .filter(|(e, _)| e.status() == Status::Executed.as_str())
        .filter_map(|(e, l)| l.renewal_date(today).filter(|d| d.days_since_epoch() <= limit).map(|d| (d, e, l)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id().cmp(b.1.id())));
    out
}

/// Agreements whose documents are kept and whose retention date is before `today`, by that
/// date then id.
pub fn past_retention(index: &Index, today: Date) -> Vec<(Date, String)> {
    let mut out: Vec<(Date, Listed<'_>)> = index
        .lives()
        .filter(|(_, l)| !l.disposed)
        .filter_map(|(e, l)| {
            let until = l.retention_until(e.created_at(), status_named(e.status())?)?;
            (until < today).then_some((until, e))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id().cmp(b.1.id())));
    out.into_iter().map(|(d, e)| (d, e.id().to_string())).collect()
}

/// The subcontractor chain around `id`: its ancestors from the top down, then every descendant
/// depth first (each with its depth below `id`), as [`crate::app`] presents them, by id. `None`
/// when `id` is not in the index.
#[allow(clippy::type_complexity)]
pub fn chain(index: &Index, id: &str) -> Option<(Vec<String>, Vec<(String, usize)>)> {
    let (this, life) = index.get_life(id)?;
    let mut ancestors: Vec<Listed<'_>> = Vec::new();
    let mut cur = life.parent.as_deref();
    while let Some(pid) = cur {
        let Some((p, pl)) = index.get_life(pid) else { break };
        if ancestors.iter().any(|l| l.id() == p.id()) || p.id() == this.id() {
            break; // a cycle in hand-entered ids
        }
        ancestors.push(p);
        cur = pl.parent.as_deref();
    }
    ancestors.reverse();
    let mut descendants: Vec<(Listed<'_>, usize)> = Vec::new();
    let mut stack: Vec<(Listed<'_>, usize)> = vec![(this, 0)];
    while let Some((a, depth)) = stack.pop() {
        for cid in index.children(a.id()) {
            let Some((child, _)) = index.get_life(cid) else { continue };
            if descendants.iter().any(|(l, _)| l.id() == child.id()) || child.id() == this.id() {
                continue;
            }
            descendants.push((child, depth + 1));
            stack.push((child, depth + 1));
        }
    }
    Some((
        ancestors.into_iter().map(|l| l.id().to_string()).collect(),
        descendants.into_iter().map(|(e, d)| (e.id().to_string(), d)).collect(),
    ))
}
