//! Backups under attack and accident: a run killed half-way, an archive edited by someone who
//! recomputed its checksums, a backup key that signs the manifest, and a backup history that
//! cannot be read.

use crate::backup::{Site, ferum, populate, restore};
use crate::support::*;
use ferum::backup::archive::{BackupKey, Signature};
use ferum::backup::target::Target;
use ferum::backup::{self, RestoreOptions};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
fn set_mode(p: &Path, m: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

/// Every path below `dir` (the folder itself left out), depth first.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        out.push(p.clone());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&p));
        }
    }
    out
}

/// Leftovers of a backup run: temporary folders and partial archives, anywhere below `dir`.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(".ferum-backup-")
                || (name.starts_with(".ferum-") && name.ends_with(".partial"))
        })
        .collect()
}

/// Checks what a backup with a recipient has written so far, at any moment of the run: no
/// table dump in the target folder, every temporary thing readable by its owner only, and a
/// partial archive in the target only as age ciphertext. `planted` are left alone. Returns
/// whether table dumps were seen staged (outside the target).
#[cfg(unix)]
fn nothing_readable_by_others(site: &Site, planted: &[PathBuf]) -> bool {
    let target = site.backups();
    let mut staged = false;
    for p in walk(site.dir.path()) {
        if planted.iter().any(|l| p.starts_with(l)) || p.starts_with(site.files()) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue; // removed meanwhile
        };
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let in_target = p.starts_with(&target);
        let temporary = p
            .strip_prefix(site.dir.path())
            .unwrap()
            .components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with(".ferum-"));
        if name.ends_with(".jsonl") {
            assert!(
                !in_target,
                "a clear-text table dump in the target folder: {p:?}"
            );
            staged = true;
        }
        if temporary {
            use std::os::unix::fs::PermissionsExt;
            let m = meta.permissions().mode() & 0o777;
            assert_eq!(m & 0o077, 0, "{p:?} is readable by others (mode {m:o})");
        }
        if in_target && meta.is_file() && meta.len() >= 19 && !name.ends_with(".lock") {
            let head = std::fs::read(&p).unwrap_or_default();
            assert!(
                head.is_empty() || head.starts_with(b"age-encryption.org/"),
                "{p:?} in the target folder is not age ciphertext"
            );
        }
    }
    staged
}

