//! Backups that are proven to restore: round trips on each backend and across, every refusal
//! leaving the target as it was, the command line, S3 (against a local fake that checks what
//! it is sent) and age encryption.

use crate::support::*;
use axum::http::{Method, StatusCode};
use ferum::backup::{self, BackupConfig, RestoreOptions, target::Target};
use ferum::domain::access::Role;
use ferum::domain::backup::Retention;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A populated site: records of every kind and a files folder.
pub(crate) struct Site {
    pub(crate) w: World,
    client: TestUser,
    request: i64,
    report: i64,
    /// Data folder (`data.key`), stored files in `files/` and backups in `backups/`.
    pub(crate) dir: tempfile::TempDir,
}

impl Site {
    pub(crate) fn files(&self) -> PathBuf {
        self.dir.path().join("files")
    }

    pub(crate) fn backups(&self) -> PathBuf {
        self.dir.path().join("backups")
    }

    pub(crate) fn config(&self) -> BackupConfig {
        BackupConfig {
            target: Target::Local(self.backups()),
            at: None,
            recipient: None,
            identity: None,
            key: None,
            data_dir: self.dir.path().to_path_buf(),
            files_dir: self.files(),
            retention: Retention::default(),
        }
    }
}

fn binary_file() -> Vec<u8> {
    // Every byte value, then bytes that do not repeat a short pattern.
    let mut v: Vec<u8> = (0..=255u8).collect();
    let mut x: u32 = 2_463_534_242;
    for _ in 0..100_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.push(x as u8);
    }
    v
}

pub(crate) async fn populate(app: &TestApp) -> Site {
    let w = app.world().await;
    let started = app.started_request(&w).await;
    let request = started["id"].as_i64().unwrap();
    app.post(
        &format!("/api/v1/requests/{request}/comments"),
        &w.engineer,
        json!({"body": "Заменил датчик «ИП-212», ёмкость в норме"}),
    )
    .await
    .assert(StatusCode::CREATED);
    let report = app.report(&w.engineer, request).await["id"]
        .as_i64()
        .unwrap();
    let client = app.user(&[Role::Client], Some(w.customer)).await;
    app.request(&client, w.object, "emergency").await;
    let other = app.customer(&w.admin, "ИП Ёлкин", next_inn()).await;
    app.object(&w.admin, other, "Офис на Тверской").await;
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir_all(files.join("photos/2026")).unwrap();
    std::fs::create_dir_all(files.join("Документы")).unwrap();
    std::fs::write(files.join("readme.txt"), "stored files\n").unwrap();
    std::fs::write(
        files.join("photos/2026/PRJ-1_SR-2026-00001_photo-1.jpg"),
        binary_file(),
    )
    .unwrap();
    std::fs::write(files.join("Документы/акт №1.pdf"), b"%PDF-1.4 \x00\xff").unwrap();
    std::fs::write(files.join("empty.bin"), b"").unwrap();
    std::fs::write(dir.path().join("data.key"), &app.data_key).unwrap();
    Site {
        w,
        client,
        request,
        report,
        dir,
    }
}

/// Every answer an administrator gets for the site's records.
async fn admin_answers(app: &TestApp, site: &Site) -> Vec<(String, Value)> {
    let w = &site.w;
    let paths = [
        "/api/v1/me".to_owned(),
        "/api/v1/users".to_owned(),
        format!("/api/v1/users/{}", site.client.id),
        "/api/v1/customers".to_owned(),
        format!("/api/v1/customers/{}", w.customer),
        "/api/v1/objects".to_owned(),
        format!("/api/v1/objects/{}", w.object),
        "/api/v1/projects".to_owned(),
        format!("/api/v1/projects/{}", w.project),
        format!("/api/v1/projects/{}/objects", w.project),
        "/api/v1/requests".to_owned(),
        format!("/api/v1/requests/{}", site.request),
        format!("/api/v1/requests/{}/comments", site.request),
        format!("/api/v1/requests/{}/history", site.request),
        "/api/v1/reports".to_owned(),
        format!("/api/v1/reports/{}", site.report),
        "/api/v1/audit".to_owned(),
    ];
    answers(app, &w.admin.token, &paths).await
}

/// What the engineer and the client see.
async fn staff_paths(site: &Site) -> Vec<String> {
    vec![
        "/api/v1/customers".to_owned(),
        "/api/v1/objects".to_owned(),
        "/api/v1/requests".to_owned(),
        format!("/api/v1/requests/{}", site.request),
        format!("/api/v1/requests/{}/comments", site.request),
        "/api/v1/reports".to_owned(),
    ]
}

async fn answers(app: &TestApp, token: &str, paths: &[String]) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for p in paths {
        let r = app.call(Method::GET, p, Some(token), None).await;
        assert_eq!(r.status, StatusCode::OK, "{p}: {}", r.body);
        out.push((p.clone(), r.body));
    }
    out
}

