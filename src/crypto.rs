//! Encryption of personal data at rest (customer contact e-mails and phones, users' phones).
//!
//! # Keys
//!
//! [`DataKeys`] holds one or more 256-bit data keys, each with a short id, plus a separate
//! 256-bit blind-index key. The configuration string (`FERUM_DATA_KEY`, or the file
//! `data.key` in the data folder) is a comma-separated list of `id:base64` entries:
//!
//! ```text
//! k2:<base64 of 32 bytes>,k1:<base64 of 32 bytes>,idx:<base64 of 32 bytes>
//! ```
//!
//! * The first data-key entry is the *current* key: new values are encrypted with it. The
//!   others are kept only to read older values.
//! * Ids are 1 to 8 characters `a-z`/`0-9`; `idx` is reserved for the blind-index key, which
//!   may appear anywhere in the list.
//! * Keys are standard base64 (padding optional; the URL-safe alphabet is accepted too),
//!   e.g. from `openssl rand -base64 32`.
//! * If `idx` is absent, the index key is derived as
//!   `HMAC-SHA256(key = last listed data key, "ferum blind index v1")`. New keys are added at
//!   the front, so the last one is the oldest: rotating by hand then keeps lookups working
//!   only as long as that oldest key stays listed (last). [`DataKeys::to_config_string`]
//!   always writes `idx` explicitly, so a list produced by [`DataKeys::rotated`] does not
//!   depend on that rule.
//!
//! # Stored format
//!
//! ```text
//! enc:v1:<key id>:<base64url without padding of (24-byte nonce || ciphertext || 16-byte tag)>
//! ```
//!
//! XChaCha20-Poly1305 with a random nonce. The associated data is the UTF-8 text
//! `enc:v1:<key id>:<aad>`, where `aad` names the purpose of the value (for example
//! `customers.contact_email`), so a value copied into another column does not decrypt.
//! The empty string encrypts to the empty string.
//!
//! # Blind index
//!
//! [`DataKeys::blind_index`] gives a lowercase hex HMAC-SHA256 for exact-match lookups,
//! computed with the index key over `u64 big-endian length of field || field || value`, where
//! the value is normalised with `trim().to_lowercase()`. A value that is empty after
//! normalisation indexes to the empty string. Rotating data keys does not change it.
//!
//! # Audit fingerprint
//!
//! [`DataKeys::audit_fingerprint`] stands in for a personal value in the audit log:
//! `pii:` followed by the first 16 lowercase hex digits (64 bits) of HMAC-SHA256 over
//! `u64 big-endian length of field || field || value` (the value exactly as given), under the
//! key `HMAC-SHA256(key = index key, "ferum audit fingerprint v1")`. Equal values give equal
//! fingerprints, so the log still shows whether a value changed, but without the key nobody
//! can test a guess against it. Derived from the index key, it survives key rotation. The
//! empty string stays empty.

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::path::Path;

type HmacSha256 = Hmac<Sha256>;

/// Name of the key file kept in the data folder when `FERUM_DATA_KEY` is not set.
pub const KEY_FILE: &str = "data.key";

/// Prefix of every encrypted value in format version 1.
const PREFIX_V1: &str = "enc:v1:";
/// Reserved config id of the blind-index key.
const INDEX_ID: &str = "idx";
/// Message for deriving the index key when the config has no `idx` entry.
const INDEX_DERIVATION: &[u8] = b"ferum blind index v1";
/// Message for deriving the audit fingerprint key from the index key.
const AUDIT_DERIVATION: &[u8] = b"ferum audit fingerprint v1";
/// Prefix of an audit fingerprint.
pub const FINGERPRINT_PREFIX: &str = "pii:";
/// Hex digits of an audit fingerprint after its prefix.
const FINGERPRINT_HEX: usize = 16;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;
const MAX_ID_LEN: usize = 8;

