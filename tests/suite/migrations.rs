//! Migrations and the command line, run as a user would run them.

use crate::support::*;
use axum::http::{Method, StatusCode};
use ferum::store::migrate;
use std::process::{Command, Stdio};

both! {
    async fn migrating_twice_is_a_no_op_and_patches_are_idempotent(app) {
        let report = migrate::run(&app.db, app.clock.now()).await.unwrap();
        assert!(report.is_noop(), "{report:?}");
        let st = migrate::status(&app.db).await.unwrap();
        assert_eq!(st.current, migrate::latest_version());
        assert!(st.pending.is_empty());
        // Re-running a data patch changes nothing.
        let w = app.world().await;
        app.request(&w.admin, w.object, "maintenance").await;
        let before: Vec<(i64, String)> = sqlx::query_as("SELECT id, search FROM service_requests ORDER BY id").fetch_all(app.db.pool()).await.unwrap();
        let mut tx = app.db.begin().await.unwrap();
        for p in migrate::PATCHES {
            migrate::apply_patch(p.name, &mut tx).await.unwrap();
        }
        tx.commit().await.unwrap();
        let after: Vec<(i64, String)> = sqlx::query_as("SELECT id, search FROM service_requests ORDER BY id").fetch_all(app.db.pool()).await.unwrap();
        assert_eq!(before, after);
        // A blank search key is refilled by the patch.
        sqlx::query("UPDATE service_requests SET search = ''").execute(app.db.pool()).await.unwrap();
        let mut tx = app.db.begin().await.unwrap();
        migrate::apply_patch("0001_fill_search_keys", &mut tx).await.unwrap();
        tx.commit().await.unwrap();
        let refilled: Vec<(i64, String)> = sqlx::query_as("SELECT id, search FROM service_requests ORDER BY id").fetch_all(app.db.pool()).await.unwrap();
        assert_eq!(before, refilled);
    }

    async fn a_newer_schema_is_refused(app) {
        sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future', '2030-01-01T00:00:00.000000Z')")
            .execute(app.db.pool())
            .await
            .unwrap();
        let err = migrate::run(&app.db, app.clock.now()).await.unwrap_err().to_string();
        assert!(err.contains("newer than this ferum binary"), "{err}");
        let out = ferum_cmd(app.url.as_str(), &["migrate"]).output().unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("newer than this ferum binary"));
    }
}

fn ferum_cmd(database_url: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferum"));
    // Keys and other files go next to an SQLite database, never into the working tree.
    let data_dir = database_url
        .strip_prefix("sqlite://")
        .and_then(|p| std::path::Path::new(p).parent().map(|d| d.to_path_buf()))
        .unwrap_or_else(std::env::temp_dir);
    c.args(args)
        .env("DATABASE_URL", database_url)
        .env("FERUM_DATA_DIR", data_dir)
        .env_remove("FERUM_DATA_KEY")
        .env_remove("FERUM_ADMIN_EMAIL")
        .env_remove("FERUM_ADMIN_PASSWORD")
        .stdin(Stdio::null());
    c
}

#[test]
fn migrate_command_reports_and_then_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sub/ferum.db").display());
    let first = ferum_cmd(&url, &["migrate"]).output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(out.contains("applied migration 0001_core"), "{out}");
    assert!(
        out.contains("applied data patch 0001_fill_search_keys"),
        "{out}"
    );
    let second = ferum_cmd(&url, &["migrate"]).output().unwrap();
    assert!(second.status.success());
    assert!(String::from_utf8_lossy(&second.stdout).contains("nothing to do"));
}

#[test]
fn mistyped_database_urls_are_refused_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "sqlit://x.db",
        "postgress://localhost/x",
        "ferum.db",
        "sqlite://",
        "mysql://localhost/x",
    ] {
        let out = ferum_cmd(url, &["migrate"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{url} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("database URL") || err.contains("sqlite URL"),
            "{url}: {err}"
        );
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file was created"
    );
}

