//! The archive: a gzip-compressed tar, optionally encrypted with age, holding
//!
//! ```text
//! tables/<table>.jsonl   one JSON object per row (see `dump`)
//! files/<path>           every file of the stored-files folder
//! keys/data.key          the personal-data keys, only in an encrypted archive
//! manifest.json          last: versions, row counts, size and SHA-256 of every part above
//! manifest.mac           with a backup key only: HMAC-SHA256 of manifest.json
//! ```
//!
//! The manifest comes last so that each part is hashed while it is written, in one read of
//! the data. Reading checks everything: the age authentication (when encrypted), the gzip
//! checksum, the size and SHA-256 of every part, that nothing is missing or extra, the row
//! counts, the audit chain of the audit rows (see [`super::chain`]) and, when a backup key is
//! given, the manifest's MAC.
//!
//! The checksums catch accidental damage, not someone who edits a part and recomputes them;
//! the audit chain catches such an edit of the audit rows; only the MAC, which needs the key,
//! catches any edit.

use super::chain::Chain;
use super::progress::{Counting, Progress, Unit};
use anyhow::{Context, bail};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

/// Version of the archive layout; a reader refuses one it does not know.
pub const FORMAT: u32 = 1;
pub const MANIFEST: &str = "manifest.json";
pub const KEY_PART: &str = "keys/data.key";
/// The manifest's MAC, in an archive taken with a backup key.
pub const MAC_PART: &str = "manifest.mac";
const MAC_PREFIX: &str = "hmac-sha256:";
/// Domain separation: this key signs backup manifests and nothing else.
const MAC_CONTEXT: &[u8] = b"ferum backup manifest v1\n";
const AGE_MAGIC: &[u8] = b"age-encryption.org/";
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];

/// One file inside the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationRecord {
    pub version: i64,
    pub name: String,
}

/// What an archive holds and how to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub ferum_version: String,
    /// When the backup was taken, RFC 3339 UTC.
    pub created_at: String,
    /// `sqlite` or `postgres`.
    pub source_backend: String,
    pub schema_version: i64,
    pub migrations: Vec<MigrationRecord>,
    pub data_patches: Vec<String>,
    /// Rows per table.
    pub tables: BTreeMap<String, u64>,
    pub files: u64,
    pub encrypted: bool,
    pub parts: Vec<Part>,
}

impl Manifest {
    pub fn rows(&self) -> u64 {
        self.tables.values().sum()
    }

    pub fn includes_key(&self) -> bool {
        self.parts.iter().any(|p| p.path == KEY_PART)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

/// The secret that signs manifests (`FERUM_BACKUP_KEY`): whoever lacks it cannot edit an
/// archive without the edit being refused.
#[derive(Clone)]
pub struct BackupKey(Vec<u8>);

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackupKey(<redacted>)")
    }
}

impl BackupKey {
    /// At least 32 characters, as `openssl rand -hex 32` gives 64.
    pub fn parse(s: &str, source: &str) -> anyhow::Result<BackupKey> {
        let s = s.trim();
        if s.chars().count() < 32 {
            bail!("{source} must be at least 32 characters (generate one: openssl rand -hex 32)");
        }
        Ok(BackupKey(s.as_bytes().to_vec()))
    }

    fn mac(&self) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(MAC_CONTEXT);
        mac
    }

    /// The content of [`MAC_PART`] for these manifest bytes.
    pub fn sign(&self, manifest: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(manifest);
        format!("{MAC_PREFIX}{}\n", hex(&mac.finalize().into_bytes()))
    }

    /// Whether `signature` (the content of [`MAC_PART`]) signs these manifest bytes; compared
    /// in constant time.
    pub fn signs(&self, manifest: &[u8], signature: &[u8]) -> bool {
        let Some(tag) = std::str::from_utf8(signature)
            .ok()
            .and_then(|s| s.trim().strip_prefix(MAC_PREFIX))
            .and_then(unhex)
        else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(manifest);
        mac.verify_slice(&tag).is_ok()
    }
}

/// Whether the manifest was signed, and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// Taken without a backup key.
    Unsigned,
    /// Signed, and the MAC matched the key given.
    Checked,
    /// Signed, but no key was given to check it.
    NotChecked,
}

