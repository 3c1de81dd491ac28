//! Migrations and the command line, run as a user would run them.

use crate::support::*;
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
