//! The audit log holds no personal data in clear (not in its entries, not in any table, not in
//! an unencrypted backup archive), old entries are rewritten by a data patch that re-chains the
//! log, and users made on the command line are audited with the system as the actor.

use crate::pages::{Browser, html};
use crate::support::*;
use axum::http::StatusCode;
use ferum::domain::access::Role;
use ferum::domain::audit::{EntryContent, entry_hash};
use ferum::store::{Backend, audit, migrate};
use serde_json::{Value, json};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

const CUSTOMER_EMAIL: &str = "ivan.petrov@romashka-pii.example";
const CUSTOMER_PHONE: &str = "+7 912 345-67-89";
const CUSTOMER_EMAIL_2: &str = "irina.sidorova@romashka-pii.example";
const CUSTOMER_PHONE_2: &str = "+7 913 000-11-22";
const USER_PHONE: &str = "+7 914 555-66-77";
const USER_PHONE_2: &str = "+7 915 777-88-99";

/// The personal values the tests write; none may be found in clear anywhere at rest.
const SECRETS: [&str; 6] = [
    CUSTOMER_EMAIL,
    CUSTOMER_PHONE,
    CUSTOMER_EMAIL_2,
    CUSTOMER_PHONE_2,
    USER_PHONE,
    USER_PHONE_2,
];

/// The name of the data patch that rewrites old entries.
const PATCH: &str = "0003_audit_personal_data";

/// Which secrets `text` holds (case-insensitively).
fn leaked(text: &str) -> Vec<&'static str> {
    let text = text.to_lowercase();
    SECRETS
        .iter()
        .copied()
        .filter(|s| text.contains(&s.to_lowercase()))
        .collect()
}

/// Every table of the database.
async fn tables(app: &TestApp) -> Vec<String> {
    let sql = match app.db.backend() {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        }
        Backend::Postgres => {
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1"
        }
    };
    sqlx::query_scalar(sql)
        .fetch_all(app.db.pool())
        .await
        .unwrap()
}

async fn columns(app: &TestApp, table: &str) -> Vec<String> {
    let sql = match app.db.backend() {
        Backend::Sqlite => format!("SELECT name FROM pragma_table_info('{table}')"),
        Backend::Postgres => format!(
            "SELECT CAST(column_name AS TEXT) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '{table}'"
        ),
    };
    sqlx::query_scalar(&sql)
        .fetch_all(app.db.pool())
        .await
        .unwrap()
}

/// Every value of every column of every table, as text, that holds a secret.
async fn secrets_in_tables(app: &TestApp) -> Vec<String> {
    let mut found = Vec::new();
    let all = tables(app).await;
    for t in ["audit_log", "customers", "users"] {
        assert!(all.iter().any(|a| a == t), "{t} is not among {all:?}");
    }
    for table in all {
        for column in columns(app, &table).await {
            let values: Vec<Option<String>> = sqlx::query_scalar(&format!(
                "SELECT CAST(\"{column}\" AS TEXT) FROM \"{table}\""
            ))
            .fetch_all(app.db.pool())
            .await
            .unwrap_or_else(|e| panic!("{table}.{column}: {e}"));
            for v in values.into_iter().flatten() {
                let l = leaked(&v);
                if !l.is_empty() {
                    found.push(format!("{table}.{column} holds {l:?}: {v}"));
                }
            }
        }
    }
    found
}

/// The `ferum` binary pointed at the test database, its personal-data key and a data folder.
fn ferum(app: &TestApp, data_dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferum"));
    c.args(args)
        .env("DATABASE_URL", app.url.as_str())
        .env("FERUM_DATA_DIR", data_dir)
        .env("FERUM_FILES_DIR", data_dir.join("files"))
        .env("FERUM_DATA_KEY", &app.data_key)
        .env("FERUM_LOG", "warn")
        .env_remove("FERUM_ADMIN_EMAIL")
        .env_remove("FERUM_ADMIN_PASSWORD")
        .env_remove("FERUM_BACKUP_TARGET")
        .env_remove("FERUM_BACKUP_AGE_RECIPIENT")
        .env_remove("FERUM_BACKUP_AGE_IDENTITY")
        .env_remove("FERUM_BACKUP_AT")
        .stdin(Stdio::null());
    c
}

