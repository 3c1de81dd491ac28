//! Personal data at rest: which columns are encrypted, the start-up check that the configured
//! key fits the database, and re-encryption.
//!
//! Encrypted: customers' contact e-mail and phone, users' phone (each with a keyed blind index
//! for exact-match lookup), and users' TOTP secrets. A canary value in `settings` tells at start-up whether the key is
//! the one the data was written with; a wrong or missing key stops the service before it
//! reads or writes anything, so it never writes plaintext and never loses the old data.
//!
//! The audit log is append-only and is dumped as it is into every backup, so it never holds
//! these values at all: snapshots keep a keyed fingerprint of each instead ([`AUDITED`],
//! [`scrub`]), and [`crate::store::audit::insert`] refuses an entry that would store one in
//! clear.

use super::{Db, Q, Tx};
use crate::crypto::{CryptoError, DataKeys};
use crate::error::{Error, Result};
use anyhow::bail;
use serde_json::Value;

/// `(table, column, blind-index column)` of every encrypted column.
pub const COLUMNS: &[(&str, &str, Option<&str>)] = &[
    ("customers", "contact_email", Some("contact_email_idx")),
    ("customers", "contact_phone", Some("contact_phone_idx")),
    ("users", "phone", Some("phone_idx")),
    ("users", "totp_secret", None),
    ("users", "totp_pending", None),
];

/// `(audit entity, snapshot field, table, column)` of every personal value that audit
/// snapshots carry: the log keeps only its fingerprint ([`DataKeys::audit_fingerprint`]).
pub const AUDITED: &[(&str, &str, &str, &str)] = &[
    ("customer", "contact_email", "customers", "contact_email"),
    ("customer", "contact_phone", "customers", "contact_phone"),
    ("user", "phone", "users", "phone"),
];

/// The personal fields of audit snapshots of `entity`, with the purpose their fingerprints
/// are bound to.
fn audited(entity: &str) -> impl Iterator<Item = (&'static str, String)> + '_ {
    AUDITED
        .iter()
        .filter(move |(e, ..)| *e == entity)
        .map(|(_, field, table, column)| (*field, aad(table, column)))
}

/// Whether a snapshot's field value may stand in the audit log: absent, null, empty or a
/// fingerprint.
fn harmless(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty() || crate::crypto::is_audit_fingerprint(s),
        _ => false,
    }
}

/// Replaces, in place, each personal field of an audit snapshot of `entity` by its
/// fingerprint; null, empty and already fingerprinted values stay as they are, so a second
/// run changes nothing. Says whether anything changed.
pub fn scrub(keys: &DataKeys, entity: &str, snapshot: &mut Value) -> bool {
    let Value::Object(map) = snapshot else {
        return false;
    };
    let mut changed = false;
    for (field, purpose) in audited(entity) {
        if let Some(v) = map.get_mut(field)
            && !harmless(v)
        {
            let clear = match &mut *v {
                Value::String(s) => std::mem::take(s),
                other => other.to_string(),
            };
            *v = Value::String(keys.audit_fingerprint(&purpose, &clear));
            changed = true;
        }
    }
    changed
}

/// The personal fields of an audit snapshot of `entity` that hold a value in clear: what
/// the audit log must never store.
pub fn in_clear(entity: &str, snapshot: &Value) -> Vec<&'static str> {
    audited(entity)
        .filter(|(field, _)| snapshot.get(field).is_some_and(|v| !harmless(v)))
        .map(|(field, _)| field)
        .collect()
}

/// The personal fields of snapshots of `entity` whose fingerprints differ between `before`
/// and `after`: what the audit viewer shows as changed without showing the values.
pub fn changed(entity: &str, before: Option<&Value>, after: Option<&Value>) -> Vec<String> {
    let (Some(before), Some(after)) = (before, after) else {
        return Vec::new();
    };
    audited(entity)
        .filter(|(field, _)| before.get(field) != after.get(field))
        .map(|(field, _)| field.to_owned())
        .collect()
}

const CANARY_AAD: &str = "settings.data_key_canary";
/// The `settings` row whose value proves which key the data was encrypted with.
pub const CANARY_SETTING: &str = "data_key_canary";
const CANARY: &str = "ferum data key canary";

/// Associated data of a column: binds a ciphertext to where it belongs.
pub fn aad(table: &str, column: &str) -> String {
    format!("{table}.{column}")
}

pub fn encrypt(keys: &DataKeys, table: &str, column: &str, value: &str) -> (String, String) {
    let a = aad(table, column);
    (keys.encrypt(&a, value), keys.blind_index(&a, value))
}

pub fn decrypt(keys: &DataKeys, table: &str, column: &str, stored: &str) -> Result<String> {
    keys.decrypt(&aad(table, column), stored)
        .map_err(|e| Error::Internal(anyhow::anyhow!("cannot decrypt {table}.{column}: {e}")))
}

pub fn index(keys: &DataKeys, table: &str, column: &str, value: &str) -> String {
    keys.blind_index(&aad(table, column), value)
}

/// Whether `keys` open a canary value read from `settings` (e.g. in a backup archive).
pub fn canary_fits(keys: &DataKeys, stored: &str) -> std::result::Result<(), CryptoError> {
    keys.decrypt(CANARY_AAD, stored).map(|_| ())
}