/// Why a stored value could not be decrypted. The messages never contain key material or data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The value does not start with `enc:`: it is plaintext (the caller decides what to do).
    #[error("value is not encrypted")]
    NotEncrypted,
    /// The value names a key id that is not configured.
    #[error("value is encrypted with data key {0:?}, which is not configured")]
    UnknownKey(String),
    /// Authentication failed: wrong key bytes for that id, wrong purpose (aad), or tampered data.
    #[error("value cannot be decrypted: wrong key, wrong purpose, or tampered data")]
    WrongKey,
    /// Starts with `enc:` but is not a well-formed `enc:v1:` value.
    #[error("value is not a well-formed enc:v1 ciphertext")]
    Malformed,
}

/// The data keys (current first) and the blind-index key. `Debug` prints only the key ids.
#[derive(Clone)]
pub struct DataKeys {
    /// Never empty; element 0 is the current key.
    keys: Vec<(String, [u8; KEY_LEN])>,
    index_key: [u8; KEY_LEN],
}

impl fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("DataKeys")
            .field("current", &self.current_id())
            .field("key_ids", &ids)
            .field("index_key", &"<redacted>")
            .finish()
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Decodes one key; the error text never includes the input.
fn decode_key(b64: &str) -> Result<[u8; KEY_LEN], String> {
    let bytes = [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(b64).ok())
        .ok_or_else(|| "the key is not valid base64".to_owned())?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "the key must decode to exactly {KEY_LEN} bytes, got {} (generate one with `openssl rand -base64 32`)",
            bytes.len()
        )
    })
}