#[track_caller]
fn succeeded(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every member of a `.tar.gz` archive with its bytes.
fn archive_members(path: &str) -> Vec<(String, Vec<u8>)> {
    let file = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        out.push((name, bytes));
    }
    out
}

#[derive(Debug, PartialEq, sqlx::FromRow)]
struct Stored {
    id: i64,
    user_id: Option<i64>,
    ip: String,
    action: String,
    entity: String,
    entity_id: Option<i64>,
    before_json: Option<String>,
    after_json: Option<String>,
    prev_hash: String,
    hash: String,
}

async fn stored_entries(app: &TestApp) -> Vec<Stored> {
    sqlx::query_as(
        "SELECT id, user_id, ip, action, entity, entity_id, before_json, after_json, prev_hash, hash FROM audit_log ORDER BY id",
    )
    .fetch_all(app.db.pool())
    .await
    .unwrap()
}

/// Appends an entry exactly as the code before the fix did: the snapshot as given (personal
/// data in clear), chained to the head.
async fn old_style_entry(
    app: &TestApp,
    user: i64,
    action: &str,
    entity: &str,
    entity_id: i64,
    before: Option<&Value>,
    after: Option<&Value>,
) -> i64 {
    let mut tx = app.db.begin().await.unwrap();
    let prev: String = sqlx::query_scalar("SELECT last_hash FROM audit_head WHERE id = 1")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let at = "2026-03-01T08:00:00.000000Z";
    let (before, after) = (before.map(Value::to_string), after.map(Value::to_string));
    let hash = entry_hash(
        &prev,
        &EntryContent {
            at,
            user_id: Some(user),
            ip: "10.0.0.1",
            action,
            entity,
            entity_id: Some(entity_id),
            before_json: before.as_deref(),
            after_json: after.as_deref(),
        },
    );
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO audit_log (at, user_id, ip, action, entity, entity_id, before_json, after_json, prev_hash, hash) \
         VALUES ($1, $2, '10.0.0.1', $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(at)
    .bind(user)
    .bind(action)
    .bind(entity)
    .bind(entity_id)
    .bind(before)
    .bind(after)
    .bind(prev)
    .bind(hash.clone())
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    sqlx::query("UPDATE audit_head SET last_id = $1, last_hash = $2 WHERE id = 1")
        .bind(id)
        .bind(hash)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

/// Whether a JSON value is a personal-data fingerprint as the log keeps it.
fn is_fingerprint(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.strip_prefix("pii:")
            .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    })
}