/// Checks, reading only, that `keys` decrypt this database's personal data; returns the canary
/// (absent in a database that never had a key).
pub async fn verify_key(db: &Db, keys: &DataKeys) -> anyhow::Result<Option<String>> {
    let canary: Option<String> =
        Q::new("SELECT value FROM settings WHERE name = 'data_key_canary'")
            .fetch_optional::<(String,), _>(db.pool())
            .await?
            .map(|r| r.0);
    let refuse = |e: CryptoError| -> anyhow::Error {
        anyhow::anyhow!(
            "the data key (FERUM_DATA_KEY or data/data.key) does not fit this database: {e}. \
             Configure the key this database was encrypted with; nothing was changed"
        )
    };
    match &canary {
        Some(c) => {
            keys.decrypt(CANARY_AAD, c).map_err(refuse)?;
        }
        None => {
            // No canary yet: any encrypted value already present must still decrypt.
            for (table, column, _) in COLUMNS {
                let sample: Option<(String,)> = Q::new(&format!(
                    "SELECT {column} FROM {table} WHERE {column} LIKE 'enc:%' LIMIT 1"
                ))
                .fetch_optional(db.pool())
                .await?;
                if let Some((v,)) = sample {
                    keys.decrypt(&aad(table, column), &v).map_err(refuse)?;
                }
            }
        }
    }
    Ok(canary)
}

/// Checks the key against the database, then encrypts any value still in plaintext (data
/// written before encryption existed). Refuses a key that cannot read the data.
pub async fn startup(db: &Db, keys: &DataKeys) -> anyhow::Result<()> {
    let canary = verify_key(db, keys).await?;
    let mut tx = db.begin().await?;
    if canary.is_none() {
        let mut q = Q::new("INSERT INTO settings (name, value) VALUES ('data_key_canary', ");
        q.bind(keys.encrypt(CANARY_AAD, CANARY)).push(")");
        q.execute(&mut *tx).await?;
    }
    reencrypt_in(&mut tx, keys, true).await?;
    tx.commit().await?;
    // Data patches that need the key (personal data in old audit entries) run now. One that
    // fails (it refuses to re-chain an audit log that is already broken) does not keep the
    // service down: it is logged and stays pending, to run again at the next start.
    if let Err(e) = super::migrate::run_keyed_patches(db, keys, crate::clock::system_now()).await {
        tracing::error!(
            error = format!("{e:#}"),
            "a data patch failed and runs again at the next start"
        );
    }
    Ok(())
}

/// Re-encrypts values in plaintext (`plaintext_only`) or, for rotation, every value not under
/// the current key; refreshes blind indexes. Returns how many values changed.
async fn reencrypt_in(tx: &mut Tx, keys: &DataKeys, plaintext_only: bool) -> anyhow::Result<u64> {
    let mut changed = 0;
    for (table, column, idx) in COLUMNS {
        let rows: Vec<(i64, String)> = Q::new(&format!(
            "SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL AND {column} <> ''"
        ))
        .fetch_all(&mut **tx)
        .await?;
        let a = aad(table, column);
        for (id, stored) in rows {
            let plain = match keys.decrypt(&a, &stored) {
                // Already encrypted (under the current key, when rotating).
                Ok(_) if plaintext_only || !keys.needs_rotation(&stored) => continue,
                Ok(p) => p,
                Err(CryptoError::NotEncrypted) => stored,
                Err(e) => bail!("{table}.{column} of row {id} cannot be decrypted: {e}"),
            };
            let mut q = Q::new(&format!("UPDATE {table} SET {column} = "));
            q.bind(keys.encrypt(&a, &plain));
            if let Some(idx) = idx {
                q.push(&format!(", {idx} = "))
                    .bind(keys.blind_index(&a, &plain));
            }
            q.push(" WHERE id = ").bind(id);
            q.execute(&mut **tx).await?;
            changed += 1;
        }
    }
    if !plaintext_only {
        let mut q = Q::new("UPDATE settings SET value = ");
        q.bind(keys.encrypt(CANARY_AAD, CANARY))
            .push(" WHERE name = 'data_key_canary'");
        q.execute(&mut **tx).await?;
    }
    Ok(changed)
}

/// Re-encrypts every value under the current key (after a rotation).
pub async fn reencrypt(db: &Db, keys: &DataKeys) -> anyhow::Result<u64> {
    let mut tx = db.begin().await?;
    let n = reencrypt_in(&mut tx, keys, false).await?;
    tx.commit().await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn audit_snapshots_keep_fingerprints_only() {
        let keys = DataKeys::generate();
        let mut v = json!({"name": "ООО Ромашка", "contact_email": "a@b.example", "contact_phone": "", "phone": "+7 900 000-00-00"});
        assert_eq!(in_clear("customer", &v), ["contact_email"]);
        assert!(scrub(&keys, "customer", &mut v));
        assert!(in_clear("customer", &v).is_empty());
        assert_eq!(
            v["contact_email"],
            keys.audit_fingerprint("customers.contact_email", "a@b.example")
        );
        assert_eq!(v["contact_phone"], "", "empty stays empty");
        assert_eq!(v["name"], "ООО Ромашка");
        assert_eq!(
            v["phone"], "+7 900 000-00-00",
            "only the entity's own fields"
        );
        let once = v.clone();
        assert!(
            !scrub(&keys, "customer", &mut v),
            "a second run changes nothing"
        );
        assert_eq!(v, once);

        let mut user = json!({"phone": "+7 900 000-00-00", "email": "u@example.ru"});
        assert!(scrub(&keys, "user", &mut user));
        let mut null = json!({"phone": null});
        assert!(!scrub(&keys, "user", &mut null));
        assert!(!scrub(&keys, "request", &mut json!({"phone": "1"})));
        assert!(!scrub(&keys, "user", &mut json!("not an object")));

        let other = json!({"phone": keys.audit_fingerprint("users.phone", "+7 911")});
        assert_eq!(changed("user", Some(&user), Some(&other)), ["phone"]);
        assert!(changed("user", Some(&user), Some(&user)).is_empty());
        assert!(changed("user", None, Some(&user)).is_empty());
    }
}