/// A reader that hashes and counts what passes through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
    newlines: u64,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            size: 0,
            newlines: 0,
        }
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        self.newlines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        Ok(n)
    }
}

/// A reader that advances a progress line it borrows.
struct Advancing<'a, R> {
    inner: R,
    progress: &'a mut Progress,
}

impl<R: Read> Read for Advancing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}

/// Where the compressed stream goes: the file, or age encrypting into the file.
enum Sink<W: Write> {
    Plain(W),
    Age(age::stream::StreamWriter<W>),
}

impl<W: Write> Write for Sink<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Age(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Age(w) => w.flush(),
        }
    }
}

/// Writes an archive part by part; [`finish`](Self::finish) adds the manifest.
pub struct Writer<W: Write> {
    tar: tar::Builder<flate2::write::GzEncoder<Sink<W>>>,
    parts: Vec<Part>,
    mtime: u64,
    progress: Progress,
}

impl<W: Write> Writer<W> {
    /// Starts an archive; with a recipient, everything is encrypted to it. `mtime` is the
    /// time stamp of every entry (the backup time), so archives do not depend on file dates.
    /// `total` (the bytes of all parts, when known) is for the progress line.
    pub fn new(
        out: W,
        recipient: Option<&age::x25519::Recipient>,
        mtime: u64,
        total: Option<u64>,
    ) -> anyhow::Result<Writer<W>> {
        let sink = match recipient {
            None => Sink::Plain(out),
            Some(r) => {
                let enc =
                    age::Encryptor::with_recipients(std::iter::once(r as &dyn age::Recipient))
                        .context("cannot encrypt to the age recipient")?;
                Sink::Age(enc.wrap_output(out)?)
            }
        };
        let gz = flate2::write::GzEncoder::new(sink, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        tar.mode(tar::HeaderMode::Deterministic);
        Ok(Writer {
            tar,
            parts: Vec::new(),
            mtime,
            progress: Progress::new("writing the archive", Unit::Bytes, total),
        })
    }

    /// Adds `size` bytes read from `data` as `path`. Fails if `data` holds a different amount
    /// (a file that changed while it was being archived).
    pub fn append(&mut self, path: &str, size: u64, data: impl Read) -> anyhow::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_mtime(self.mtime);
        header.set_entry_type(tar::EntryType::Regular);
        self.progress.set_label(format!("archiving {path}"));
        let mut reader = Hashing::new(Advancing {
            inner: data.take(size),
            progress: &mut self.progress,
        });
        self.tar
            .append_data(&mut header, path, &mut reader)
            .with_context(|| format!("writing {path} into the archive"))?;
        if reader.size != size {
            bail!("{path} changed while it was being archived; take the backup again");
        }
        self.parts.push(Part {
            path: path.to_owned(),
            size,
            sha256: hex(&reader.hasher.finalize()),
        });
        Ok(())
    }

    /// Adds a file from disk.
    pub fn append_file(&mut self, path: &str, file: &Path) -> anyhow::Result<()> {
        let f =
            std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
        let size = f.metadata()?.len();
        self.append(path, size, BufReader::new(f))
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Adds the manifest (its `parts` are the ones written) and closes every layer.
    pub fn finish(self, manifest: Manifest) -> anyhow::Result<(W, Manifest)> {
        self.finish_signed(manifest, None)
    }

    fn append_small(&mut self, path: &str, data: &[u8]) -> anyhow::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(self.mtime);
        header.set_entry_type(tar::EntryType::Regular);
        self.tar.append_data(&mut header, path, data)?;
        Ok(())
    }

    /// [`finish`](Self::finish), and with a key, the manifest's MAC after it.
    pub fn finish_signed(
        mut self,
        mut manifest: Manifest,
        key: Option<&BackupKey>,
    ) -> anyhow::Result<(W, Manifest)> {
        manifest.parts = std::mem::take(&mut self.parts);
        let json = serde_json::to_vec_pretty(&manifest)?;
        self.append_small(MANIFEST, &json)?;
        if let Some(key) = key {
            self.append_small(MAC_PART, key.sign(&json).as_bytes())?;
        }
        let gz = self.tar.into_inner()?;
        let sink = gz.finish()?;
        let out = match sink {
            Sink::Plain(w) => w,
            Sink::Age(w) => w.finish()?,
        };
        self.progress.finish();
        Ok((out, manifest))
    }
}