#[test]
fn user_add_reads_the_password_from_stdin() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ferum.db").display());
    let mut child = ferum_cmd(
        &url,
        &[
            "user",
            "add",
            "--email",
            "Eng@Example.ru",
            "--name",
            "Инженер",
            "--role",
            "engineer",
            "--role",
            "project_manager",
        ],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long enough password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("eng@example.ru (project_manager,engineer)")
    );
    // A short password is refused with the reason, and no user is added.
    let mut child = ferum_cmd(
        &url,
        &[
            "user",
            "add",
            "--email",
            "b@example.ru",
            "--name",
            "B",
            "--role",
            "engineer",
        ],
    )
    .stdin(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    child.stdin.take().unwrap().write_all(b"short\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("password"));
    // A client needs a customer.
    let mut child = ferum_cmd(
        &url,
        &[
            "user",
            "add",
            "--email",
            "c@example.ru",
            "--name",
            "C",
            "--role",
            "client",
        ],
    )
    .stdin(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long enough password\n")
        .unwrap();
    assert!(!child.wait_with_output().unwrap().status.success());
}

#[test]
fn serve_bootstraps_the_first_admin_once() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let start = |dir: &std::path::Path| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferum"))
            .args(["serve", "--bind", "127.0.0.1:0"])
            .current_dir(dir)
            .env_remove("DATABASE_URL")
            .env_remove("FERUM_DATA_DIR")
            .env("FERUM_ADMIN_EMAIL", "boss@example.ru")
            .env_remove("FERUM_ADMIN_PASSWORD")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = Vec::new();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            let done = line.contains("listening on");
            lines.push(line);
            if done {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        lines.concat()
    };
    let first = start(dir.path());
    assert!(
        first.contains("Created the first administrator boss@example.ru"),
        "{first}"
    );
    assert!(first.contains("listening on http://127.0.0.1:"), "{first}");
    assert!(
        dir.path().join("data/ferum.db").exists(),
        "the SQLite file is under ./data"
    );
    let second = start(dir.path());
    assert!(
        !second.contains("Created the first administrator"),
        "{second}"
    );
    assert!(second.contains("listening on"), "{second}");
}

#[tokio::test]
async fn sqlite_runs_in_wal_with_foreign_keys_and_a_busy_timeout() {
    let app = TestApp::sqlite().await;
    let mut conn = app.db.pool().acquire().await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!((mode.as_str(), fk), ("wal", 1));
    assert!(busy >= 5000, "busy timeout {busy}");
    // Foreign keys are enforced: a request of a customer that does not exist is refused.
    let r = sqlx::query("INSERT INTO service_objects (customer_id, name, kind, created_at, updated_at) VALUES (424242, 'x', 'other', '', '')")
        .execute(&mut *conn)
        .await;
    assert!(r.is_err());
}

/// A site on the oldest schema (0001_core, before audit chaining, sessions, the outbox and
/// encrypted personal data), filled as that version wrote its rows, upgrades to the current
/// schema with every record intact and usable.
async fn upgrade_from_the_first_schema(target: EmptyTarget) {
    let db = ferum::store::Db::connect(&target.url, 2).await.unwrap();
    let mut tx = db.begin().await.unwrap();
    migrate::build_schema(&mut tx, &[1]).await.unwrap();
    let ts = "2026-03-01T08:00:00.000000Z";
    let hash = ferum::auth::hash_password(PASSWORD).unwrap();
    let rows: Vec<(&str, Vec<&str>)> = vec![
        (
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (1, '0001_core', $1)",
            vec![ts],
        ),
        (
            "INSERT INTO customers (name, inn, contact_name, contact_email, contact_phone, created_at, updated_at) VALUES ('ООО Ромашка', '7707083893', 'Ирина', 'office@romashka.ru', '+7 900 000-00-01', $1, $1)",
            vec![ts],
        ),
        (
            "INSERT INTO users (email, name, phone, roles, password_hash, created_at, updated_at) VALUES ('boss@example.ru', 'Директор', '', 'admin', $1, $2, $2)",
            vec![&hash, ts],
        ),
        (
            "INSERT INTO users (email, name, phone, roles, password_hash, created_at, updated_at) VALUES ('eng@example.ru', 'Инженер', '+7 900 000-00-02', 'engineer', $1, $2, $2)",
            vec![&hash, ts],
        ),
        (
            "INSERT INTO users (email, name, roles, customer_id, password_hash, created_at, updated_at) VALUES ('client@romashka.ru', 'Клиент', 'client', 1, $1, $2, $2)",
            vec![&hash, ts],
        ),
        (
            "INSERT INTO service_objects (customer_id, name, kind, serial_number, created_at, updated_at) VALUES (1, 'Склад №1', 'fire_alarm', 'SN-1', $1, $1)",
            vec![ts],
        ),
        (
            "INSERT INTO object_engineers (object_id, user_id) VALUES (1, 2)",
            vec![],
        ),
        (
            "INSERT INTO projects (customer_id, name, start_date, status, contract_value, created_at, updated_at) VALUES (1, 'Обслуживание 2026', '2026-01-01', 'active', 12000050, $1, $1)",
            vec![ts],
        ),
        (
            "INSERT INTO project_objects (project_id, object_id) VALUES (1, 1)",
            vec![],
        ),
        (
            "INSERT INTO service_requests (number, type, subject, description, customer_id, project_id, object_id, assigned_to, source, status, assign_by, close_by, created_at, updated_at, created_by) VALUES ('SR-2026-00001', 'maintenance', 'Не работает датчик', 'Дымовой датчик в зале', 1, 1, 1, 2, 'phone', 'open', '2026-03-01T11:00:00.000000Z', '2026-03-04T08:00:00.000000Z', $1, $1, 1)",
            vec![ts],
        ),
        (
            "INSERT INTO request_history (request_id, user_id, from_status, to_status, created_at) VALUES (1, 1, NULL, 'open', $1)",
            vec![ts],
        ),
        (
            "INSERT INTO request_comments (request_id, author_id, body, created_at) VALUES (1, 2, 'Выезжаю', $1)",
            vec![ts],
        ),
        (
            "INSERT INTO number_sequences (kind, year, last) VALUES ('SR', 2026, 1)",
            vec![],
        ),
        (
            "INSERT INTO audit_log (at, user_id, action, entity, entity_id, after_json) VALUES ($1, 1, 'create', 'customer', 1, '{\"name\":\"ООО Ромашка\"}')",
            vec![ts],
        ),
        (
            "INSERT INTO audit_log (at, user_id, action, entity, entity_id, after_json) VALUES ($1, 1, 'create', 'service_request', 1, '{\"number\":\"SR-2026-00001\"}')",
            vec![ts],
        ),
    ];
    for (sql, binds) in rows {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(b.to_owned());
        }
        q.execute(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    tx.commit().await.unwrap();
    db.close().await;

    // Opening it as `ferum serve` would: every migration, every patch, encryption at rest.
    let key = ferum::crypto::DataKeys::generate().to_config_string();
    let (app, _dir) = target.into_app(&key).await;
    assert_eq!(
        migrate::status(&app.db).await.unwrap(),
        migrate::Status {
            current: migrate::latest_version(),
            pending: vec![]
        }
    );
    assert!(
        migrate::run(&app.db, app.clock.now())
            .await
            .unwrap()
            .is_noop(),
        "a second run does nothing"
    );

    let admin = app.token_for(1).await;
    let engineer = app.token_for(2).await;
    let get = |path: &'static str, token: String| {
        let app = &app;
        async move { app.call(Method::GET, path, Some(&token), None).await }
    };
    let c = get("/api/v1/customers/1", admin.clone()).await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.body);
    assert_eq!(c.body["name"], "ООО Ромашка");
    assert_eq!(c.body["contact_email"], "office@romashka.ru");
    assert_eq!(c.body["contact_phone"], "+7 900 000-00-01");
    let stored: String = sqlx::query_scalar("SELECT contact_email FROM customers WHERE id = 1")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    assert!(
        stored.starts_with("enc:"),
        "personal data is encrypted at rest after the upgrade: {stored}"
    );

    let r = get("/api/v1/requests/1", engineer.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["number"], "SR-2026-00001");
    assert_eq!(r.body["status"], "open");
    assert_eq!(r.body["assigned_to"], 2);
    let p = get("/api/v1/projects/1", admin.clone()).await;
    assert_eq!(p.body["contract_value"], "120000.50", "{}", p.body);
    // Search keys were filled by the data patch.
    let found = get(
        "/api/v1/requests?q=%D0%94%D0%90%D0%A2%D0%A7%D0%98%D0%9A",
        admin.clone(),
    )
    .await;
    assert_eq!(found.ids(), vec![1], "{}", found.body);
    let history = get("/api/v1/requests/1/history", admin.clone()).await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.body);
    let comments = get("/api/v1/requests/1/comments", admin.clone()).await;
    assert_eq!(comments.status, StatusCode::OK, "{}", comments.body);
    assert!(
        comments.body.to_string().contains("Выезжаю"),
        "{}",
        comments.body
    );

    // The old audit entries were chained, and the chain holds.
    assert_eq!(ferum::store::audit::verify(&app.db).await.unwrap(), Ok(2));

    // Users sign in with their old passwords, e-mails found through the new blind index.
    let login = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(serde_json::json!({"email": "client@romashka.ru", "password": PASSWORD})),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let client = login.body["access_token"].as_str().unwrap().to_owned();
    let mine = get("/api/v1/requests", client).await;
    assert_eq!(mine.ids(), vec![1]);

    // New work continues the old numbering.
    let new = app
        .call(
            Method::POST,
            "/api/v1/requests",
            Some(&admin),
            Some(serde_json::json!({"type": "emergency", "subject": "Сработка", "object_id": 1})),
        )
        .await;
    assert_eq!(new.status, StatusCode::CREATED, "{}", new.body);
    assert_eq!(new.body["number"], "SR-2026-00002");
    assert_eq!(new.body["id"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_schema_sqlite_site_upgrades_with_its_data_intact() {
    upgrade_from_the_first_schema(EmptyTarget::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_schema_postgres_site_upgrades_with_its_data_intact() {
    if let Some(target) = EmptyTarget::postgres().await {
        upgrade_from_the_first_schema(target).await;
    }
}
