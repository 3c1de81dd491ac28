//! The audit chain of an archive, checked from its rows while the archive is read, before
//! anything is restored: the walk of `store::audit::verify` over `tables/audit_log.jsonl`,
//! ending at the head in `tables/audit_head.jsonl`, as the target will hold them once restored.
//! Entries written before the chain existed (no hash yet) are chained by the data patch a
//! restore runs, so they are accepted only at the end of the log and only while that patch has
//! not run at the source.
//!
//! Checksums in the manifest catch accidental damage; they do not catch someone who edits a
//! row and recomputes them. This catches such an edit of the audit log (not of other tables:
//! that takes the manifest's MAC, see `archive::BackupKey`).

use crate::domain::audit::{Break, EntryContent, entry_hash};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The parts the walk reads.
pub const LOG: &str = "tables/audit_log.jsonl";
pub const HEAD: &str = "tables/audit_head.jsonl";
pub const PATCHES: &str = "tables/data_patches.jsonl";
/// The data patch that chains entries written before the chain existed.
const CHAIN_PATCH: &str = "0002_chain_audit_entries";
/// No audit entry comes near this; a longer line is refused rather than buffered.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// Splits what it is fed into lines.
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    fn feed(&mut self, data: &[u8], each: &mut dyn FnMut(&[u8])) -> Result<(), String> {
        let mut rest = data;
        while let Some(n) = rest.iter().position(|b| *b == b'\n') {
            if self.partial.is_empty() {
                each(&rest[..n]);
            } else {
                self.partial.extend_from_slice(&rest[..n]);
                each(&std::mem::take(&mut self.partial));
            }
            rest = &rest[n + 1..];
        }
        if self.partial.len() + rest.len() > MAX_LINE {
            return Err("an audit row is longer than 16 MiB".to_owned());
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }

    fn finish(&mut self, each: &mut dyn FnMut(&[u8])) {
        if !self.partial.is_empty() {
            each(&std::mem::take(&mut self.partial));
        }
    }
}

/// The walk, fed part by part as the archive is read; [`finish`](Self::finish) gives the
/// verdict.
#[derive(Default)]
pub struct Chain {
    log: Lines,
    head_lines: Lines,
    patch_lines: Lines,
    /// The hash of the last chained entry.
    prev: String,
    last_id: Option<i64>,
    entries: u64,
    /// The first entry without a hash, and the hash before it.
    first_unhashed: Option<(i64, String)>,
    problem: Option<String>,
    /// `last_hash` of the head row, when the archive has one.
    head: Option<String>,
    patched: bool,
}

fn text<'a>(row: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, ()> {
    match row.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(()),
    }
}

fn integer(row: &Map<String, Value>, key: &str) -> Result<Option<i64>, ()> {
    match row.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or(()),
    }
}