/// The identities that can open encrypted archives, from an identity file.
pub struct Identities(Vec<Box<dyn age::Identity>>);

impl Identities {
    /// Reads an age identity file (`AGE-SECRET-KEY-1…` lines; `#` comments and blank lines
    /// are allowed).
    pub fn from_file(path: &Path) -> anyhow::Result<Identities> {
        let f = std::fs::File::open(path)
            .with_context(|| format!("cannot read the age identity file {}", path.display()))?;
        let file = age::IdentityFile::from_buffer(BufReader::new(f))
            .with_context(|| format!("{} is not an age identity file", path.display()))?;
        let ids = file
            .into_identities()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if ids.is_empty() {
            bail!("{} holds no age identity", path.display());
        }
        Ok(Identities(ids))
    }
}

/// What reading an archive found.
#[derive(Debug)]
pub struct Opened {
    pub manifest: Manifest,
    pub encrypted: bool,
    /// The personal-data keys carried by an encrypted archive.
    pub data_key: Option<String>,
    pub signature: Signature,
    /// The audit entries, whose chain verified.
    pub audit_entries: u64,
}

fn damaged(why: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("the archive is damaged: {why}; nothing was changed")
}

/// Checks that an entry path is one an archive may hold, and gives where it goes.
fn entry_place(path: &str) -> anyhow::Result<()> {
    if path == MANIFEST || path == KEY_PART || path == MAC_PART {
        return Ok(());
    }
    if let Some(name) = path
        .strip_prefix("tables/")
        .and_then(|p| p.strip_suffix(".jsonl"))
        && !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Ok(());
    }
    if let Some(rel) = path.strip_prefix("files/") {
        let p = Path::new(rel);
        if !rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_))) {
            return Ok(());
        }
    }
    Err(damaged(format!("it holds an unexpected entry {path:?}")))
}

/// Reads and checks a whole archive; the identity file is read only if the archive is
/// encrypted. With `out`, every part is also written below that
/// folder (`out/tables/…`, `out/files/…`); without, it is only checked. `total` is the
/// archive's size when known, for the progress line.
pub fn read(
    input: impl Read,
    total: Option<u64>,
    identity: Option<&Path>,
    out: Option<&Path>,
) -> anyhow::Result<Opened> {
    read_keyed(input, total, identity, None, out)
}

/// [`read`], and with a backup key, refuses an archive whose manifest is not signed with it.
pub fn read_keyed(
    input: impl Read,
    total: Option<u64>,
    identity: Option<&Path>,
    key: Option<&BackupKey>,
    out: Option<&Path>,
) -> anyhow::Result<Opened> {
    read_with(
        input,
        total,
        || identity.map(Identities::from_file).transpose(),
        key,
        out,
    )
}

/// A reader that hands what passes through it to the audit-chain walk.
struct Walking<'a, R> {
    inner: R,
    chain: Option<(&'a mut Chain, &'static str)>,
}

impl<R: Read> Read for Walking<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some((chain, part)) = &mut self.chain {
            chain.feed(part, &buf[..n]);
        }
        Ok(n)
    }
}

