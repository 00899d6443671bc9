//! `mandate audit trace`: the story of one token or task — who minted it for
//! whom, each agent of the chain with its key, every call allowed or denied,
//! and the revocation that ended it.

use std::collections::BTreeSet;

use crate::decision::Outcome;
use crate::record::{Event, Record};
use crate::registry::RegistryAction;

/// The records that tell the story of `subject` (a token id or a task):
/// every record naming the subject's tasks or token ids, and the registry
/// events revoking its principals, agents, tasks or tokens.
pub fn trace<'a>(records: &'a [Record], subject: &str) -> Vec<&'a Record> {
    let mut tasks: BTreeSet<&str> = BTreeSet::new();
    let mut tokens: BTreeSet<&str> = BTreeSet::new();
    tokens.insert(subject);
    for record in records {
        if record.event.token_ids().contains(&subject) || record.event.task() == Some(subject) {
            if let Some(task) = record.event.task() {
                tasks.insert(task);
            }
        }
    }
    let mut principals: BTreeSet<&str> = BTreeSet::new();
    let mut agents: BTreeSet<&str> = BTreeSet::new();
    for record in records {
        if record.event.task().is_some_and(|t| tasks.contains(t)) {
            if let Some(p) = record.event.principal() {
                principals.insert(p);
            }
            for id in record.event.token_ids() {
                tokens.insert(id);
            }
            if let Event::Decision(d) = &record.event {
                agents.extend(d.chain.iter().map(|l| l.name.as_str()));
            }
        }
    }
    records
        .iter()
        .filter(|record| match &record.event {
            Event::Registry(r) => match r.kind.as_str() {
                "task" => tasks.contains(r.value.as_str()),
                "principal" => principals.contains(r.value.as_str()),
                "agent" => agents.contains(r.value.as_str()),
                "token_id" => tokens.contains(r.value.as_str()),
                _ => false,
            },
            event => {
                event.task().is_some_and(|t| tasks.contains(t))
                    || event.token_ids().iter().any(|id| tokens.contains(id))
            }
        })
        .collect()
}

/// The story as lines for people: a summary, then every record.
pub fn story(subject: &str, records: &[&Record]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut allowed = 0usize;
    let mut denied = 0usize;
    let mut chains: BTreeSet<String> = BTreeSet::new();
    let mut ended: Option<String> = None;
    for record in records {
        match &record.event {
            Event::Decision(d) => {
                match d.decision {
                    Outcome::Allow => allowed += 1,
                    Outcome::Deny => denied += 1,
                }
                if !d.chain.is_empty() {
                    let links: Vec<String> = d
                        .chain
                        .iter()
                        .map(|l| {
                            if l.key.is_empty() {
                                mandate_core::display_label(&l.name)
                            } else {
                                format!("{} [{}]", mandate_core::display_label(&l.name), l.key)
                            }
                        })
                        .collect();
                    chains.insert(format!(
                        "{} → {}",
                        mandate_core::display_label(&d.principal),
                        links.join(" → ")
                    ));
                }
            }
            Event::Registry(r) if r.action == RegistryAction::Revoke && ended.is_none() => {
                ended = Some(format!("#{} {r}", record.seq));
            }
            _ => {}
        }
    }
    lines.push(format!(
        "trace of {}: {} record(s), {allowed} allowed, {denied} denied",
        mandate_core::display_name(subject),
        records.len()
    ));
    for chain in &chains {
        lines.push(format!("  chain: {chain}"));
    }
    if let Some(ended) = &ended {
        lines.push(format!("  ended by: {ended}"));
    }
    for record in records {
        lines.push(format!("  {record}"));
    }
    lines
}