fn check_output(app: &TestApp, site: &Site) -> String {
    let out = ferum(&app.url, site.dir.path(), &app.data_key, &["check"])
        .current_dir(site.dir.path())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[cfg(unix)]
both! {
    async fn a_killed_backup_leaves_nothing_readable_and_the_next_one_cleans_up(app) {
        let site = populate(&app).await;
        let target = site.backups();
        std::fs::create_dir_all(&target).unwrap();
        set_mode(&target, 0o755);
        // What a killed run of an earlier ferum left in the target folder: a clear-text dump
        // and a partial archive, both 0644.
        let old_staging = target.join(".ferum-backup-Ab12Cd");
        std::fs::create_dir_all(&old_staging).unwrap();
        set_mode(&old_staging, 0o755);
        std::fs::write(old_staging.join("users.jsonl"), "{\"email\":\"boss@example.ru\",\"password_hash\":\"$argon2id$…\"}\n").unwrap();
        set_mode(&old_staging.join("users.jsonl"), 0o644);
        let old_partial = target.join(".ferum-Xy34Zw.partial");
        std::fs::write(&old_partial, b"\x1f\x8b\x08\x00 half an archive").unwrap();
        set_mode(&old_partial, 0o644);
        let planted = vec![old_staging.clone(), old_partial.clone()];

        // `ferum check` reports them.
        let report = check_output(&app, &site);
        let line = report.lines().find(|l| l.contains("interrupted backup")).unwrap_or_else(|| panic!("no leftovers reported:\n{report}"));
        assert!(line.starts_with("FAIL"), "{line}");
        assert!(line.contains(".ferum-backup-Ab12Cd") && line.contains(".ferum-Xy34Zw.partial"), "{line}");

        // A backup with a recipient, killed with SIGKILL once it has staged table dumps. On
        // PostgreSQL a lock on `users` holds the dump half-way, so the kill lands mid-dump.
        let id = age::x25519::Identity::generate();
        let recipient = id.to_public().to_string();
        let lock = match app.db.backend() {
            ferum::store::Backend::Postgres => {
                let mut tx = app.db.pool().begin().await.unwrap();
                sqlx::query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE").execute(&mut *tx).await.unwrap();
                Some(tx)
            }
            ferum::store::Backend::Sqlite => None,
        };
        let mut child = ferum(&app.url, site.dir.path(), &app.data_key, &["backup", "--encrypt-to", &recipient])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let mut staged = false;
        loop {
            staged |= nothing_readable_by_others(&site, &planted);
            if staged || child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the backup neither staged nor ended");
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        if let Some(tx) = lock {
            tx.rollback().await.unwrap();
            assert!(staged && !status.success(), "the run was killed mid-dump");
        }
        nothing_readable_by_others(&site, &planted);
        // The run removed the old leftovers before it staged anything.
        for p in &planted {
            assert!(!p.exists(), "{p:?} survived a backup run");
        }
        let killed = leftovers(site.dir.path());
        if staged {
            assert!(!killed.is_empty(), "a killed run leaves its private folder behind");
            for p in &killed {
                assert!(!p.starts_with(&target), "{p:?}: the killed run staged in the target folder");
            }
        }

        // `ferum check` reports what the killed run left.
        let report = check_output(&app, &site);
        let reported: Vec<&str> = report.lines().filter(|l| l.contains("interrupted backup")).collect();
        assert_eq!(reported.is_empty(), killed.is_empty(), "{report}");
        for p in &killed {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            assert!(reported.iter().any(|l| l.starts_with("FAIL") && l.contains(&name)), "{name} not reported:\n{report}");
        }

        // The next backup removes them all and leaves only the archive.
        let out = ferum(&app.url, site.dir.path(), &app.data_key, &["backup", "--encrypt-to", &recipient]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let archive = PathBuf::from(String::from_utf8_lossy(&out.stdout).lines().last().unwrap());
        assert_eq!(leftovers(site.dir.path()), Vec::<PathBuf>::new(), "leftovers survived the next backup");
        assert_eq!(mode(&archive) & 0o077, 0, "the archive is readable by others");
        assert!(std::fs::read(&archive).unwrap().starts_with(b"age-encryption.org/"));
        let report = check_output(&app, &site);
        assert!(!report.contains("interrupted backup"), "{report}");
    }
}

/// Unpacks `archive`, lets `edit` change the first row of `table`, and packs it again with a
/// manifest whose sizes and SHA-256 match the edit (what someone who knows the format does),
/// signed with `sign` if given, as `name` next to it.
fn tamper(
    archive: &str,
    table: &str,
    edit: impl Fn(&mut Value),
    sign: Option<&BackupKey>,
    name: &str,
) -> PathBuf {
    let unpacked = tempfile::tempdir().unwrap();
    let opened = backup::archive::read(
        std::fs::File::open(archive).unwrap(),
        None,
        None,
        Some(unpacked.path()),
    )
    .unwrap();
    let path = unpacked.path().join(format!("tables/{table}.jsonl"));
    let mut rows: Vec<Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    edit(&mut rows[0]);
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&path, text).unwrap();
    let out = Path::new(archive).with_file_name(name);
    let mut w =
        backup::archive::Writer::new(std::fs::File::create(&out).unwrap(), None, 0, None).unwrap();
    for part in &opened.manifest.parts {
        w.append_file(&part.path, &unpacked.path().join(&part.path))
            .unwrap();
    }
    w.finish_signed(opened.manifest.clone(), sign).unwrap();
    out
}

/// Rows held by the target database (none if it was never created).
async fn target_rows(target: &EmptyTarget) -> Vec<(String, i64)> {
    if let Some(p) = target.url.sqlite_path()
        && !p.exists()
    {
        return Vec::new();
    }
    let db = ferum::store::Db::connect(&target.url, 1).await.unwrap();
    let held = backup::dump::rows_held(&db).await.unwrap();
    db.close().await;
    held
}

both! {
    async fn a_tampered_archive_with_recomputed_checksums_is_refused_before_the_target_is_touched(app) {
        let site = populate(&app).await;
        let good = backup::backup(&app.db, &site.config(), start_time()).await.unwrap().location;
        // An audit entry made to say something else; checksums and row counts all match.
        let tampered = tamper(&good, "audit_log", |row| row["ip"] = json!("10.6.6.6"), None, "tampered.tar.gz");
        let tampered = tampered.display().to_string();

        let e = format!("{:#}", backup::verify(&tampered, None, None).await.unwrap_err());
        assert!(e.contains("audit chain") && e.contains("entry 1 was changed"), "{e}");

        let target = EmptyTarget::like(&app.url).await;
        std::fs::write(target.dir.path().join("data.key"), &app.data_key).unwrap();
        let e = format!("{:#}", restore(&tampered, &target.url, &target.data_dir(), &target.files_dir(), &RestoreOptions::default()).await.unwrap_err());
        assert!(e.contains("audit chain") && e.contains("nothing was changed"), "{e}");
        assert_eq!(target_rows(&target).await, Vec::new(), "the target was loaded");
        assert!(!target.files_dir().exists(), "the files folder was touched");

        // The command line says the same and exits 1.
        let out = ferum(&target.url, target.dir.path(), &app.data_key, &["backup", "verify", &tampered]).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("audit chain"), "{}", String::from_utf8_lossy(&out.stderr));
        let out = ferum(&target.url, target.dir.path(), &app.data_key, &["restore", &tampered]).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("audit chain") && err.contains("nothing was changed"), "{err}");
        assert_eq!(target_rows(&target).await, Vec::new(), "the target was loaded");
        assert!(!target.files_dir().exists(), "the files folder was touched");

        // The untouched archive still restores there.
        restore(&good, &target.url, &target.data_dir(), &target.files_dir(), &RestoreOptions::default()).await.unwrap();
    }

    async fn with_a_backup_key_only_signed_untouched_archives_restore(app) {
        let site = populate(&app).await;
        let secret = "k3y-".repeat(10);
        let key = BackupKey::parse(&secret, "test").unwrap();
        let other = BackupKey::parse(&"0th3r-".repeat(8), "test").unwrap();
        assert!(BackupKey::parse("short", "FERUM_BACKUP_KEY").unwrap_err().to_string().contains("FERUM_BACKUP_KEY must be at least 32 characters"));
        let mut cfg = site.config();
        cfg.key = Some(key.clone());
        let signed = backup::backup(&app.db, &cfg, start_time()).await.unwrap().location;
        let mut cfg = site.config();
        cfg.target = Target::Local(site.backups().join("unsigned"));
        let unsigned = backup::backup(&app.db, &cfg, start_time() + chrono::Duration::seconds(1)).await.unwrap().location;
        // A customer renamed, checksums recomputed: the audit chain does not cover customers.
        let rename = |row: &mut Value| row["name"] = json!("ООО Подмена");
        let forged = tamper(&signed, "customers", rename, None, "forged.tar.gz").display().to_string();
        let resigned = tamper(&signed, "customers", rename, Some(&other), "resigned.tar.gz").display().to_string();
        // Without the key such an edit passes: that is what the key is for.
        backup::verify(&forged, None, None).await.unwrap();
        let v = backup::verify(&signed, None, None).await.unwrap();
        assert_eq!(v.signature, Signature::NotChecked);
        let v = backup::verify(&signed, None, Some(&key)).await.unwrap();
        assert_eq!(v.signature, Signature::Checked);
        assert!(v.describe(&signed).iter().any(|l| l == "manifest signature: matches FERUM_BACKUP_KEY"), "{:?}", v.describe(&signed));

        let with_key = RestoreOptions { key: Some(key.clone()), ..RestoreOptions::default() };
        let target = EmptyTarget::like(&app.url).await;
        std::fs::write(target.dir.path().join("data.key"), &app.data_key).unwrap();
        for (what, archive, expected) in [
            ("unsigned", &unsigned, "the archive's manifest is not signed, but FERUM_BACKUP_KEY is set"),
            ("edited, signature dropped", &forged, "the archive's manifest is not signed, but FERUM_BACKUP_KEY is set"),
            ("edited, signed with another key", &resigned, "the archive's manifest signature does not match FERUM_BACKUP_KEY"),
        ] {
            let e = format!("{:#}", backup::verify(archive, None, Some(&key)).await.unwrap_err());
            assert!(e.contains(expected), "{what}: {e}");
            let e = format!("{:#}", restore(archive, &target.url, &target.data_dir(), &target.files_dir(), &with_key).await.unwrap_err());
            assert!(e.contains(expected) && e.contains("nothing was changed"), "{what}: {e}");
            assert_eq!(target_rows(&target).await, Vec::new(), "{what}: the target was loaded");
            assert!(!target.files_dir().exists(), "{what}: the files folder was touched");
        }
        // The command line reads the key from FERUM_BACKUP_KEY.
        let verify = |archive: &str| ferum(&target.url, target.dir.path(), "", &["backup", "verify", archive]).env("FERUM_BACKUP_KEY", &secret).output().unwrap();
        let out = verify(&unsigned);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("not signed, but FERUM_BACKUP_KEY is set"), "{}", String::from_utf8_lossy(&out.stderr));
        let out = verify(&signed);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("manifest signature: matches FERUM_BACKUP_KEY"));
        let out = ferum(&target.url, target.dir.path(), &app.data_key, &["restore", &resigned]).env("FERUM_BACKUP_KEY", &secret).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(target_rows(&target).await, Vec::new(), "the target was loaded");

        // The untouched signed archive restores.
        let r = restore(&signed, &target.url, &target.data_dir(), &target.files_dir(), &with_key).await.unwrap();
        assert_eq!(r.manifest.tables["customers"], 2);
    }

    async fn a_failure_to_read_the_backup_history_is_an_error_not_never(app) {
        let site = populate(&app).await;
        let line = |report: &str| report.lines().find(|l| l.contains("last backup")).map(str::to_owned).unwrap_or_else(|| panic!("no last backup line:\n{report}"));
        assert!(line(&check_output(&app, &site)).starts_with("ok   last backup   never"));
        backup::backup(&app.db, &site.config(), start_time()).await.unwrap();
        assert_eq!(backup::last_success(&app.db).await.unwrap(), Some(start_time()));
        assert_eq!(line(&check_output(&app, &site)), "ok   last backup   2026-03-02T09:00:00Z");
        // The table it reads is gone: an error, not "never backed up".
        sqlx::query("ALTER TABLE settings RENAME TO settings_elsewhere").execute(app.db.pool()).await.unwrap();
        let e = format!("{:#}", backup::last_success(&app.db).await.unwrap_err());
        assert!(e.contains("cannot read the time of the last backup"), "{e}");
        let l = line(&check_output(&app, &site));
        assert!(l.starts_with("FAIL last backup   could not read the backup history"), "{l}");
        sqlx::query("ALTER TABLE settings_elsewhere RENAME TO settings").execute(app.db.pool()).await.unwrap();
        // A recorded value that is not a time is an error too.
        sqlx::query("UPDATE settings SET value = 'yesterday' WHERE name = 'backup_last_success_at'").execute(app.db.pool()).await.unwrap();
        let e = format!("{:#}", backup::last_success(&app.db).await.unwrap_err());
        assert!(e.contains("\"yesterday\", is not a time"), "{e}");
    }
}