fn read_with(
    input: impl Read,
    total: Option<u64>,
    identities: impl FnOnce() -> anyhow::Result<Option<Identities>>,
    key: Option<&BackupKey>,
    out: Option<&Path>,
) -> anyhow::Result<Opened> {
    let counted = Counting {
        inner: input,
        progress: Progress::new("checking the archive", Unit::Bytes, total),
    };
    let mut buffered = BufReader::with_capacity(64 * 1024, counted);
    let head = buffered.fill_buf().context("reading the archive")?.to_vec();
    let encrypted = head.starts_with(AGE_MAGIC);
    let plain: Box<dyn Read> = if encrypted {
        let Some(ids) = identities()? else {
            bail!(
                "the archive is encrypted with age: give the identity file with --identity FILE \
                 (or FERUM_BACKUP_AGE_IDENTITY); nothing was changed"
            );
        };
        let dec = age::Decryptor::new_buffered(buffered)
            .map_err(|e| damaged(format!("its age header is unreadable ({e})")))?;
        match dec.decrypt(ids.0.iter().map(|i| i.as_ref() as &dyn age::Identity)) {
            Ok(r) => Box::new(r),
            Err(age::DecryptError::NoMatchingKeys) => bail!(
                "cannot decrypt: the identity does not match this archive's recipient; nothing was changed"
            ),
            Err(e) => return Err(damaged(format!("it cannot be decrypted ({e})"))),
        }
    } else if head.starts_with(GZIP_MAGIC) {
        Box::new(buffered)
    } else if head.is_empty() {
        return Err(damaged("it is empty"));
    } else {
        bail!(
            "this is not a ferum backup archive (neither gzip nor age-encrypted); nothing was changed"
        );
    };
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(plain));
    let mut seen: BTreeMap<String, (u64, String, u64)> = BTreeMap::new();
    let mut manifest: Option<Vec<u8>> = None;
    let mut mac: Option<Vec<u8>> = None;
    let mut chain = Chain::default();
    let mut data_key: Option<String> = None;
    let broken = |e: std::io::Error| damaged(format!("it is truncated or corrupt ({e})"));
    for entry in tar.entries().map_err(broken)? {
        let mut entry = entry.map_err(broken)?;
        let kind = entry.header().entry_type();
        let path = entry
            .path()
            .map_err(broken)?
            .to_str()
            .map(str::to_owned)
            .ok_or_else(|| damaged("an entry name is not UTF-8"))?;
        if kind.is_dir() {
            continue;
        }
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            return Err(damaged(format!("{path:?} is not a regular file")));
        }
        entry_place(&path)?;
        if seen.contains_key(&path)
            || (path == MANIFEST && manifest.is_some())
            || (path == MAC_PART && mac.is_some())
        {
            return Err(damaged(format!("{path:?} appears twice")));
        }
        if path == MAC_PART {
            let mut buf = Vec::new();
            (&mut entry)
                .take(1024)
                .read_to_end(&mut buf)
                .map_err(broken)?;
            mac = Some(buf);
            continue;
        }
        if path == MANIFEST || path == KEY_PART {
            let mut buf = Vec::new();
            (&mut entry)
                .take(16 * 1024 * 1024)
                .read_to_end(&mut buf)
                .map_err(broken)?;
            if path == MANIFEST {
                manifest = Some(buf);
                continue;
            }
            let mut h = Hashing::new(buf.as_slice());
            std::io::copy(&mut h, &mut std::io::sink()).map_err(broken)?;
            seen.insert(
                path.clone(),
                (h.size, hex(&h.hasher.finalize()), h.newlines),
            );
            data_key =
                Some(String::from_utf8(buf).map_err(|_| damaged("its key part is not text"))?);
            if let Some(dir) = out {
                write_part(
                    dir,
                    &path,
                    data_key.as_deref().unwrap_or_default().as_bytes(),
                )?;
            }
            continue;
        }
        let walk = Chain::part(&path).map(|part| (&mut chain, part));
        let mut h = Hashing::new(Walking {
            inner: &mut entry,
            chain: walk,
        });
        match out {
            Some(dir) => {
                let dest = dir.join(&path);
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let mut f = std::io::BufWriter::new(
                    std::fs::File::create(&dest)
                        .with_context(|| format!("cannot create {}", dest.display()))?,
                );
                std::io::copy(&mut h, &mut f).map_err(broken)?;
                f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            }
            None => {
                std::io::copy(&mut h, &mut std::io::sink()).map_err(broken)?;
            }
        }
        seen.insert(path, (h.size, hex(&h.hasher.finalize()), h.newlines));
    }
    // Read to the very end: the gzip checksum and age's last-chunk tag are checked there,
    // so a cut after the tar's end is noticed too.
    let mut rest = tar.into_inner();
    std::io::copy(&mut rest, &mut std::io::sink()).map_err(broken)?;
    let manifest = manifest.ok_or_else(|| damaged("it has no manifest (is it truncated?)"))?;
    let signature = match (key, &mac) {
        (Some(_), None) => bail!(
            "the archive's manifest is not signed, but FERUM_BACKUP_KEY is set: it was taken without \
             the key, or its signature was removed; refused; nothing was changed"
        ),
        (Some(k), Some(m)) if !k.signs(&manifest, m) => bail!(
            "the archive's manifest signature does not match FERUM_BACKUP_KEY: the archive was altered \
             after it was taken, or signed with another key; refused; nothing was changed"
        ),
        (Some(_), Some(_)) => Signature::Checked,
        (None, Some(_)) => Signature::NotChecked,
        (None, None) => Signature::Unsigned,
    };
    let manifest: Manifest = serde_json::from_slice(&manifest)
        .map_err(|e| damaged(format!("its manifest is unreadable ({e})")))?;
    if manifest.format != FORMAT {
        bail!(
            "the archive has format {}, which this ferum does not read (it reads format {FORMAT}); nothing was changed",
            manifest.format
        );
    }
    for part in &manifest.parts {
        match seen.get(&part.path) {
            None => return Err(damaged(format!("{} is missing", part.path))),
            Some((size, sha, _)) if *size != part.size || *sha != part.sha256 => {
                return Err(damaged(format!(
                    "the SHA-256 of {} does not match the manifest",
                    part.path
                )));
            }
            Some(_) => {}
        }
    }
    for path in seen.keys() {
        if !manifest.parts.iter().any(|p| &p.path == path) {
            return Err(damaged(format!("{path} is not in the manifest")));
        }
    }
    for (table, rows) in &manifest.tables {
        let lines = seen
            .get(&format!("tables/{table}.jsonl"))
            .map(|s| s.2)
            .ok_or_else(|| damaged(format!("the rows of {table} are missing")))?;
        if lines != *rows {
            return Err(damaged(format!(
                "{table} has {lines} rows where the manifest says {rows}"
            )));
        }
    }
    let files = seen.keys().filter(|p| p.starts_with("files/")).count() as u64;
    if files != manifest.files {
        return Err(damaged(format!(
            "it holds {files} files where the manifest says {}",
            manifest.files
        )));
    }
    // The checksums match: an audit chain that does not is an edit whose author recomputed
    // them. Refused here, before a restore touches the target.
    let audit_entries = chain.finish(&manifest.tables).map_err(|why| {
        anyhow::anyhow!(
            "the archive's audit chain does not verify: {why}; the archive was altered after it was \
             taken; refused; nothing was changed"
        )
    })?;
    Ok(Opened {
        manifest,
        encrypted,
        data_key,
        signature,
        audit_entries,
    })
}

