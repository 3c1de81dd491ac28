//! The audit chain: each entry's hash covers its content and the previous entry's hash, so a
//! changed, removed or reordered entry breaks every link after it.

use sha2::{Digest, Sha256};

/// The fields of an audit entry that the chain protects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryContent<'a> {
    pub at: &'a str,
    pub user_id: Option<i64>,
    pub ip: &'a str,
    pub action: &'a str,
    pub entity: &'a str,
    pub entity_id: Option<i64>,
    pub before_json: Option<&'a str>,
    pub after_json: Option<&'a str>,
}

/// Hex SHA-256 of the previous hash and the entry's fields, each length-prefixed so no two
/// different entries encode alike.
pub fn entry_hash(prev_hash: &str, e: &EntryContent<'_>) -> String {
    let mut h = Sha256::new();
    let mut field = |s: Option<&str>| match s {
        Some(s) => {
            h.update((s.len() as u64).to_be_bytes());
            h.update(s.as_bytes());
        }
        None => h.update(u64::MAX.to_be_bytes()),
    };
    let user = e.user_id.map(|u| u.to_string());
    let entity_id = e.entity_id.map(|u| u.to_string());
    field(Some("ferum-audit-v1"));
    field(Some(prev_hash));
    field(Some(e.at));
    field(user.as_deref());
    field(Some(e.ip));
    field(Some(e.action));
    field(Some(e.entity));
    field(entity_id.as_deref());
    field(e.before_json);
    field(e.after_json);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a chain first fails, if it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Break {
    /// The entry's `prev_hash` is not the hash of the entry before it (one was removed or
    /// reordered, or this field was edited).
    Link { id: i64 },
    /// The entry's content no longer matches its hash (it was edited).
    Content { id: i64 },
    /// The newest entries are gone: the chain head names a hash the last entry does not have.
    Tail { last_id: i64 },
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Break::Link { id } => write!(
                f,
                "entry {id} does not follow the entry before it (an entry was removed, reordered or edited)"
            ),
            Break::Content { id } => write!(f, "entry {id} was changed after it was written"),
            Break::Tail { last_id } => write!(f, "entries after {last_id} were removed"),
        }
    }
}

/// Walks entries in id order, starting after `prev_hash`; returns the last hash seen or the
/// first break.
pub fn check<'a>(
    prev_hash: &str,
    entries: impl IntoIterator<Item = (i64, &'a str, &'a str, EntryContent<'a>)>,
) -> Result<String, Break> {
    let mut prev = prev_hash.to_owned();
    for (id, stored_prev, stored_hash, content) in entries {
        if stored_prev != prev {
            return Err(Break::Link { id });
        }
        if entry_hash(&prev, &content) != stored_hash {
            return Err(Break::Content { id });
        }
        prev = stored_hash.to_owned();
    }
    Ok(prev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str) -> EntryContent<'_> {
        EntryContent {
            at: "2026-01-01T00:00:00.000000Z",
            user_id: Some(1),
            ip: "127.0.0.1",
            action,
            entity: "request",
            entity_id: Some(5),
            before_json: None,
            after_json: Some("{}"),
        }
    }

    #[test]
    fn chain_detects_edits_removals_and_reordering() {
        let a = entry("create");
        let b = entry("update");
        let c = entry("delete");
        let ha = entry_hash("", &a);
        let hb = entry_hash(&ha, &b);
        let hc = entry_hash(&hb, &c);
        let good = vec![
            (1, "", ha.as_str(), a.clone()),
            (2, ha.as_str(), hb.as_str(), b.clone()),
            (3, hb.as_str(), hc.as_str(), c.clone()),
        ];
        assert_eq!(check("", good.clone()), Ok(hc.clone()));
        // Edited content.
        let mut edited = good.clone();
        edited[1].3.action = "approve";
        assert_eq!(check("", edited), Err(Break::Content { id: 2 }));
        // A removed entry.
        let removed = vec![good[0].clone(), good[2].clone()];
        assert_eq!(check("", removed), Err(Break::Link { id: 3 }));
        // Reordered.
        let reordered = vec![good[1].clone(), good[0].clone()];
        assert_eq!(check("", reordered), Err(Break::Link { id: 2 }));
        // Nulls and empty strings hash differently.
        let mut empty = entry("x");
        empty.before_json = Some("");
        assert_ne!(entry_hash("", &empty), entry_hash("", &entry("x")));
    }
}