fn random_key() -> [u8; KEY_LEN] {
    use rand::RngCore;
    let mut key = [0u8; KEY_LEN];
    rand::rngs::OsRng.fill_bytes(&mut key);
    key
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn associated_data(key_id: &str, aad: &str) -> Vec<u8> {
    format!("{PREFIX_V1}{key_id}:{aad}").into_bytes()
}

/// Splits `enc:v1:<id>:<payload>` into id and payload.
fn split_stored(stored: &str) -> Result<(&str, &str), CryptoError> {
    if !stored.starts_with("enc:") {
        return Err(CryptoError::NotEncrypted);
    }
    let rest = stored
        .strip_prefix(PREFIX_V1)
        .ok_or(CryptoError::Malformed)?;
    let (id, payload) = rest.split_once(':').ok_or(CryptoError::Malformed)?;
    if !valid_id(id) {
        return Err(CryptoError::Malformed);
    }
    Ok((id, payload))
}

impl DataKeys {
    /// Parses `k2:BASE64,k1:BASE64[,idx:BASE64]` (first data key = current). Surrounding
    /// whitespace and a trailing newline are ignored. Errors never repeat key material.
    pub fn parse(s: &str) -> anyhow::Result<DataKeys> {
        let s = s.trim();
        if s.is_empty() {
            bail!("the data key list is empty; expected entries like k1:<32 bytes in base64>");
        }
        let mut keys: Vec<(String, [u8; KEY_LEN])> = Vec::new();
        let mut index_key: Option<[u8; KEY_LEN]> = None;
        for (n, entry) in s.split(',').enumerate() {
            let n = n + 1;
            let entry = entry.trim();
            if entry.is_empty() {
                bail!("entry {n} of the data key list is empty");
            }
            let Some((id, b64)) = entry.split_once(':') else {
                bail!("entry {n} of the data key list is not of the form id:base64");
            };
            let id = id.trim();
            if !valid_id(id) {
                bail!(
                    "entry {n} of the data key list: the key id must be 1 to {MAX_ID_LEN} characters a-z or 0-9"
                );
            }
            let key = decode_key(b64.trim()).map_err(|why| anyhow!("data key {id:?}: {why}"))?;
            if id == INDEX_ID {
                if index_key.replace(key).is_some() {
                    bail!("the data key list has more than one {INDEX_ID:?} entry");
                }
            } else if keys.iter().any(|(known, _)| known == id) {
                bail!("the data key list has key id {id:?} twice");
            } else {
                keys.push((id.to_owned(), key));
            }
        }
        let Some((_, oldest)) = keys.last() else {
            bail!("the data key list has no data key (only {INDEX_ID:?})");
        };
        let index_key = index_key.unwrap_or_else(|| hmac(oldest, &[INDEX_DERIVATION]));
        Ok(DataKeys { keys, index_key })
    }

    /// A fresh set: one random data key `k1` and a random index key.
    pub fn generate() -> DataKeys {
        DataKeys {
            keys: vec![("k1".to_owned(), random_key())],
            index_key: random_key(),
        }
    }

    /// The config string for these keys (current first, `idx` last), for a key file or
    /// `FERUM_DATA_KEY`. Contains secrets.
    pub fn to_config_string(&self) -> String {
        self.keys
            .iter()
            .map(|(id, key)| (id.as_str(), key))
            .chain([(INDEX_ID, &self.index_key)])
            .map(|(id, key)| format!("{id}:{}", STANDARD.encode(key)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The keys from `env_value` or `data_dir/data.key`, without creating anything; `None`
    /// when neither exists.
    pub fn load(data_dir: &Path, env_value: Option<&str>) -> anyhow::Result<Option<DataKeys>> {
        if let Some(value) = env_value.filter(|v| !v.trim().is_empty()) {
            return DataKeys::parse(value)
                .context("FERUM_DATA_KEY is invalid")
                .map(Some);
        }
        read_key_file(&data_dir.join(KEY_FILE))
    }

    /// The keys from `env_value` (`FERUM_DATA_KEY`; blank counts as unset) if given, else from
    /// `data_dir/data.key`, which is generated (mode 0600) if missing. The flag says whether
    /// the file was created now.
    pub fn load_or_create(
        data_dir: &Path,
        env_value: Option<&str>,
    ) -> anyhow::Result<(DataKeys, bool)> {
        if let Some(value) = env_value.filter(|v| !v.trim().is_empty()) {
            let keys = DataKeys::parse(value).context("FERUM_DATA_KEY is invalid")?;
            return Ok((keys, false));
        }
        let path = data_dir.join(KEY_FILE);
        if let Some(keys) = read_key_file(&path)? {
            return Ok((keys, false));
        }
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let keys = DataKeys::generate();
        match write_private(&path, &format!("{}\n", keys.to_config_string())) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "generated a data-encryption key");
                Ok((keys, true))
            }
            // Another process created it between our read and write: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let keys = read_key_file(&path)?
                    .with_context(|| format!("{} disappeared while starting", path.display()))?;
                Ok((keys, false))
            }
            Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
        }
    }

    /// The keys from `env_value` (`FERUM_DATA_KEY`; blank counts as unset) or the key file in
    /// `data_dir`, without creating one; `None` if neither exists.
    pub fn load_existing(
        data_dir: &Path,
        env_value: Option<&str>,
    ) -> anyhow::Result<Option<DataKeys>> {
        if let Some(value) = env_value.filter(|v| !v.trim().is_empty()) {
            return DataKeys::parse(value)
                .context("FERUM_DATA_KEY is invalid")
                .map(Some);
        }
        read_key_file(&data_dir.join(KEY_FILE))
    }

    /// Id of the current key (the one new values are encrypted with).
    pub fn current_id(&self) -> &str {
        &self.keys[0].0
    }

    /// All data-key ids, current first.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(id, _)| id.as_str())
    }

    fn key(&self, id: &str) -> Option<&[u8; KEY_LEN]> {
        self.keys.iter().find(|(k, _)| k == id).map(|(_, key)| key)
    }

    /// Encrypts `plaintext` for the purpose `aad` (e.g. `"customers.contact_email"`) with the
    /// current key: `enc:v1:<id>:<base64url(nonce || ciphertext)>`. Empty stays empty.
    pub fn encrypt(&self, aad: &str, plaintext: &str) -> String {
        if plaintext.is_empty() {
            return String::new();
        }
        let (id, key) = &self.keys[0];
        let cipher = XChaCha20Poly1305::new(&Key::from(*key));
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &associated_data(id, aad),
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any text that fits in memory");
        let mut payload = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        payload.extend_from_slice(&nonce);
        payload.extend_from_slice(&ciphertext);
        format!("{PREFIX_V1}{id}:{}", URL_SAFE_NO_PAD.encode(payload))
    }

    /// Decrypts a value written by [`encrypt`](Self::encrypt) with the same `aad`. Empty gives
    /// empty; anything without the `enc:` prefix is [`CryptoError::NotEncrypted`].
    pub fn decrypt(&self, aad: &str, stored: &str) -> Result<String, CryptoError> {
        if stored.is_empty() {
            return Ok(String::new());
        }
        let (id, payload) = split_stored(stored)?;
        let key = self
            .key(id)
            .ok_or_else(|| CryptoError::UnknownKey(id.to_owned()))?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| CryptoError::Malformed)?;
        if payload.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Malformed);
        }
        let (nonce, ciphertext) = payload.split_at(NONCE_LEN);
        let nonce = XNonce::from(<[u8; NONCE_LEN]>::try_from(nonce).expect("split at NONCE_LEN"));
        let plaintext = XChaCha20Poly1305::new(&Key::from(*key))
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: &associated_data(id, aad),
                },
            )
            .map_err(|_| CryptoError::WrongKey)?;
        String::from_utf8(plaintext).map_err(|_| CryptoError::Malformed)
    }

    /// Whether `stored` is encrypted under a key other than the current one (including a key
    /// that is not configured, so a re-encryption pass surfaces it as an error). Empty,
    /// plaintext and malformed values give `false`.
    pub fn needs_rotation(&self, stored: &str) -> bool {
        matches!(split_stored(stored), Ok((id, _)) if id != self.current_id())
    }

    /// Keyed hash of `value` for exact-match lookups in `field` (e.g. `"customers.contact_email"`):
    /// 64 lowercase hex digits, or empty if the value is blank. Case and surrounding
    /// whitespace are ignored; callers normalise anything else (e.g. phone formatting) first.
    pub fn blind_index(&self, field: &str, value: &str) -> String {
        let value = value.trim().to_lowercase();
        if value.is_empty() {
            return String::new();
        }
        let field_len = (field.len() as u64).to_be_bytes();
        hex(&hmac(
            &self.index_key,
            &[&field_len, field.as_bytes(), value.as_bytes()],
        ))
    }

    /// What the audit log keeps instead of the personal value `value` of `field` (e.g.
    /// `"customers.contact_email"`): `pii:` and 16 hex digits of a keyed HMAC-SHA256 (see the
    /// module documentation). The value is taken exactly (a change of case is a change);
    /// empty stays empty.
    pub fn audit_fingerprint(&self, field: &str, value: &str) -> String {
        if value.is_empty() {
            return String::new();
        }
        let key = hmac(&self.index_key, &[AUDIT_DERIVATION]);
        let field_len = (field.len() as u64).to_be_bytes();
        let mac = hmac(&key, &[&field_len, field.as_bytes(), value.as_bytes()]);
        format!("{FINGERPRINT_PREFIX}{}", &hex(&mac)[..FINGERPRINT_HEX])
    }

    /// A short, non-secret fingerprint of the index key (16 hex digits). Storing it next to
    /// the data lets start-up notice a changed index key, which would silently break lookups.
    pub fn index_fingerprint(&self) -> String {
        hex(&hmac(&self.index_key, &[b"ferum blind index fingerprint"])[..8])
    }

    /// A new set whose current key is fresh (id `kN` after the highest existing `kN`), keeping
    /// the old keys for reading and the same index key.
    pub fn rotated(&self) -> DataKeys {
        let highest = self
            .keys
            .iter()
            .filter_map(|(id, _)| id.strip_prefix('k')?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        // `kN` ids fit 8 characters up to k9999999; past that, reuse the lowest free number.
        let id = (highest.saturating_add(1)..=9_999_999)
            .chain(1..)
            .map(|n| format!("k{n}"))
            .find(|id| self.key(id).is_none())
            .expect("a free key id exists");
        let mut keys = Vec::with_capacity(self.keys.len() + 1);
        keys.push((id, random_key()));
        keys.extend(self.keys.iter().cloned());
        DataKeys {
            keys,
            index_key: self.index_key,
        }
    }

    /// Checks at start-up that these keys can read an existing stored value.
    pub fn check_sample(&self, aad: &str, stored: &str) -> Result<(), CryptoError> {
        self.decrypt(aad, stored).map(drop)
    }
}