fn write_part(dir: &Path, path: &str, data: &[u8]) -> anyhow::Result<()> {
    let dest: PathBuf = dir.join(path);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&dest, data)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT,
            ferum_version: "0.1.0".into(),
            created_at: "2026-03-02T09:00:00Z".into(),
            source_backend: "sqlite".into(),
            schema_version: 1,
            migrations: vec![],
            data_patches: vec![],
            tables: [("t".to_owned(), 2)].into_iter().collect(),
            files: 1,
            encrypted: false,
            parts: vec![],
        }
    }

    fn archive(recipient: Option<&age::x25519::Recipient>) -> Vec<u8> {
        let mut w = Writer::new(Vec::new(), recipient, 0, None).unwrap();
        let rows = b"{\"id\":1}\n{\"id\":2}\n";
        w.append("tables/t.jsonl", rows.len() as u64, &rows[..])
            .unwrap();
        w.append("files/a/b.bin", 3, &[0u8, 255, 7][..]).unwrap();
        w.finish(manifest()).unwrap().0
    }

    #[test]
    fn a_written_archive_reads_back_and_checks() {
        let bytes = archive(None);
        let dir = tempfile::tempdir().unwrap();
        let opened = read(bytes.as_slice(), None, None, Some(dir.path())).unwrap();
        assert_eq!(opened.manifest.parts.len(), 2);
        assert_eq!(
            std::fs::read(dir.path().join("files/a/b.bin")).unwrap(),
            vec![0u8, 255, 7]
        );
    }

    #[test]
    fn damage_anywhere_is_refused() {
        let bytes = archive(None);
        for cut in [bytes.len() - 1, bytes.len() - 9, bytes.len() / 2, 10] {
            let e = read(&bytes[..cut], None, None, None)
                .unwrap_err()
                .to_string();
            assert!(e.contains("damaged"), "cut at {cut}: {e}");
        }
        for at in (10..bytes.len()).step_by(7) {
            let mut b = bytes.clone();
            b[at] ^= 0x20;
            assert!(
                read(b.as_slice(), None, None, None).is_err(),
                "flip at {at}"
            );
        }
    }

    #[test]
    fn encrypted_archives_need_the_right_identity() {
        let id = age::x25519::Identity::generate();
        let bytes = archive(Some(&id.to_public()));
        let ids = || Ok(Some(Identities(vec![Box::new(id.clone())])));
        assert!(
            read_with(bytes.as_slice(), None, ids, None, None)
                .unwrap()
                .encrypted
        );
        let e = read(bytes.as_slice(), None, None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--identity"), "{e}");
        let other = || {
            Ok(Some(Identities(vec![Box::new(
                age::x25519::Identity::generate(),
            )])))
        };
        let e = read_with(bytes.as_slice(), None, other, None, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot decrypt: the identity does not match this archive's recipient"),
            "{e}"
        );
    }

    #[test]
    fn a_backup_key_signs_the_manifest_and_is_then_required() {
        let key = BackupKey::parse(&"a".repeat(32), "K").unwrap();
        let other = BackupKey::parse(&"b".repeat(40), "K").unwrap();
        assert!(BackupKey::parse(&"a".repeat(31), "K").is_err());
        assert_eq!(format!("{key:?}"), "BackupKey(<redacted>)");
        let signed = {
            let mut w = Writer::new(Vec::new(), None, 0, None).unwrap();
            let rows = b"{\"id\":1}\n{\"id\":2}\n";
            w.append("tables/t.jsonl", rows.len() as u64, &rows[..])
                .unwrap();
            w.append("files/a/b.bin", 3, &[0u8, 255, 7][..]).unwrap();
            w.finish_signed(manifest(), Some(&key)).unwrap().0
        };
        let open = |bytes: &[u8], k: Option<&BackupKey>| {
            read_with(bytes, None, || Ok(None), k, None).map(|o| o.signature)
        };
        assert_eq!(open(&signed, Some(&key)).unwrap(), Signature::Checked);
        assert_eq!(open(&signed, None).unwrap(), Signature::NotChecked);
        assert_eq!(open(&archive(None), None).unwrap(), Signature::Unsigned);
        let e = open(&signed, Some(&other)).unwrap_err().to_string();
        assert!(
            e.contains("signature does not match FERUM_BACKUP_KEY"),
            "{e}"
        );
        let e = open(&archive(None), Some(&key)).unwrap_err().to_string();
        assert!(e.contains("not signed, but FERUM_BACKUP_KEY is set"), "{e}");
        let json = br#"{"a":1}"#;
        assert!(key.signs(json, key.sign(json).as_bytes()));
        assert!(!key.signs(br#"{"a":2}"#, key.sign(json).as_bytes()));
        assert!(!key.signs(json, b"hmac-sha256:zz"));
        assert!(!key.signs(json, b""));
    }

    #[test]
    fn only_known_entry_names_are_accepted() {
        for ok in [
            "manifest.json",
            "keys/data.key",
            "tables/audit_log.jsonl",
            "files/a/b c.jpg",
        ] {
            assert!(entry_place(ok).is_ok(), "{ok}");
        }
        for bad in [
            "files/../x",
            "files/",
            "tables/A.jsonl",
            "tables/x.csv",
            "other",
            "/etc/passwd",
            "files//abs",
        ] {
            assert!(entry_place(bad).is_err(), "{bad}");
        }
    }

    /// Property tests: whatever the bytes, the reader answers with an error or with the very
    /// content that was written; it never panics.
    mod properties {
        use super::*;
        use proptest::prelude::*;
        use proptest::sample::Index;
        use std::sync::OnceLock;

        struct Sample {
            bytes: Vec<u8>,
            identity: Option<age::x25519::Identity>,
            manifest: Manifest,
        }

        /// A real archive, plain or encrypted, with an audit chain among its tables.
        fn sample(encrypted: bool) -> &'static Sample {
            static PLAIN: OnceLock<Sample> = OnceLock::new();
            static AGE: OnceLock<Sample> = OnceLock::new();
            (if encrypted { &AGE } else { &PLAIN }).get_or_init(|| {
                let identity = encrypted.then(age::x25519::Identity::generate);
                let recipient = identity.as_ref().map(|i| i.to_public());
                let mut w = Writer::new(Vec::new(), recipient.as_ref(), 0, None).unwrap();
                let content = crate::domain::audit::EntryContent {
                    at: "2026-03-02T09:00:00.000000Z",
                    user_id: Some(1),
                    ip: "127.0.0.1",
                    action: "login",
                    entity: "user",
                    entity_id: Some(1),
                    before_json: None,
                    after_json: None,
                };
                let hash = crate::domain::audit::entry_hash("", &content);
                let log = format!(
                    "{}\n",
                    serde_json::json!({"id": 1, "at": content.at, "user_id": 1, "ip": content.ip,
                        "action": content.action, "entity": content.entity, "entity_id": 1,
                        "before_json": null, "after_json": null, "prev_hash": "", "hash": hash})
                );
                let head = format!("{{\"id\":1,\"last_id\":1,\"last_hash\":\"{hash}\"}}\n");
                w.append(
                    crate::backup::chain::HEAD,
                    head.len() as u64,
                    head.as_bytes(),
                )
                .unwrap();
                w.append(crate::backup::chain::LOG, log.len() as u64, log.as_bytes())
                    .unwrap();
                let rows = b"{\"id\":1}\n{\"id\":2}\n";
                w.append("tables/t.jsonl", rows.len() as u64, &rows[..])
                    .unwrap();
                w.append("files/a/b.bin", 3, &[0u8, 255, 7][..]).unwrap();
                let mut m = manifest();
                m.tables.insert("audit_head".into(), 1);
                m.tables.insert("audit_log".into(), 1);
                m.encrypted = encrypted;
                let (bytes, manifest) = w.finish(m).unwrap();
                let s = Sample {
                    bytes,
                    identity,
                    manifest,
                };
                let opened = open(&s, &s.bytes).expect("the sample reads back");
                assert_eq!(opened.audit_entries, 1);
                s
            })
        }

        fn open(s: &Sample, bytes: &[u8]) -> anyhow::Result<Opened> {
            let ids = || {
                Ok(s.identity
                    .clone()
                    .map(|i| Identities(vec![Box::new(i) as Box<dyn age::Identity>])))
            };
            read_with(bytes, None, ids, None, None)
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            #[test]
            fn arbitrary_bytes_are_refused(
                head in 0usize..3,
                bytes in proptest::collection::vec(any::<u8>(), 0..4096),
                encrypted in any::<bool>(),
            ) {
                // Also behind the magic numbers, so the gzip and age readers see them.
                let mut input = match head {
                    0 => Vec::new(),
                    1 => GZIP_MAGIC.to_vec(),
                    _ => b"age-encryption.org/v1\n".to_vec(),
                };
                input.extend(bytes);
                prop_assert!(open(sample(encrypted), &input).is_err());
            }

            #[test]
            fn truncated_archives_are_refused(cut in any::<Index>(), encrypted in any::<bool>()) {
                let s = sample(encrypted);
                let cut = cut.index(s.bytes.len());
                prop_assert!(open(s, &s.bytes[..cut]).is_err(), "cut at {}", cut);
            }

            #[test]
            fn flipped_bits_are_refused_or_change_nothing(
                at in any::<Index>(),
                bit in 0u8..8,
                encrypted in any::<bool>(),
            ) {
                let s = sample(encrypted);
                let mut bytes = s.bytes.clone();
                let at = at.index(bytes.len());
                bytes[at] ^= 1 << bit;
                // A few bits change nothing a reader sees (gzip's time stamp and text flag, the
                // unused bits after the last deflate code); accepted, they must yield exactly
                // what was written: every part matched the manifest's SHA-256.
                if let Ok(o) = open(s, &bytes) {
                    prop_assert!(!encrypted, "an encrypted archive accepted a flip at {}", at);
                    prop_assert_eq!(&o.manifest, &s.manifest, "flip at {}", at);
                    prop_assert_eq!(o.audit_entries, 1);
                }
            }

            #[test]
            fn arbitrary_audit_rows_never_pass_the_chain(
                rows in proptest::collection::vec(any::<u8>(), 1..2048),
                chunk in 1usize..64,
            ) {
                let mut chain = Chain::default();
                for piece in rows.chunks(chunk) {
                    chain.feed(crate::backup::chain::LOG, piece);
                }
                prop_assert!(chain.finish(&BTreeMap::new()).is_err());
            }
        }
    }
}