both! {
    async fn personal_data_reaches_neither_the_audit_log_nor_any_table_nor_an_unencrypted_archive(app) {
        let admin = app.user(&[Role::Admin], None).await;
        // A customer with contacts, created and changed through the API.
        let c = app.post("/api/v1/customers", &admin, json!({"name": "ООО Ромашка", "inn": next_inn(), "contact_email": CUSTOMER_EMAIL, "contact_phone": CUSTOMER_PHONE})).await;
        c.assert(StatusCode::CREATED);
        let customer = c.id();
        app.patch(&format!("/api/v1/customers/{customer}"), &admin, json!({"version": c.body["version"], "contact_email": CUSTOMER_EMAIL_2, "contact_phone": CUSTOMER_PHONE_2})).await.assert(StatusCode::OK);
        // A user with a phone, created and changed through the API.
        let u = app.post("/api/v1/users", &admin, json!({"email": "pii.user@example.ru", "name": "Пётр", "phone": USER_PHONE, "roles": ["engineer"], "password": PASSWORD})).await;
        u.assert(StatusCode::CREATED);
        let user = u.id();
        app.patch(&format!("/api/v1/users/{user}"), &admin, json!({"version": u.body["version"], "phone": USER_PHONE_2, "roles": ["engineer", "project_manager"]})).await.assert(StatusCode::OK);
        // ... and it reads back in clear for those who may see it.
        let read = app.get(&format!("/api/v1/customers/{customer}"), &admin).await;
        assert_eq!(read.body["contact_email"], CUSTOMER_EMAIL_2);
        assert_eq!(app.get(&format!("/api/v1/users/{user}"), &admin).await.body["phone"], USER_PHONE_2);

        // No table holds them in clear: not the audit log, not anything else.
        let found = secrets_in_tables(&app).await;
        assert!(found.is_empty(), "personal data in clear at rest:\n{}", found.join("\n"));

        // The audit viewer shows that the contacts changed, never what they are.
        let log = app.get("/api/v1/audit?entity=customer", &admin).await;
        log.assert(StatusCode::OK);
        assert!(leaked(&log.body.to_string()).is_empty(), "{}", log.body);
        let update = log.body["items"].as_array().unwrap().iter().find(|e| e["action"] == "update").unwrap_or_else(|| panic!("{}", log.body)).clone();
        for field in ["contact_email", "contact_phone"] {
            assert!(is_fingerprint(&update["before"][field]), "{update}");
            assert!(is_fingerprint(&update["after"][field]), "{update}");
            assert_ne!(update["before"][field], update["after"][field], "{update}");
        }
        assert_eq!(update["before"]["name"], "ООО Ромашка", "other fields stay readable: {update}");
        let mut changed: Vec<&str> = update["personal_changed"].as_array().unwrap_or_else(|| panic!("{update}")).iter().map(|v| v.as_str().unwrap()).collect();
        changed.sort_unstable();
        assert_eq!(changed, ["contact_email", "contact_phone"]);
        let log = app.get(&format!("/api/v1/audit?entity=user&entity_id={user}"), &admin).await;
        assert!(leaked(&log.body.to_string()).is_empty(), "{}", log.body);
        let update = log.body["items"].as_array().unwrap().iter().find(|e| e["action"] == "update").unwrap_or_else(|| panic!("{}", log.body)).clone();
        assert!(is_fingerprint(&update["after"]["phone"]), "{update}");
        assert_eq!(update["personal_changed"], json!(["phone"]), "{update}");
        let create = log.body["items"].as_array().unwrap().iter().find(|e| e["action"] == "create").unwrap().clone();
        assert_eq!(create["after"]["phone"], update["before"]["phone"], "the same value has the same fingerprint");
        assert_eq!(create["personal_changed"], json!([]), "{create}");

        // The page shows them hidden, and changed where they changed.
        app.reconfigure(|s| s.security.mfa_roles = vec![]);
        let mut browser = Browser::default();
        browser.sign_in(&app, &admin.email).await;
        let page = browser.get(&app, "/admin/audit?entity=customer").await;
        assert_eq!(page.status, StatusCode::OK, "{}", html(&page));
        assert!(leaked(html(&page)).is_empty(), "{}", html(&page));
        assert!(!html(&page).contains("pii:"), "{}", html(&page));
        assert!(html(&page).contains("скрыто, изменено"), "{}", html(&page));

        // An unencrypted archive taken by `ferum backup` holds none of them either.
        let dir = tempfile::tempdir().unwrap();
        let out = ferum(&app, dir.path(), &["backup", "--to", &dir.path().join("backups").display().to_string()]).output().unwrap();
        let stdout = succeeded(&out);
        let archive = stdout.lines().last().unwrap().trim().to_owned();
        assert!(archive.ends_with(".tar.gz"), "{stdout}");
        let members = archive_members(&archive);
        assert!(members.iter().any(|(n, _)| n == "tables/audit_log.jsonl"), "{:?}", members.iter().map(|m| &m.0).collect::<Vec<_>>());
        assert!(members.iter().any(|(n, _)| n == "tables/customers.jsonl"));
        for (name, bytes) in &members {
            let l = leaked(&String::from_utf8_lossy(bytes));
            assert!(l.is_empty(), "archive member {name} holds {l:?}");
        }

        // The chain holds, in the store and on the command line.
        assert_eq!(audit::verify(&app.db).await.unwrap(), Ok(app.count("audit_log").await));
        let text = succeeded(&ferum(&app, dir.path(), &["audit", "verify"]).output().unwrap());
        assert!(text.contains("audit chain intact"), "{text}");
    }

    async fn the_data_patch_rewrites_old_entries_and_re_chains_the_log_once(app) {
        let w = app.world().await;
        let admin = w.admin.id;
        // Entries as the old code wrote them, between entries of the new code.
        let first = old_style_entry(&app, admin, "create", "customer", w.customer, None, Some(&json!({"id": w.customer, "name": "ООО Ромашка", "contact_email": CUSTOMER_EMAIL, "contact_phone": CUSTOMER_PHONE, "version": 1}))).await;
        old_style_entry(&app, admin, "create", "object", w.object, None, Some(&json!({"id": w.object, "name": "Склад"}))).await;
        old_style_entry(&app, admin, "update", "customer", w.customer, Some(&json!({"id": w.customer, "name": "ООО Ромашка", "contact_email": CUSTOMER_EMAIL, "contact_phone": CUSTOMER_PHONE, "version": 1})), Some(&json!({"id": w.customer, "name": "ООО Ромашка", "contact_email": CUSTOMER_EMAIL_2, "contact_phone": "", "version": 2}))).await;
        old_style_entry(&app, admin, "create", "user", w.engineer.id, None, Some(&json!({"id": w.engineer.id, "email": w.engineer.email, "phone": USER_PHONE, "roles": ["engineer"]}))).await;
        old_style_entry(&app, admin, "delete", "customer", w.customer, Some(&json!({"id": w.customer, "contact_email": CUSTOMER_EMAIL_2, "contact_phone": null})), None).await;
        // Newer entries after them are re-chained too.
        app.request(&w.admin, w.object, "maintenance").await;
        let before = stored_entries(&app).await;
        let last_before = before.last().unwrap().id;
        assert_eq!(audit::verify(&app.db).await.unwrap(), Ok(before.len() as i64));
        assert!(!secrets_in_tables(&app).await.is_empty(), "the old entries hold personal data");

        // The patch runs with the next migration (as on the first start of the new version).
        sqlx::query(&format!("DELETE FROM data_patches WHERE name = '{PATCH}'")).execute(app.db.pool()).await.unwrap();
        let report = migrate::run(&app.db, app.clock.now()).await.unwrap();
        assert_eq!(report.patched, vec![PATCH.to_owned()], "{report:?}");

        let found = secrets_in_tables(&app).await;
        assert!(found.is_empty(), "personal data left:\n{}", found.join("\n"));
        let after = stored_entries(&app).await;
        assert_eq!(after.len(), before.len() + 1, "one entry is added: the re-chain itself");
        assert_eq!(audit::verify(&app.db).await.unwrap(), Ok(after.len() as i64));
        // Entries before the first changed one are untouched; later ones keep their content
        // (apart from the personal fields) and get new hashes.
        for (old, new) in before.iter().zip(&after) {
            if old.id < first {
                assert_eq!(old, new);
            } else {
                assert_eq!((old.id, &old.action, &old.entity, old.entity_id, old.user_id, &old.ip), (new.id, &new.action, &new.entity, new.entity_id, new.user_id, &new.ip));
                assert_ne!(old.hash, new.hash, "entry {} is re-chained", old.id);
            }
        }
        let parse = |s: &Option<String>| s.as_deref().map(|s| serde_json::from_str::<Value>(s).unwrap()).unwrap_or(Value::Null);
        let by_id = |id: i64| after.iter().find(|e| e.id == id).unwrap();
        let created = parse(&by_id(first).after_json);
        assert!(is_fingerprint(&created["contact_email"]) && is_fingerprint(&created["contact_phone"]), "{created}");
        assert_eq!(created["name"], "ООО Ромашка");
        let updated = by_id(first + 2);
        let (b, a) = (parse(&updated.before_json), parse(&updated.after_json));
        assert_eq!(b["contact_email"], created["contact_email"], "equal values, equal fingerprints");
        assert_ne!(a["contact_email"], b["contact_email"]);
        assert_eq!(a["contact_phone"], "", "an empty value stays empty");
        let user = parse(&by_id(first + 3).after_json);
        assert!(is_fingerprint(&user["phone"]), "{user}");
        assert_eq!(user["email"], w.engineer.email.as_str());
        let deleted = parse(&by_id(first + 4).before_json);
        assert_eq!(deleted["contact_phone"], Value::Null, "null stays null");
        assert_eq!(deleted["contact_email"], a["contact_email"]);
        let untouched = parse(&by_id(first + 1).after_json);
        assert_eq!(untouched, json!({"id": w.object, "name": "Склад"}));

        // The re-chain is itself audited, last, by the system, with what it did and why.
        let event = after.last().unwrap();
        assert_eq!((event.action.as_str(), event.user_id, event.ip.as_str()), ("audit.rechain", None, "system"), "{event:?}");
        let details = parse(&event.after_json);
        assert_eq!(details["from_id"], first, "{details}");
        assert_eq!(details["entries"], last_before - first + 1, "{details}");
        assert_eq!(details["rewritten"], 4, "{details}");
        assert_eq!(details["patch"], PATCH, "{details}");
        assert!(details["reason"].as_str().is_some_and(|r| r.contains("personal data")), "{details}");

        // Running migrate again changes nothing; nor does the patch, run once more.
        assert!(migrate::run(&app.db, app.clock.now()).await.unwrap().is_noop());
        sqlx::query(&format!("DELETE FROM data_patches WHERE name = '{PATCH}'")).execute(app.db.pool()).await.unwrap();
        assert_eq!(migrate::run(&app.db, app.clock.now()).await.unwrap().patched, vec![PATCH.to_owned()]);
        assert_eq!(stored_entries(&app).await, after, "a second run rewrites nothing and adds no entry");
        assert!(migrate::run(&app.db, app.clock.now()).await.unwrap().is_noop());
        let dir = tempfile::tempdir().unwrap();
        let text = succeeded(&ferum(&app, dir.path(), &["audit", "verify"]).output().unwrap());
        assert!(text.contains(&format!("audit chain intact: {} entries", after.len())), "{text}");
    }

    async fn the_data_patch_does_not_re_chain_over_a_broken_chain(app) {
        let w = app.world().await;
        let first = old_style_entry(&app, w.admin.id, "create", "user", w.engineer.id, None, Some(&json!({"phone": USER_PHONE}))).await;
        app.request(&w.admin, w.object, "maintenance").await;
        sqlx::query(&format!("UPDATE audit_log SET ip = '6.6.6.6' WHERE id = {}", first + 1)).execute(app.db.pool()).await.unwrap();
        let before = stored_entries(&app).await;
        sqlx::query(&format!("DELETE FROM data_patches WHERE name = '{PATCH}'")).execute(app.db.pool()).await.unwrap();
        let err = format!("{:#}", migrate::run(&app.db, app.clock.now()).await.unwrap_err());
        assert!(err.contains(&format!("broken at entry {}", first + 1)), "{err}");
        assert_eq!(stored_entries(&app).await, before, "nothing was changed");
        let pending: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM data_patches WHERE name = '{PATCH}'")).fetch_one(app.db.pool()).await.unwrap();
        assert_eq!(pending, 0, "the patch stays pending");
        // Starting the service with the key tries again, but the failure keeps nothing down.
        ferum::store::pii::startup(&app.db, app.db.keys().unwrap()).await.unwrap();
        assert_eq!(stored_entries(&app).await, before, "still nothing was changed");
    }

    async fn users_made_on_the_command_line_are_audited_as_the_system(app) {
        let dir = tempfile::tempdir().unwrap();
        // The first administrator of `ferum site init`.
        let out = ferum(&app, dir.path(), &["site", "init"])
            .env("FERUM_ADMIN_EMAIL", "first@example.ru")
            .env("FERUM_ADMIN_PASSWORD", PASSWORD)
            .env("FERUM_TOKEN_SECRET", "a token secret that is long enough for ferum")
            .output()
            .unwrap();
        let text = succeeded(&out);
        assert!(text.contains("Created the first administrator first@example.ru"), "{text}");
        // `ferum user add`.
        let mut child = ferum(&app, dir.path(), &["user", "add", "--email", "cli.user@example.ru", "--name", "Инженер", "--role", "engineer"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
        succeeded(&child.wait_with_output().unwrap());

        let id_of = |email: &'static str| {
            let app = &app;
            async move {
                sqlx::query_scalar::<_, i64>(&format!("SELECT id FROM users WHERE email = '{email}'"))
                    .fetch_one(app.db.pool())
                    .await
                    .unwrap()
            }
        };
        let entries = stored_entries(&app).await;
        for email in ["first@example.ru", "cli.user@example.ru"] {
            let id = id_of(email).await;
            let made: Vec<&Stored> = entries.iter().filter(|e| e.entity == "user" && e.entity_id == Some(id)).collect();
            assert_eq!(made.len(), 1, "{email}: {made:?}");
            let e = made[0];
            assert_eq!((e.action.as_str(), e.user_id, e.ip.as_str()), ("create", None, "cli"), "{email}: {e:?}");
            let after: Value = serde_json::from_str(e.after_json.as_deref().unwrap()).unwrap();
            assert_eq!(after["email"], email, "{after}");
            assert!(after.get("password_hash").is_none() && !e.after_json.as_deref().unwrap().contains("argon2"), "{after}");
        }
        let first = id_of("first@example.ru").await;
        let admin_roles = entries.iter().find(|e| e.entity_id == Some(first)).unwrap().after_json.clone().unwrap();
        assert!(admin_roles.contains("admin"), "{admin_roles}");
        assert_eq!(audit::verify(&app.db).await.unwrap(), Ok(entries.len() as i64));

        // The viewer names the command line as the actor.
        let admin = app.user(&[Role::Admin], None).await;
        let log = app.get("/api/v1/audit?entity=user", &admin).await;
        log.assert(StatusCode::OK);
        let items = log.body["items"].as_array().unwrap();
        assert!(items.iter().any(|e| e["entity_id"] == first && e["user_id"].is_null() && e["ip"] == "cli"), "{}", log.body);
        app.reconfigure(|s| s.security.mfa_roles = vec![]);
        let mut browser = Browser::default();
        browser.sign_in(&app, &admin.email).await;
        let page = browser.get(&app, "/admin/audit?entity=user").await;
        assert_eq!(page.status, StatusCode::OK, "{}", html(&page));
        assert!(html(&page).contains("<td>командная строка</td>"), "{}", html(&page));
    }

    async fn the_first_administrator_of_serve_is_audited_as_the_system(app) {
        use std::io::{BufRead, BufReader};
        let dir = tempfile::tempdir().unwrap();
        let mut child = ferum(&app, dir.path(), &["serve", "--bind", "127.0.0.1:0"])
            .env("FERUM_ADMIN_EMAIL", "boss@example.ru")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut lines = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            lines.push_str(&line);
            if line.contains("listening on") {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(lines.contains("Created the first administrator boss@example.ru"), "{lines}");
        let id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE email = 'boss@example.ru'").fetch_one(app.db.pool()).await.unwrap();
        let entries = stored_entries(&app).await;
        let made: Vec<&Stored> = entries.iter().filter(|e| e.entity == "user" && e.entity_id == Some(id)).collect();
        assert_eq!(made.len(), 1, "{made:?}");
        assert_eq!((made[0].action.as_str(), made[0].user_id, made[0].ip.as_str()), ("create", None, "cli"));
        assert_eq!(audit::verify(&app.db).await.unwrap(), Ok(entries.len() as i64));
    }
}