/// Whether `value` is an audit fingerprint as [`DataKeys::audit_fingerprint`] writes it.
pub fn is_audit_fingerprint(value: &str) -> bool {
    value.strip_prefix(FINGERPRINT_PREFIX).is_some_and(|h| {
        h.len() == FINGERPRINT_HEX
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Reads a key file; `None` if it does not exist.
pub fn read_key_file(path: &Path) -> anyhow::Result<Option<DataKeys>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "the data key file is readable by other users; chmod 600 it");
        }
    }
    let keys = DataKeys::parse(&text).with_context(|| {
        format!(
            "{} is damaged; it holds the keys to the encrypted personal data, so restore it from a backup",
            path.display()
        )
    })?;
    Ok(Some(keys))
}

/// Creates a file only its owner can read; fails with `AlreadyExists` if it exists.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(path)?;
    let written = file
        .write_all(contents.as_bytes())
        .and_then(|()| file.sync_all());
    if written.is_err() {
        // Don't leave a half-written key file that would block the next start.
        let _ = std::fs::remove_file(path);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    const AAD: &str = "customers.contact_email";

    fn b64(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    fn fixed(id: &str, byte: u8) -> String {
        format!("{id}:{}", b64(&[byte; 32]))
    }

    #[test]
    fn round_trip() {
        let keys = DataKeys::generate();
        for text in ["a@b.example", "+7 900 123-45-67", "Ёлка — ü", " padded "] {
            let stored = keys.encrypt(AAD, text);
            assert!(stored.starts_with("enc:v1:k1:"), "{stored}");
            assert!(!stored.contains(text.trim()));
            assert_eq!(keys.decrypt(AAD, &stored).unwrap(), text);
        }
    }

    #[test]
    fn stored_format() {
        let keys = DataKeys::generate();
        let stored = keys.encrypt(AAD, "abc");
        let payload = stored.strip_prefix("enc:v1:k1:").unwrap();
        assert!(!payload.contains('='));
        let raw = URL_SAFE_NO_PAD.decode(payload).unwrap();
        assert_eq!(raw.len(), NONCE_LEN + 3 + TAG_LEN);
    }

    #[test]
    fn empty_stays_empty() {
        let keys = DataKeys::generate();
        assert_eq!(keys.encrypt(AAD, ""), "");
        assert_eq!(keys.decrypt(AAD, "").unwrap(), "");
        assert!(keys.check_sample(AAD, "").is_ok());
    }

    #[test]
    fn equal_plaintexts_get_different_nonces() {
        let keys = DataKeys::generate();
        let a = keys.encrypt(AAD, "same@example.com");
        let b = keys.encrypt(AAD, "same@example.com");
        assert_ne!(a, b);
        let nonce = |s: &str| URL_SAFE_NO_PAD.decode(&s[10..]).unwrap()[..NONCE_LEN].to_vec();
        assert_ne!(nonce(&a), nonce(&b));
    }

    #[test]
    fn wrong_aad_fails() {
        let keys = DataKeys::generate();
        let stored = keys.encrypt(AAD, "a@b.example");
        assert_eq!(
            keys.decrypt("users.phone", &stored),
            Err(CryptoError::WrongKey)
        );
    }

    #[test]
    fn tampering_fails() {
        let keys = DataKeys::generate();
        let stored = keys.encrypt(AAD, "a@b.example");
        let prefix = "enc:v1:k1:";
        let raw = URL_SAFE_NO_PAD.decode(&stored[prefix.len()..]).unwrap();
        for i in [0, NONCE_LEN, raw.len() - 1] {
            let mut bad = raw.clone();
            bad[i] ^= 0x01;
            let bad = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(&bad));
            assert_eq!(keys.decrypt(AAD, &bad), Err(CryptoError::WrongKey));
        }
        // Truncated or garbled payloads are malformed, not a panic.
        let short = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(&raw[..NONCE_LEN]));
        assert_eq!(keys.decrypt(AAD, &short), Err(CryptoError::Malformed));
        assert_eq!(
            keys.decrypt(AAD, "enc:v1:k1:***"),
            Err(CryptoError::Malformed)
        );
    }

    #[test]
    fn wrong_key_bytes_under_same_id_fail() {
        let a = DataKeys::parse(&fixed("k1", 1)).unwrap();
        let b = DataKeys::parse(&fixed("k1", 2)).unwrap();
        let stored = a.encrypt(AAD, "a@b.example");
        assert_eq!(b.decrypt(AAD, &stored), Err(CryptoError::WrongKey));
        assert_eq!(b.check_sample(AAD, &stored), Err(CryptoError::WrongKey));
        assert!(a.check_sample(AAD, &stored).is_ok());
    }

    #[test]
    fn relabelled_key_id_fails() {
        let keys = DataKeys::parse(&format!("{},{}", fixed("k2", 2), fixed("k1", 1))).unwrap();
        let stored = keys.encrypt(AAD, "a@b.example");
        let relabelled = stored.replacen("enc:v1:k2:", "enc:v1:k1:", 1);
        assert_eq!(keys.decrypt(AAD, &relabelled), Err(CryptoError::WrongKey));
    }

    #[test]
    fn unknown_key_id() {
        let keys = DataKeys::generate();
        let stored = keys.encrypt(AAD, "a@b.example");
        let other = stored.replacen("enc:v1:k1:", "enc:v1:k9:", 1);
        assert_eq!(
            keys.decrypt(AAD, &other),
            Err(CryptoError::UnknownKey("k9".into()))
        );
        assert!(keys.needs_rotation(&other));
    }

    #[test]
    fn plaintext_and_malformed_values() {
        let keys = DataKeys::generate();
        assert_eq!(
            keys.decrypt(AAD, "a@b.example"),
            Err(CryptoError::NotEncrypted)
        );
        assert_eq!(
            keys.check_sample(AAD, "+79001234567"),
            Err(CryptoError::NotEncrypted)
        );
        for bad in [
            "enc:",
            "enc:v2:k1:AAAA",
            "enc:v1:",
            "enc:v1:k1",
            "enc:v1:K1:AAAA",
        ] {
            assert_eq!(keys.decrypt(AAD, bad), Err(CryptoError::Malformed), "{bad}");
            assert!(!keys.needs_rotation(bad), "{bad}");
        }
        assert!(!keys.needs_rotation(""));
        assert!(!keys.needs_rotation("a@b.example"));
    }

    #[test]
    fn rotation_keeps_old_data_readable() {
        let old = DataKeys::generate();
        let stored = old.encrypt(AAD, "a@b.example");
        assert!(!old.needs_rotation(&stored));

        let new = old.rotated();
        assert_eq!(new.current_id(), "k2");
        assert_eq!(new.key_ids().collect::<Vec<_>>(), ["k2", "k1"]);
        assert_eq!(new.decrypt(AAD, &stored).unwrap(), "a@b.example");
        assert!(new.needs_rotation(&stored));

        let again = new.encrypt(AAD, &new.decrypt(AAD, &stored).unwrap());
        assert!(again.starts_with("enc:v1:k2:"));
        assert!(!new.needs_rotation(&again));
        assert_eq!(
            old.decrypt(AAD, &again),
            Err(CryptoError::UnknownKey("k2".into()))
        );

        // The written config keeps everything.
        let reread = DataKeys::parse(&new.to_config_string()).unwrap();
        assert_eq!(reread.current_id(), "k2");
        assert_eq!(reread.decrypt(AAD, &stored).unwrap(), "a@b.example");
        assert_eq!(reread.decrypt(AAD, &again).unwrap(), "a@b.example");
        assert_eq!(reread.rotated().current_id(), "k3");
    }

    #[test]
    fn rotation_picks_a_free_id() {
        let keys = DataKeys::parse(&format!("{},{}", fixed("main", 1), fixed("k7", 2))).unwrap();
        assert_eq!(keys.rotated().current_id(), "k8");
        let keys = DataKeys::parse(&fixed("prod", 1)).unwrap();
        assert_eq!(keys.rotated().current_id(), "k1");
        let keys = DataKeys::parse(&fixed("k9999999", 1)).unwrap();
        assert_eq!(keys.rotated().current_id(), "k1");
    }

    #[test]
    fn blind_index() {
        let keys = DataKeys::generate();
        let a = keys.blind_index(AAD, "Ivan@Example.com");
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(a, keys.blind_index(AAD, "ivan@example.com"));
        assert_eq!(a, keys.blind_index(AAD, "  IVAN@example.COM\n"));
        assert_ne!(a, keys.blind_index(AAD, "ivan2@example.com"));
        assert_ne!(a, keys.blind_index("users.email", "ivan@example.com"));
        // The field is length-prefixed, so shifting bytes between field and value differs.
        assert_ne!(keys.blind_index("ab", "c"), keys.blind_index("a", "bc"));
        // A different index key gives a different index.
        assert_ne!(a, DataKeys::generate().blind_index(AAD, "ivan@example.com"));
        assert_eq!(keys.blind_index(AAD, "   "), "");

        let rotated = keys.rotated();
        assert_eq!(a, rotated.blind_index(AAD, "ivan@example.com"));
        assert_eq!(keys.index_fingerprint(), rotated.index_fingerprint());
        let reread = DataKeys::parse(&rotated.rotated().to_config_string()).unwrap();
        assert_eq!(a, reread.blind_index(AAD, "ivan@example.com"));
        assert_eq!(keys.index_fingerprint(), reread.index_fingerprint());
        assert_eq!(keys.index_fingerprint().len(), 16);
    }

    #[test]
    fn audit_fingerprint() {
        let keys = DataKeys::generate();
        let a = keys.audit_fingerprint(AAD, "ivan@example.com");
        assert!(is_audit_fingerprint(&a), "{a}");
        assert_eq!(a.len(), 4 + 16);
        assert!(!a.contains("ivan"));
        assert_eq!(a, keys.audit_fingerprint(AAD, "ivan@example.com"));
        // Exact: case and spaces count, unlike the blind index.
        assert_ne!(a, keys.audit_fingerprint(AAD, "Ivan@example.com"));
        assert_ne!(a, keys.audit_fingerprint("users.phone", "ivan@example.com"));
        assert_ne!(
            keys.audit_fingerprint("ab", "c"),
            keys.audit_fingerprint("a", "bc")
        );
        // Not the blind index, and not reproducible without the key.
        assert!(
            !keys
                .blind_index(AAD, "ivan@example.com")
                .starts_with(&a[4..])
        );
        assert_ne!(
            a,
            DataKeys::generate().audit_fingerprint(AAD, "ivan@example.com")
        );
        assert_eq!(keys.audit_fingerprint(AAD, ""), "");
        // Rotation keeps fingerprints (they come from the index key).
        assert_eq!(a, keys.rotated().audit_fingerprint(AAD, "ivan@example.com"));
        for not in [
            "",
            "pii:",
            "pii:0123456789abcdeg",
            "pii:0123456789ABCDEF",
            "pii:0123456789abcdef0",
            "x@y.z",
        ] {
            assert!(!is_audit_fingerprint(not), "{not}");
        }
        assert!(is_audit_fingerprint("pii:0123456789abcdef"));
    }

    #[test]
    fn derived_index_key_survives_prepending_a_key() {
        let one = DataKeys::parse(&fixed("k1", 1)).unwrap();
        let two = DataKeys::parse(&format!("{},{}", fixed("k2", 2), fixed("k1", 1))).unwrap();
        assert_eq!(one.blind_index(AAD, "x@y.z"), two.blind_index(AAD, "x@y.z"));
        // ... and an explicit idx entry overrides the derivation.
        let explicit = DataKeys::parse(&format!("{},{}", fixed("k1", 1), fixed("idx", 9))).unwrap();
        assert_ne!(
            one.blind_index(AAD, "x@y.z"),
            explicit.blind_index(AAD, "x@y.z")
        );
        // Round trip writes the derived key explicitly.
        let reread = DataKeys::parse(&one.to_config_string()).unwrap();
        assert_eq!(
            one.blind_index(AAD, "x@y.z"),
            reread.blind_index(AAD, "x@y.z")
        );
    }

    #[test]
    fn parse_accepts_variants() {
        let key = [0xfbu8; 32];
        let keys = DataKeys::parse(&format!(
            " k2:{} , k1:{}\n",
            URL_SAFE_NO_PAD.encode(key),
            STANDARD_NO_PAD.encode(key)
        ))
        .unwrap();
        assert_eq!(keys.current_id(), "k2");
        let idx_first = DataKeys::parse(&format!(
            "{},{},{}",
            fixed("idx", 3),
            fixed("k2", 2),
            fixed("k1", 1)
        ))
        .unwrap();
        assert_eq!(idx_first.current_id(), "k2");
        assert_eq!(idx_first.key_ids().count(), 2);
    }

    #[test]
    fn parse_errors_do_not_echo_keys() {
        let short = b64(&[7u8; 16]);
        let long = b64(&[7u8; 33]);
        let good = b64(&[5u8; 32]);
        let cases = [
            ("", "empty".to_owned()),
            ("  \n", "empty".to_owned()),
            ("k1:!!notbase64!!", "base64".to_owned()),
            (
                &format!("k1:{short}") as &str,
                "exactly 32 bytes, got 16".to_owned(),
            ),
            (&format!("k1:{long}"), "exactly 32 bytes, got 33".to_owned()),
            (&format!("k1:{good},k1:{good}"), "twice".to_owned()),
            (
                &format!("idx:{good},idx:{good},k1:{good}"),
                "more than one".to_owned(),
            ),
            (&format!("idx:{good}"), "no data key".to_owned()),
            (&format!("K1:{good}"), "key id".to_owned()),
            (&format!("toolongid:{good}"), "key id".to_owned()),
            (&format!("{good}:k1"), "key id".to_owned()),
            (&good, "id:base64".to_owned()),
            (&format!("k1:{good},"), "entry 2".to_owned()),
        ];
        for (input, expected) in cases {
            let err = DataKeys::parse(input).unwrap_err();
            let text = format!("{err:#} {err:?}");
            assert!(text.contains(&expected), "{input:?}: {text}");
            for secret in [&short, &long, &good, "notbase64"] {
                assert!(!text.contains(secret), "{input:?} leaked: {text}");
            }
        }
    }

    #[test]
    fn debug_does_not_leak() {
        let keys = DataKeys::generate().rotated();
        let debug = format!("{keys:?} {keys:#?}");
        assert!(debug.contains("k2") && debug.contains("k1"), "{debug}");
        for entry in keys.to_config_string().split(',') {
            let (_, b64) = entry.split_once(':').unwrap();
            assert!(!debug.contains(b64), "{debug}");
            let raw = STANDARD.decode(b64).unwrap();
            assert!(!debug.contains(&hex(&raw)), "{debug}");
            let array = format!("{:?}", &raw[..4]);
            assert!(!debug.contains(array.trim_matches(['[', ']'])), "{debug}");
        }
    }

    #[test]
    fn load_or_create_creates_once() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let (first, created) = DataKeys::load_or_create(&data_dir, None).unwrap();
        assert!(created);
        let path = data_dir.join(KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let stored = first.encrypt(AAD, "a@b.example");

        let (second, created) = DataKeys::load_or_create(&data_dir, Some("  ")).unwrap();
        assert!(!created);
        assert_eq!(second.to_config_string(), first.to_config_string());
        assert_eq!(second.decrypt(AAD, &stored).unwrap(), "a@b.example");
    }

    #[test]
    fn load_or_create_prefers_env() {
        let dir = tempfile::tempdir().unwrap();
        let env = DataKeys::generate().to_config_string();
        let (keys, created) = DataKeys::load_or_create(dir.path(), Some(&env)).unwrap();
        assert!(!created);
        assert_eq!(keys.to_config_string(), env);
        assert!(!dir.path().join(KEY_FILE).exists());

        let bad = format!("k1:{}", b64(&[1u8; 8]));
        let err = DataKeys::load_or_create(dir.path(), Some(&bad)).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("FERUM_DATA_KEY"), "{text}");
        assert!(!text.contains(&bad[3..]), "{text}");
    }

    #[test]
    fn load_or_create_refuses_a_damaged_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::write(&path, "garbage").unwrap();
        let err = DataKeys::load_or_create(dir.path(), None).unwrap_err();
        assert!(format!("{err:#}").contains("damaged"), "{err:#}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "garbage");
    }
}