/// Relative path → contents of every file below `dir`.
pub(crate) fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Rows per table of a database, straight from its catalogue.
pub(crate) async fn table_counts(app: &TestApp) -> BTreeMap<String, i64> {
    let mut conn = app.db.pool().acquire().await.unwrap();
    let tables = backup::dump::catalogue(&mut conn, app.db.backend())
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for t in tables {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{}\"", t.name))
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        out.insert(t.name, n);
    }
    out
}

pub(crate) async fn restore(
    archive: &str,
    url: &ferum::store::DatabaseUrl,
    data_dir: &Path,
    files_dir: &Path,
    opts: &RestoreOptions,
) -> anyhow::Result<backup::Restored> {
    backup::restore(url, data_dir, files_dir, archive, opts, start_time()).await
}

/// Restores `archive` into `target` and checks the restored site answers as the source did.
async fn check_restored(
    archive: &str,
    target: EmptyTarget,
    source: &TestApp,
    site: &Site,
    admin_before: &[(String, Value)],
    engineer_before: &[(String, Value)],
) {
    std::fs::write(target.dir.path().join("data.key"), &source.data_key).unwrap();
    let files_dir = target.files_dir();
    let r = restore(
        archive,
        &target.url,
        &target.data_dir(),
        &files_dir,
        &RestoreOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(r.rows, r.manifest.rows());
    assert!(r.audit_entries > 0);
    assert!(r.key_written.is_none(), "a key was already configured");
    assert_eq!(tree(&files_dir), tree(&site.files()), "files differ");
    let (restored, _dir) = target.into_app(&source.data_key).await;
    assert_eq!(
        ferum::store::audit::verify(&restored.db)
            .await
            .unwrap()
            .unwrap(),
        r.audit_entries
    );
    // The same token works: users, sessions and keys came back.
    let admin_after = admin_answers(&restored, site).await;
    for (before, after) in admin_before.iter().zip(&admin_after) {
        assert_eq!(before, after, "answers differ after restore");
    }
    // Signing in with the password works, and the engineer sees what they saw.
    let token = restored.sign_in(&site.w.engineer.email).await;
    assert_eq!(
        answers(&restored, &token, &staff_paths(site).await).await,
        engineer_before
    );
    // New records get fresh ids and the next numbers.
    let max_id: i64 = sqlx::query_scalar("SELECT MAX(id) FROM service_requests")
        .fetch_one(restored.db.pool())
        .await
        .unwrap();
    let count = restored.count("service_requests").await;
    let created = restored
        .request(&site.w.admin, site.w.object, "maintenance")
        .await;
    assert_eq!(created["id"].as_i64().unwrap(), max_id + 1);
    assert_eq!(
        created["number"].as_str().unwrap(),
        format!("SR-2026-{:05}", count + 1)
    );
    restored
        .customer(&site.w.admin, "ООО Новый", next_inn())
        .await;
    let chained = ferum::store::audit::verify(&restored.db)
        .await
        .unwrap()
        .unwrap();
    assert!(
        chained >= r.audit_entries + 2,
        "the chain goes on after the restore"
    );
}

both! {
    async fn round_trips_give_the_same_answers_and_files_on_each_backend_and_across(app) {
        let site = populate(&app).await;
        let admin_before = admin_answers(&app, &site).await;
        let engineer_before = answers(&app, &site.w.engineer.token, &staff_paths(&site).await).await;
        let report = backup::backup(&app.db, &site.config(), start_time()).await.unwrap();
        assert!(report.location.ends_with("ferum-20260302T090000Z.tar.gz"), "{}", report.location);
        assert_eq!(report.manifest.files, 4);
        assert_eq!(report.manifest.schema_version, ferum::store::migrate::latest_version());
        assert_eq!(report.manifest.tables["service_requests"], 2);
        assert!(report.manifest.tables.contains_key("schema_migrations"));
        assert!(!report.manifest.encrypted && !report.manifest.includes_key());
        assert_eq!(backup::last_success(&app.db).await.unwrap(), Some(start_time()));
        // Backing up changed nothing the API shows.
        assert_eq!(admin_answers(&app, &site).await, admin_before);

        // Same kind.
        check_restored(&report.location, EmptyTarget::like(&app.url).await, &app, &site, &admin_before, &engineer_before).await;
        // The other kind: SQLite → PostgreSQL and PostgreSQL → SQLite.
        let other = match app.db.backend() {
            ferum::store::Backend::Sqlite => EmptyTarget::postgres().await,
            ferum::store::Backend::Postgres => Some(EmptyTarget::sqlite()),
        };
        if let Some(other) = other {
            check_restored(&report.location, other, &app, &site, &admin_before, &engineer_before).await;
        }
    }

    async fn damaged_foreign_or_newer_archives_and_wrong_keys_change_nothing(app) {
        let site = populate(&app).await;
        let good = backup::backup(&app.db, &site.config(), start_time()).await.unwrap().location;
        let bytes = std::fs::read(&good).unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let truncated = scratch.path().join("truncated.tar.gz");
        std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
        let flipped = scratch.path().join("flipped.tar.gz");
        let mut f = bytes.clone();
        f[bytes.len() / 2] ^= 0x01;
        std::fs::write(&flipped, &f).unwrap();
        // An archive encrypted to someone else's key.
        let theirs = age::x25519::Identity::generate();
        let mine = age::x25519::Identity::generate();
        // Each in a folder of its own: retention keeps one archive a day per folder.
        let mut cfg = site.config();
        cfg.target = Target::Local(site.backups().join("foreign"));
        cfg.recipient = Some(theirs.to_public());
        let foreign = backup::backup(&app.db, &cfg, start_time() + chrono::Duration::seconds(1)).await.unwrap().location;
        let my_identity = scratch.path().join("mine.txt");
        std::fs::write(&my_identity, format!("# mine\n{}\n", secret(&mine))).unwrap();
        // An archive from a newer schema.
        sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future', '2030-01-01T00:00:00.000000Z')")
            .execute(app.db.pool()).await.unwrap();
        let mut cfg = site.config();
        cfg.target = Target::Local(site.backups().join("newer"));
        let newer = backup::backup(&app.db, &cfg, start_time() + chrono::Duration::seconds(2)).await.unwrap().location;
        sqlx::query("DELETE FROM schema_migrations WHERE version = 9999").execute(app.db.pool()).await.unwrap();
        // A well-formed archive whose rows break a foreign key: the load fails halfway.
        let unpacked = tempfile::tempdir().unwrap();
        let opened = backup::archive::read(std::fs::File::open(&good).unwrap(), None, None, Some(unpacked.path())).unwrap();
        let requests = unpacked.path().join("tables/service_requests.jsonl");
        let mut rows: Vec<Value> = std::fs::read_to_string(&requests).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        rows[1]["object_id"] = json!(999_999);
        let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
        std::fs::write(&requests, text).unwrap();
        let orphan = scratch.path().join("orphan.tar.gz");
        let mut w = backup::archive::Writer::new(std::fs::File::create(&orphan).unwrap(), None, 0, None).unwrap();
        for part in &opened.manifest.parts {
            w.append_file(&part.path, &unpacked.path().join(&part.path)).unwrap();
        }
        w.finish(opened.manifest.clone()).unwrap();
        backup::verify(&orphan.display().to_string(), None, None).await.unwrap();
        // A data folder whose key is another site's.
        let wrong_key_dir = tempfile::tempdir().unwrap();
        std::fs::write(wrong_key_dir.path().join("data.key"), ferum::crypto::DataKeys::generate().to_config_string()).unwrap();

        let counts = table_counts(&app).await;
        let answers_before = admin_answers(&app, &site).await;
        let files_before = tree(&site.files());
        let folder_before: Vec<String> = std::fs::read_dir(site.dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        let newer_message = format!(
            "archive schema 9999 is newer than this ferum ({})",
            ferum::store::migrate::latest_version()
        );
        let replace = RestoreOptions { replace: true, identity: None, key: None };
        let cases: Vec<(&str, String, RestoreOptions, &Path, &str)> = vec![
            ("truncated", truncated.display().to_string(), replace.clone(), site.dir.path(), "the archive is damaged"),
            ("flipped byte", flipped.display().to_string(), replace.clone(), site.dir.path(), "the archive is damaged"),
            ("no identity", foreign.clone(), replace.clone(), site.dir.path(), "--identity"),
            ("wrong identity", foreign.clone(), RestoreOptions { replace: true, identity: Some(my_identity.clone()), key: None }, site.dir.path(), "cannot decrypt: the identity does not match this archive's recipient"),
            ("newer schema", newer.clone(), replace.clone(), site.dir.path(), &newer_message),
            ("wrong data key", good.clone(), replace.clone(), wrong_key_dir.path(), "the personal-data key here does not match the archive's; set FERUM_DATA_KEY to the key of the site the backup came from"),
            ("rows that break a foreign key", orphan.display().to_string(), replace.clone(), site.dir.path(), "the restore failed and was rolled back"),
            ("not empty", good.clone(), RestoreOptions::default(), site.dir.path(), "is not empty"),
        ];
        for (what, archive, opts, data_dir, expected) in cases {
            let err = format!("{:#}", restore(&archive, &app.url, data_dir, &site.files(), &opts).await.unwrap_err());
            assert!(err.contains(expected), "{what}: {err}");
            assert!(err.contains("nothing was changed"), "{what}: {err}");
            assert_eq!(table_counts(&app).await, counts, "{what} changed the database");
            assert_eq!(admin_answers(&app, &site).await, answers_before, "{what} changed the database");
            assert_eq!(tree(&site.files()), files_before, "{what} changed the files");
            let folder: Vec<String> = std::fs::read_dir(site.dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
            assert_eq!(folder, folder_before, "{what} left something behind");
        }
        // verify refuses the same archives and accepts the good one.
        backup::verify(&good, None, None).await.unwrap();
        for bad in [&truncated, &flipped] {
            let e = backup::verify(&bad.display().to_string(), None, None).await.unwrap_err().to_string();
            assert!(e.contains("damaged"), "{e}");
        }
        let e = backup::verify(&newer, None, None).await.unwrap_err().to_string();
        assert!(e.contains("is newer than this ferum"), "{e}");
    }

    async fn a_database_with_data_is_replaced_only_when_asked(app) {
        let site = populate(&app).await;
        let before = admin_answers(&app, &site).await;
        let archive = backup::backup(&app.db, &site.config(), start_time()).await.unwrap().location;
        // Changes after the backup: a customer and a file.
        app.customer(&site.w.admin, "ООО После бэкапа", next_inn()).await;
        std::fs::write(site.files().join("later.txt"), "later").unwrap();
        let err = restore(&archive, &app.url, site.dir.path(), &site.files(), &RestoreOptions::default()).await.unwrap_err().to_string();
        assert!(err.contains("the files folder") && err.contains("--replace would overwrite it"), "{err}");
        // With an empty files folder, the database still refuses.
        let empty_files = site.dir.path().join("no-files");
        let err = restore(&archive, &app.url, site.dir.path(), &empty_files, &RestoreOptions::default()).await.unwrap_err().to_string();
        assert!(err.contains("is not empty") && err.contains("customers: 3") && err.contains("--replace would overwrite it"), "{err}");
        assert!(!empty_files.exists());
        // --replace puts back the state of the backup, database and files.
        let r = restore(&archive, &app.url, site.dir.path(), &site.files(), &RestoreOptions { replace: true, identity: None, key: None }).await.unwrap();
        assert_eq!(r.manifest.tables["customers"], 2);
        assert!(!site.files().join("later.txt").exists());
        assert_eq!(tree(&site.files()).len(), 4);
        // A fresh app over the replaced database answers as before the change.
        let (url, data_key) = (app.url.clone(), app.data_key.clone());
        let reopened = ferum::store::Db::connect(&url, 2).await.unwrap();
        ferum::store::pii::startup(&reopened, &ferum::crypto::DataKeys::parse(&data_key).unwrap()).await.unwrap();
        reopened.close().await;
        assert_eq!(admin_answers(&app, &site).await, before);
    }

    async fn encrypted_archives_round_trip_and_carry_the_data_key(app) {
        let site = populate(&app).await;
        let before = admin_answers(&app, &site).await;
        let id = age::x25519::Identity::generate();
        let mut cfg = site.config();
        cfg.recipient = Some(id.to_public());
        let report = backup::backup(&app.db, &cfg, start_time()).await.unwrap();
        assert!(report.location.ends_with(".tar.gz.age"), "{}", report.location);
        assert!(report.manifest.encrypted && report.manifest.includes_key());
        let raw = std::fs::read(&report.location).unwrap();
        assert!(raw.starts_with(b"age-encryption.org/v1"));
        let identity = site.dir.path().join("backup-identity.txt");
        std::fs::write(&identity, format!("# created for the test\n\n{}\n", secret(&id))).unwrap();
        let v = backup::verify(&report.location, Some(&identity), None).await.unwrap();
        assert!(v.encrypted);
        // A new machine with no key at all: the archive's key is used and kept.
        let target = EmptyTarget::like(&app.url).await;
        let opts = RestoreOptions { replace: false, identity: Some(identity), key: None };
        let r = restore(&report.location, &target.url, &target.data_dir(), &target.files_dir(), &opts).await.unwrap();
        let key_file = r.key_written.clone().expect("the archive's key is written");
        assert_eq!(key_file, target.dir.path().join("data.key"));
        let written = std::fs::read_to_string(&key_file).unwrap();
        assert_eq!(written.trim(), app.data_key.trim());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(tree(&target.files_dir()), tree(&site.files()));
        let (restored, _dir) = target.into_app(written.trim()).await;
        assert_eq!(admin_answers(&restored, &site).await, before);
    }

    async fn the_command_line_backs_up_verifies_and_restores(app) {
        let site = populate(&app).await;
        let out = ferum(&app.url, site.dir.path(), &app.data_key, &["backup", "--to", &site.backups().display().to_string()]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let archive = stdout.lines().last().unwrap().to_owned();
        assert!(stdout.contains(&format!("wrote {archive} (")), "{stdout}");
        assert!(stdout.contains(" rows, 4 files, "), "{stdout}");
        assert!(Path::new(&archive).is_file(), "{stdout}");
        assert!(Path::new(&archive).file_name().unwrap().to_str().unwrap().starts_with("ferum-"));

        // verify needs no database: give it one that does not exist.
        let nowhere = ferum::store::DatabaseUrl::parse("sqlite:///nonexistent/dir/ferum.db").unwrap();
        let ok = ferum(&nowhere, site.dir.path(), "", &["backup", "verify", &archive]).output().unwrap();
        let text = String::from_utf8_lossy(&ok.stdout);
        assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
        assert!(text.contains("sizes and SHA-256 match the manifest") && text.trim_end().ends_with("archive OK"), "{text}");
        assert!(!Path::new("/nonexistent/dir").exists());
        let bytes = std::fs::read(&archive).unwrap();
        let bad = site.dir.path().join("bad.tar.gz");
        for (what, damaged) in [("truncated", bytes[..bytes.len() - 100].to_vec()), ("flipped", { let mut b = bytes.clone(); b[bytes.len() / 2] ^= 0x80; b })] {
            std::fs::write(&bad, damaged).unwrap();
            let out = ferum(&nowhere, site.dir.path(), "", &["backup", "verify", &bad.display().to_string()]).output().unwrap();
            assert_eq!(out.status.code(), Some(1), "{what}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("the archive is damaged"), "{what}: {err}");
        }

        // Restore into an empty database of the other kind when there is one.
        let target = match app.db.backend() {
            ferum::store::Backend::Sqlite => EmptyTarget::postgres().await.unwrap_or_else(EmptyTarget::sqlite),
            ferum::store::Backend::Postgres => EmptyTarget::sqlite(),
        };
        let out = ferum(&target.url, target.dir.path(), &app.data_key, &["restore", &archive]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("restored ") && text.contains(" rows) and 4 files from ") && text.contains("audit chain intact"), "{text}");
        assert_eq!(tree(&target.files_dir()), tree(&site.files()));
        // Again: refused, the database is no longer empty.
        std::fs::remove_dir_all(target.files_dir()).unwrap();
        let again = ferum(&target.url, target.dir.path(), &app.data_key, &["restore", &archive]).output().unwrap();
        assert_eq!(again.status.code(), Some(1));
        let err = String::from_utf8_lossy(&again.stderr);
        assert!(err.contains("is not empty") && err.contains("--replace would overwrite it"), "{err}");
        let replaced = ferum(&target.url, target.dir.path(), &app.data_key, &["restore", &archive, "--replace"]).output().unwrap();
        assert!(replaced.status.success(), "{}", String::from_utf8_lossy(&replaced.stderr));
        let audit = ferum(&target.url, target.dir.path(), &app.data_key, &["audit", "verify"]).output().unwrap();
        assert!(String::from_utf8_lossy(&audit.stdout).contains("audit chain intact"));
    }
}

/// The secret key line of an identity, as an identity file holds it.
pub(crate) fn secret(id: &age::x25519::Identity) -> String {
    use age::secrecy::ExposeSecret;
    id.to_string().expose_secret().to_owned()
}

/// The `ferum` binary with its environment pointed at one site.
pub(crate) fn ferum(
    url: &ferum::store::DatabaseUrl,
    data_dir: &Path,
    data_key: &str,
    args: &[&str],
) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferum"));
    c.args(args)
        .env("DATABASE_URL", url.as_str())
        .env("FERUM_DATA_DIR", data_dir)
        .env("FERUM_FILES_DIR", data_dir.join("files"))
        .env("FERUM_DATA_KEY", data_key)
        .env("FERUM_LOG", "warn")
        .env_remove("FERUM_BACKUP_TARGET")
        .env_remove("FERUM_BACKUP_AGE_RECIPIENT")
        .env_remove("FERUM_BACKUP_AGE_IDENTITY")
        .env_remove("FERUM_BACKUP_KEY")
        .env_remove("FERUM_BACKUP_AT")
        .stdin(Stdio::null());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_backups_on_the_command_line_need_the_right_identity() {
    let app = TestApp::sqlite().await;
    let site = populate(&app).await;
    let id = age::x25519::Identity::generate();
    let public = id.to_public().to_string();
    let out = ferum(
        &app.url,
        site.dir.path(),
        &app.data_key,
        &["backup", "--encrypt-to", &public],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let archive = stdout.lines().last().unwrap().to_owned();
    assert!(
        archive.starts_with(&site.backups().display().to_string())
            && archive.ends_with(".tar.gz.age"),
        "{stdout}"
    );
    assert!(stdout.contains("encrypted with age"), "{stdout}");
    let right = site.dir.path().join("right.txt");
    std::fs::write(&right, format!("# public key: {public}\n{}\n", secret(&id))).unwrap();
    let wrong = site.dir.path().join("wrong.txt");
    std::fs::write(
        &wrong,
        format!("{}\n", secret(&age::x25519::Identity::generate())),
    )
    .unwrap();
    let ok = ferum(
        &app.url,
        site.dir.path(),
        "",
        &[
            "backup",
            "verify",
            &archive,
            "--identity",
            &right.display().to_string(),
        ],
    )
    .output()
    .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        String::from_utf8_lossy(&ok.stdout)
            .contains("encrypted: yes (age), carries the personal-data key")
    );
    let bad = ferum(
        &app.url,
        site.dir.path(),
        "",
        &[
            "backup",
            "verify",
            &archive,
            "--identity",
            &wrong.display().to_string(),
        ],
    )
    .output()
    .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("cannot decrypt: the identity does not match this archive's recipient")
    );
    let none = ferum(
        &app.url,
        site.dir.path(),
        "",
        &["backup", "verify", &archive],
    )
    .output()
    .unwrap();
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("--identity FILE"));
    // The identity can come from the environment too.
    let env = ferum(
        &app.url,
        site.dir.path(),
        "",
        &["backup", "verify", &archive],
    )
    .env("FERUM_BACKUP_AGE_IDENTITY", &right)
    .output()
    .unwrap();
    assert!(
        env.status.success(),
        "{}",
        String::from_utf8_lossy(&env.stderr)
    );
    // A bad recipient is refused naming where it came from.
    let out = ferum(&app.url, site.dir.path(), &app.data_key, &["backup"])
        .env("FERUM_BACKUP_AGE_RECIPIENT", "age1nope")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("FERUM_BACKUP_AGE_RECIPIENT"));
}

mod fake_s3 {
    //! An S3-compatible server in memory: PUT, GET, DELETE of objects and ListObjectsV2, each
    //! request checked for a presigned AWS Signature V4 by the configured key and region.

    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    use axum::response::{IntoResponse, Response};
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    pub const BUCKET: &str = "ferum-backups";
    pub const KEY_ID: &str = "AKIAFERUMTEST";
    pub const SECRET: &str = "fake-secret-key";
    pub const REGION: &str = "ru-central1";
    const PAGE: usize = 5;

    #[derive(Clone, Default)]
    pub struct Fake {
        pub objects: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
        /// `METHOD path` of every request.
        pub log: Arc<Mutex<Vec<String>>>,
        /// What was wrong with a request.
        pub problems: Arc<Mutex<Vec<String>>>,
    }

    fn error(status: StatusCode, code: &str) -> Response {
        (
            status,
            format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code></Error>"),
        )
            .into_response()
    }

    async fn handle(
        State(s): State<Fake>,
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        s.log
            .lock()
            .unwrap()
            .push(format!("{method} {}", uri.path()));
        let query: BTreeMap<String, String> =
            url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let mut wrong = Vec::new();
        if query.get("X-Amz-Algorithm").map(String::as_str) != Some("AWS4-HMAC-SHA256") {
            wrong.push("X-Amz-Algorithm");
        }
        let cred = query.get("X-Amz-Credential").cloned().unwrap_or_default();
        let parts: Vec<&str> = cred.split('/').collect();
        if parts.len() != 5
            || parts[0] != KEY_ID
            || parts[2] != REGION
            || parts[3] != "s3"
            || parts[4] != "aws4_request"
        {
            wrong.push("X-Amz-Credential");
        }
        let sig = query.get("X-Amz-Signature").cloned().unwrap_or_default();
        if sig.len() != 64 || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
            wrong.push("X-Amz-Signature");
        }
        if !query.contains_key("X-Amz-Date") || !query.contains_key("X-Amz-Expires") {
            wrong.push("X-Amz-Date/Expires");
        }
        if query.get("X-Amz-SignedHeaders").map(String::as_str) != Some("host") {
            wrong.push("X-Amz-SignedHeaders");
        }
        let path = uri.path().trim_start_matches('/');
        let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
        if bucket != BUCKET {
            wrong.push("bucket");
        }
        if !wrong.is_empty() {
            s.problems.lock().unwrap().push(format!(
                "{method} {}: {}",
                uri.path(),
                wrong.join(", ")
            ));
            return error(StatusCode::FORBIDDEN, "AccessDenied");
        }
        let key = percent_decode(key);
        let mut objects = s.objects.lock().unwrap();
        match (method, key.is_empty()) {
            (Method::PUT, false) => {
                let length = headers
                    .get("content-length")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<usize>().ok());
                if length != Some(body.len()) || headers.contains_key("transfer-encoding") {
                    s.problems
                        .lock()
                        .unwrap()
                        .push(format!("PUT {key}: no exact Content-Length"));
                    return error(StatusCode::LENGTH_REQUIRED, "MissingContentLength");
                }
                objects.insert(key, body.to_vec());
                StatusCode::OK.into_response()
            }
            (Method::GET, false) => match objects.get(&key) {
                Some(v) => v.clone().into_response(),
                None => error(StatusCode::NOT_FOUND, "NoSuchKey"),
            },
            (Method::DELETE, false) => {
                objects.remove(&key);
                StatusCode::NO_CONTENT.into_response()
            }
            (Method::GET, true) if query.get("list-type").map(String::as_str) == Some("2") => {
                let prefix = query.get("prefix").cloned().unwrap_or_default();
                let after = query.get("continuation-token").cloned().unwrap_or_default();
                let keys: Vec<(&String, usize)> = objects
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix) && **k > after)
                    .map(|(k, v)| (k, v.len()))
                    .collect();
                let page = &keys[..keys.len().min(PAGE)];
                let mut xml = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>{BUCKET}</Name><Prefix>{prefix}</Prefix><KeyCount>{}</KeyCount><MaxKeys>{PAGE}</MaxKeys><IsTruncated>{}</IsTruncated>",
                    page.len(),
                    keys.len() > PAGE
                );
                for (k, size) in page {
                    xml.push_str(&format!("<Contents><Key>{k}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>\"0\"</ETag><Size>{size}</Size><StorageClass>STANDARD</StorageClass></Contents>"));
                }
                if keys.len() > PAGE {
                    xml.push_str(&format!(
                        "<NextContinuationToken>{}</NextContinuationToken>",
                        page[PAGE - 1].0
                    ));
                }
                xml.push_str("</ListBucketResult>");
                ([("content-type", "application/xml")], xml).into_response()
            }
            _ => error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
        }
    }

    fn percent_decode(s: &str) -> String {
        url::form_urlencoded::parse(format!("k={}", s.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    }

    /// Starts the fake on a free port; returns it and its endpoint URL.
    pub async fn start() -> (Fake, String) {
        let fake = Fake::default();
        let app = axum::Router::new()
            .fallback(handle)
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (fake, format!("http://{addr}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backups_upload_list_rotate_verify_and_restore() {
    let (fake, endpoint) = fake_s3::start().await;
    let app = TestApp::sqlite().await;
    let site = populate(&app).await;
    // Twenty older archives, one a day, plus a file that is not ours.
    let old_start = chrono::DateTime::parse_from_rfc3339("2025-10-01T03:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let old: Vec<String> = (0..20)
        .map(|d| ferum::domain::backup::archive_name(old_start + chrono::Duration::days(d), false))
        .collect();
    {
        let mut objects = fake.objects.lock().unwrap();
        for n in &old {
            objects.insert(format!("site-a/{n}"), b"old".to_vec());
        }
        objects.insert("site-a/notes.txt".into(), b"keep me".to_vec());
        objects.insert(
            "other-site/ferum-20251001T030000Z.tar.gz".into(),
            b"not ours".to_vec(),
        );
    }
    // 'static so the closure is Copy and goes into each blocking task.
    let endpoint: &'static str = Box::leak(endpoint.into_boxed_str());
    let s3 = move |c: &mut Command| {
        c.env("FERUM_S3_ENDPOINT", endpoint)
            .env("FERUM_S3_REGION", fake_s3::REGION)
            .env("FERUM_S3_ACCESS_KEY_ID", fake_s3::KEY_ID)
            .env("FERUM_S3_SECRET_ACCESS_KEY", fake_s3::SECRET);
    };
    let (url, dir, key) = (
        app.url.clone(),
        site.dir.path().to_path_buf(),
        app.data_key.clone(),
    );
    let out = tokio::task::spawn_blocking(move || {
        let mut c = ferum(&url, &dir, &key, &["backup"]);
        c.env(
            "FERUM_BACKUP_TARGET",
            format!("s3://{}/site-a/", fake_s3::BUCKET),
        );
        s3(&mut c);
        c.output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        fake.problems.lock().unwrap().is_empty(),
        "{:?}",
        fake.problems.lock().unwrap()
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let location = stdout.lines().last().unwrap().to_owned();
    let prefix = format!("s3://{}/site-a/", fake_s3::BUCKET);
    assert!(location.starts_with(&prefix), "{stdout}");
    let name = location.strip_prefix(&prefix).unwrap().to_owned();
    // Retention: what the rule keeps of the old ones, the new one, and files that are not ours.
    let now = ferum::domain::backup::parse_archive_name(&name).unwrap();
    let mut all = old.clone();
    all.push(name.clone());
    let doomed = Retention::default().to_delete(&all, &name, now);
    // Kept of the old ones: 10-15 to 10-20 (with the new one, 7 days) and 10-12 (newest of its
    // ISO week; the new one's week, 10-20's and 10-19's are the other three).
    assert_eq!(doomed.len(), 13, "{doomed:?}");
    let left: Vec<String> = fake.objects.lock().unwrap().keys().cloned().collect();
    for n in &all {
        assert_eq!(
            left.contains(&format!("site-a/{n}")),
            !doomed.contains(n),
            "{n}"
        );
    }
    assert!(left.contains(&"site-a/notes.txt".to_owned()));
    assert!(left.contains(&"other-site/ferum-20251001T030000Z.tar.gz".to_owned()));
    for d in &doomed {
        assert!(
            stdout.contains(&format!("retention: deleted {prefix}{d}")),
            "{stdout}"
        );
    }
    let log = fake.log.lock().unwrap().clone();
    assert!(
        log.contains(&format!("PUT /{}/site-a/{name}", fake_s3::BUCKET)),
        "{log:?}"
    );
    assert!(
        log.iter()
            .filter(|l| l.starts_with("GET /ferum-backups"))
            .count()
            >= 3,
        "listing is paged: {log:?}"
    );

    // verify and restore read from S3.
    let loc = location.clone();
    let url = app.url.clone();
    let dir = site.dir.path().to_path_buf();
    let verify = tokio::task::spawn_blocking(move || {
        let mut c = ferum(&url, &dir, "", &["backup", "verify", &loc]);
        s3(&mut c);
        c.output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let target = EmptyTarget::sqlite();
    let (turl, tdir, loc, key) = (
        target.url.clone(),
        target.data_dir(),
        location.clone(),
        app.data_key.clone(),
    );
    let restored = tokio::task::spawn_blocking(move || {
        let mut c = ferum(&turl, &tdir, &key, &["restore", &loc]);
        s3(&mut c);
        c.output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert_eq!(tree(&target.files_dir()), tree(&site.files()));
    let before = admin_answers(&app, &site).await;
    let (restored_app, _d) = target.into_app(&app.data_key).await;
    assert_eq!(admin_answers(&restored_app, &site).await, before);
    // A missing object is an error naming it; bad S3 settings name the variable.
    let (url, dir) = (app.url.clone(), site.dir.path().to_path_buf());
    let missing = tokio::task::spawn_blocking(move || {
        let mut c = ferum(
            &url,
            &dir,
            "",
            &[
                "backup",
                "verify",
                "s3://ferum-backups/site-a/ferum-20200101T000000Z.tar.gz",
            ],
        );
        s3(&mut c);
        let missing = c.output().unwrap();
        let mut c = ferum(
            &url,
            &dir,
            "",
            &["backup", "verify", "s3://ferum-backups/x.tar.gz"],
        );
        s3(&mut c);
        c.env("FERUM_S3_PATH_STYLE", "sometimes");
        (missing, c.output().unwrap())
    })
    .await
    .unwrap();
    assert_eq!(missing.0.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.0.stderr).contains("HTTP 404 Not Found NoSuchKey"),
        "{}",
        String::from_utf8_lossy(&missing.0.stderr)
    );
    assert!(String::from_utf8_lossy(&missing.1.stderr).contains("FERUM_S3_PATH_STYLE"));
    assert!(
        fake.problems.lock().unwrap().is_empty(),
        "{:?}",
        fake.problems.lock().unwrap()
    );
}

both! {
    async fn the_daily_schedule_takes_a_backup_at_its_time_and_records_it(app) {
        let site = populate(&app).await;
        // One second before the scheduled 09:01 UTC.
        app.clock.advance(chrono::Duration::seconds(59));
        let cfg = BackupConfig {
            at: Some(ferum::domain::backup::TimeOfDay::hm(9, 1).unwrap()),
            ..site.config()
        };
        let task = backup::spawn_schedule(app.db.clone(), cfg.clone(), app.clock.clone(), "a".into())
            .expect("a schedule is set");
        let mut archives = Vec::new();
        for _ in 0..100 {
            archives = std::fs::read_dir(site.backups())
                .map(|d| d.map(|e| e.unwrap().file_name().into_string().unwrap()).collect())
                .unwrap_or_default();
            archives.retain(|n: &String| n.ends_with(".tar.gz"));
            // The time is recorded just after the archive is in place (and retention ran).
            if !archives.is_empty() && backup::last_success(&app.db).await.unwrap().is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        task.abort();
        assert_eq!(archives, vec!["ferum-20260302T090059Z.tar.gz".to_owned()]);
        assert_eq!(
            backup::last_success(&app.db).await.unwrap(),
            Some(app.clock.now())
        );
        // Another instance scheduled at the same time finds the day's lease taken and skips;
        // the one holding it may run again.
        assert!(backup::scheduled_run(&app.db, &cfg, app.clock.now(), "b").await.unwrap().is_none());
        let later = app.clock.now() + chrono::Duration::seconds(1);
        assert!(backup::scheduled_run(&app.db, &cfg, later, "a").await.unwrap().is_some());
        // Without a time there is no schedule.
        assert!(backup::spawn_schedule(app.db.clone(), site.config(), app.clock.clone(), "a".into()).is_none());
    }
}