impl Chain {
    /// `path` as one of the parts the walk reads, if it is one.
    pub fn part(path: &str) -> Option<&'static str> {
        [LOG, HEAD, PATCHES].into_iter().find(|p| *p == path)
    }

    /// Feeds the next bytes of `part`.
    pub fn feed(&mut self, part: &str, data: &[u8]) {
        if self.problem.is_some() {
            return;
        }
        let mut lines = std::mem::take(match part {
            LOG => &mut self.log,
            HEAD => &mut self.head_lines,
            PATCHES => &mut self.patch_lines,
            _ => return,
        });
        if let Err(e) = lines.feed(data, &mut |line| self.line(part, line)) {
            self.problem.get_or_insert(e);
        }
        *match part {
            LOG => &mut self.log,
            HEAD => &mut self.head_lines,
            _ => &mut self.patch_lines,
        } = lines;
    }

    fn line(&mut self, part: &str, line: &[u8]) {
        if self.problem.is_some() {
            return;
        }
        let Ok(row) = serde_json::from_slice::<Map<String, Value>>(line) else {
            self.problem = Some(format!("a row of {part} is not a JSON object"));
            return;
        };
        match part {
            LOG => {
                if let Err(e) = self.entry(&row) {
                    self.problem = Some(e);
                }
            }
            HEAD => {
                if integer(&row, "id") == Ok(Some(1)) {
                    match text(&row, "last_hash") {
                        Ok(Some(h)) => self.head = Some(h.to_owned()),
                        _ => self.problem = Some("the audit chain head is malformed".to_owned()),
                    }
                }
            }
            _ => {
                if text(&row, "name") == Ok(Some(CHAIN_PATCH)) {
                    self.patched = true;
                }
            }
        }
    }

    fn entry(&mut self, row: &Map<String, Value>) -> Result<(), String> {
        let id = integer(row, "id")
            .ok()
            .flatten()
            .ok_or("an audit entry has no id")?;
        let malformed = |_| format!("audit entry {id} is malformed");
        if self.last_id.is_some_and(|last| id <= last) {
            return Err(format!("entry {id} is out of order"));
        }
        let required = |key| {
            text(row, key)
                .map_err(malformed)?
                .ok_or_else(|| malformed(()))
        };
        let content = EntryContent {
            at: required("at")?,
            user_id: integer(row, "user_id").map_err(malformed)?,
            ip: text(row, "ip").map_err(malformed)?.unwrap_or(""),
            action: required("action")?,
            entity: required("entity")?,
            entity_id: integer(row, "entity_id").map_err(malformed)?,
            before_json: text(row, "before_json").map_err(malformed)?,
            after_json: text(row, "after_json").map_err(malformed)?,
        };
        let prev_hash = text(row, "prev_hash").map_err(malformed)?.unwrap_or("");
        let hash = text(row, "hash").map_err(malformed)?.unwrap_or("");
        if hash.is_empty() {
            // Written before the chain existed: the restore's data patch chains it.
            if self.first_unhashed.is_none() {
                self.first_unhashed = Some((id, self.prev.clone()));
            }
        } else if self.first_unhashed.is_some() || prev_hash != self.prev {
            return Err(Break::Link { id }.to_string());
        } else if entry_hash(&self.prev, &content) != hash {
            return Err(Break::Content { id }.to_string());
        } else {
            hash.clone_into(&mut self.prev);
        }
        self.last_id = Some(id);
        self.entries += 1;
        Ok(())
    }

    /// The number of audit entries, or why the chain does not verify. `tables` are the
    /// manifest's rows per table.
    pub fn finish(mut self, tables: &BTreeMap<String, u64>) -> Result<u64, String> {
        for part in [LOG, HEAD, PATCHES] {
            let mut lines = std::mem::take(match part {
                LOG => &mut self.log,
                HEAD => &mut self.head_lines,
                _ => &mut self.patch_lines,
            });
            lines.finish(&mut |line| self.line(part, line));
        }
        if let Some(p) = self.problem {
            return Err(p);
        }
        // The head the restored database will hold: the archive's, or the empty one the
        // migration that creates the chain inserts.
        let head = if tables.contains_key("audit_head") {
            self.head.ok_or("the audit chain head is missing")?
        } else {
            String::new()
        };
        match self.first_unhashed {
            None if head != self.prev => Err(Break::Tail {
                last_id: self.last_id.unwrap_or(0),
            }
            .to_string()),
            None => Ok(self.entries),
            // The patch already ran at the source: it will not chain this entry now.
            Some((id, _)) if self.patched => Err(Break::Content { id }.to_string()),
            Some((id, before)) if head != before => Err(Break::Link { id }.to_string()),
            Some(_) => Ok(self.entries),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(id: i64, prev: &str, action: &str) -> Value {
        let at = "2026-03-02T09:00:00.000000Z";
        let hash = entry_hash(
            prev,
            &EntryContent {
                at,
                user_id: Some(1),
                ip: "127.0.0.1",
                action,
                entity: "user",
                entity_id: None,
                before_json: None,
                after_json: Some("{\"a\":1}"),
            },
        );
        json!({"id": id, "at": at, "user_id": 1, "ip": "127.0.0.1", "action": action,
               "entity": "user", "entity_id": null, "before_json": null,
               "after_json": "{\"a\":1}", "prev_hash": prev, "hash": hash})
    }

    fn log(n: i64) -> Vec<Value> {
        let mut out: Vec<Value> = Vec::new();
        for id in 1..=n {
            let prev = out
                .last()
                .map_or("", |e| e["hash"].as_str().unwrap())
                .to_owned();
            out.push(entry(id, &prev, &format!("action{id}")));
        }
        out
    }

    fn jsonl(rows: &[Value]) -> Vec<u8> {
        rows.iter()
            .map(|r| format!("{r}\n"))
            .collect::<String>()
            .into_bytes()
    }

    /// Walks `rows` with the given head, feeding in chunks of `chunk` bytes.
    fn walk(
        rows: &[Value],
        head: Option<&str>,
        patched: bool,
        chunk: usize,
    ) -> Result<u64, String> {
        let mut c = Chain::default();
        let mut tables = BTreeMap::new();
        tables.insert("audit_log".to_owned(), rows.len() as u64);
        if let Some(h) = head {
            tables.insert("audit_head".to_owned(), 1);
            c.feed(
                HEAD,
                &jsonl(&[json!({"id": 1, "last_id": 0, "last_hash": h})]),
            );
        }
        if patched {
            c.feed(
                PATCHES,
                &jsonl(&[json!({"name": CHAIN_PATCH, "applied_at": "x"})]),
            );
        }
        for piece in jsonl(rows).chunks(chunk) {
            c.feed(LOG, piece);
        }
        c.finish(&tables)
    }

    #[test]
    fn an_intact_chain_verifies_however_it_is_fed() {
        let rows = log(5);
        let head = rows[4]["hash"].as_str().unwrap().to_owned();
        for chunk in [1, 7, 100, 100_000] {
            assert_eq!(
                walk(&rows, Some(&head), true, chunk),
                Ok(5),
                "chunk {chunk}"
            );
        }
        assert_eq!(walk(&[], Some(""), true, 10), Ok(0));
    }

    #[test]
    fn edits_removals_reordering_and_a_stale_head_are_caught() {
        let rows = log(4);
        let head = rows[3]["hash"].as_str().unwrap().to_owned();
        let mut edited = rows.clone();
        edited[1]["ip"] = json!("10.6.6.6");
        assert_eq!(
            walk(&edited, Some(&head), true, 64),
            Err("entry 2 was changed after it was written".into())
        );
        let mut removed = rows.clone();
        removed.remove(1);
        assert!(
            walk(&removed, Some(&head), true, 64)
                .unwrap_err()
                .contains("entry 3 does not follow")
        );
        let mut swapped = rows.clone();
        swapped.swap(1, 2);
        assert!(
            walk(&swapped, Some(&head), true, 64)
                .unwrap_err()
                .contains("entry 3 does not follow")
        );
        let mut repeated = rows.clone();
        repeated.insert(2, rows[1].clone());
        assert!(
            walk(&repeated, Some(&head), true, 64)
                .unwrap_err()
                .contains("entry 2 is out of order")
        );
        let cut = &rows[..3];
        assert_eq!(
            walk(cut, Some(&head), true, 64),
            Err("entries after 3 were removed".into())
        );
        assert_eq!(
            walk(&rows, None, true, 64).unwrap_err(),
            "entries after 4 were removed"
        );
        let mut typed = rows.clone();
        typed[0]["user_id"] = json!("1");
        assert!(
            walk(&typed, Some(&head), true, 64)
                .unwrap_err()
                .contains("malformed")
        );
        let mut tables = BTreeMap::new();
        tables.insert("audit_head".to_owned(), 0);
        assert!(
            Chain::default()
                .finish(&tables)
                .unwrap_err()
                .contains("head is missing")
        );
    }

    #[test]
    fn unchained_entries_pass_only_at_the_end_and_before_the_patch() {
        let mut rows = log(2);
        let head = rows[1]["hash"].as_str().unwrap().to_owned();
        rows.push(
            json!({"id": 3, "at": "t", "user_id": null, "ip": "", "action": "a",
                         "entity": "e", "entity_id": null, "before_json": null,
                         "after_json": null, "prev_hash": "", "hash": ""}),
        );
        assert_eq!(walk(&rows, Some(&head), false, 64), Ok(3));
        // Once the patch ran, an entry without a hash is an edit.
        assert!(
            walk(&rows, Some(&head), true, 64)
                .unwrap_err()
                .contains("entry 3 was changed")
        );
        // The head must be where the chained part ends.
        assert!(
            walk(&rows, Some("x"), false, 64)
                .unwrap_err()
                .contains("entry 3")
        );
        // A chained entry after an unchained one.
        let mut after = rows.clone();
        after.push(entry(4, &head, "late"));
        assert!(
            walk(&after, Some(&head), false, 64)
                .unwrap_err()
                .contains("entry 4")
        );
        // An archive from before the chain: no hash columns, no head table.
        let old: Vec<Value> = log(2)
            .into_iter()
            .map(|mut r| {
                let o = r.as_object_mut().unwrap();
                o.remove("hash");
                o.remove("prev_hash");
                r
            })
            .collect();
        assert_eq!(walk(&old, None, false, 64), Ok(2));
    }
}
