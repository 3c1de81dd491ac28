//! `ferum worker` as its own process, over real SMTP and HTTP to local fakes: it delivers,
//! stops on SIGTERM, and what a worker killed mid-delivery held is delivered after a restart.

use crate::fakes::{FakeTelegram, SilentServer, SmtpSink};
use crate::support::*;
use axum::http::StatusCode;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "123456789:test-token-abcdefghijklmnop";

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `ferum worker` on the app's database, mailing through `smtp` and posting to the
/// Telegram fake at `telegram`.
fn start_worker(app: &TestApp, dir: &std::path::Path, smtp: &str, telegram: &str) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_ferum"))
        .arg("worker")
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", app.url.as_str())
        .env("FERUM_DATA_DIR", dir.join("data"))
        .env("FERUM_DATA_KEY", &app.data_key)
        .env("FERUM_LOG", "warn")
        .env("FERUM_SMTP_URL", smtp)
        .env("FERUM_MAIL_FROM", "Ferum <noreply@example.ru>")
        .env("FERUM_SMTP_TIMEOUT_SECS", "600")
        .env("FERUM_TELEGRAM_BOT_TOKEN", TOKEN)
        .env("FERUM_TELEGRAM_API_URL", telegram)
        .env("FERUM_PUBLIC_URL", "https://desk.example.ru")
        .env("FERUM_WORKER_LEASE_SECS", "3")
        .env("FERUM_SHUTDOWN_GRACE_SECS", "2")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Running(child)
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn outbox_states(app: &TestApp) -> Vec<(String, String)> {
    sqlx::query_as("SELECT kind, status FROM outbox ORDER BY id")
        .fetch_all(app.db.pool())
        .await
        .unwrap()
}

/// Waits until every outbox row is delivered.
async fn all_delivered(app: &TestApp) {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = outbox_states(app).await;
        if rows.iter().all(|(_, s)| s == "delivered") {
            return;
        }
        assert!(Instant::now() < until, "not all delivered: {rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

both! {
    // The worker process sends the messages of a new request by SMTP and the Bot API, and
    // stops promptly on SIGTERM.
    async fn the_worker_process_delivers_over_smtp_and_telegram(app) {
        let w = app.world().await;
        let v = app.get(&format!("/api/v1/users/{}", w.engineer.id), &w.admin).await.body["version"].as_i64().unwrap();
        app.patch(&format!("/api/v1/users/{}", w.engineer.id), &w.admin, json!({"version": v, "telegram_chat_id": "424242"}))
            .await
            .assert(StatusCode::OK);
        let r = app
            .post("/api/v1/requests", &w.admin, json!({"type": "emergency", "subject": "Сработал датчик дыма", "object_id": w.object, "assigned_to": w.engineer.id}))
            .await;
        r.assert(StatusCode::CREATED);
        let number = r.body["number"].as_str().unwrap().to_owned();
        let sink = SmtpSink::start().await;
        let telegram = FakeTelegram::start().await;
        let dir = tempfile::tempdir().unwrap();
        let mut worker = start_worker(&app, dir.path(), &sink.url(), &telegram.url());
        wait_for("the engineer's e-mails", Duration::from_secs(30), || {
            sink.received().iter().filter(|m| m.rcpt_to.contains(&w.engineer.email)).count() >= 2
        })
        .await;
        wait_for("the engineer's Telegram messages", Duration::from_secs(30), || telegram.delivered().len() >= 2).await;
        let mails = sink.received();
        let alert = mails
            .iter()
            .find(|m| m.rcpt_to.contains(&w.engineer.email) && m.subject().is_some_and(|s| s.contains("АВАРИЙНАЯ")))
            .expect("the emergency alert by e-mail");
        assert!(alert.subject().unwrap().contains(&number));
        assert!(alert.part("text/plain").unwrap().contains("https://desk.example.ru/requests/"));
        for sent in telegram.delivered() {
            assert_eq!(sent["chat_id"], json!(424242), "{sent}");
            // The line once, then the link.
            assert_eq!(sent["text"].as_str().unwrap().matches(&number).count(), 1, "{sent}");
        }
        // Everything the request raised was delivered, and only once to each address.
        all_delivered(&app).await;
        // Nothing twice: each (address, message) once. The worker's own SLA sweep, on the
        // real clock, also found the request (opened "in March") past its closing deadline
        // and told the administrator.
        let mut seen: Vec<(Vec<String>, Option<String>)> =
            sink.received().iter().map(|m| (m.rcpt_to.clone(), m.subject())).collect();
        let n = seen.len();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), n, "a message arrived twice: {seen:?}");
        assert!(
            seen.iter().any(|(to, subject)| to.contains(&w.admin.email)
                && subject.as_deref().is_some_and(|s| s.contains("пропущен"))),
            "{seen:?}"
        );
        let started = Instant::now();
        let status = Command::new("kill").args(["-TERM", &worker.0.id().to_string()]).status().unwrap();
        assert!(status.success());
        let exit = loop {
            if let Some(code) = worker.0.try_wait().unwrap() {
                break code;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "the worker ignored SIGTERM");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(exit.success(), "{exit}");
    }

    // A worker killed with -9 while a message is on its way leaves it claimed; after the
    // lease a restarted worker delivers it.
    async fn a_message_held_by_a_killed_worker_is_delivered_after_a_restart(app) {
        let w = app.world().await;
        app.post("/api/v1/requests", &w.admin, json!({"type": "maintenance", "subject": "Плановое ТО", "object_id": w.object, "assigned_to": w.engineer.id}))
            .await
            .assert(StatusCode::CREATED);
        let silent = SilentServer::start().await;
        let telegram = FakeTelegram::start().await;
        let dir = tempfile::tempdir().unwrap();
        let hung = start_worker(&app, dir.path(), &format!("smtp://{}?tls=off", silent.addr), &telegram.url());
        // Wait until it is stuck sending an e-mail: a message row claimed and attempted.
        let pool = app.db.pool().clone();
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE kind = 'email' AND claimed_by IS NOT NULL AND attempts = 1 AND status = 'pending'")
                .fetch_one(&pool)
                .await
                .unwrap();
            if held > 0 {
                break;
            }
            assert!(Instant::now() < until, "the worker never started sending: {:?}", outbox_states(&app).await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut hung = hung;
        Command::new("kill").args(["-KILL", &hung.0.id().to_string()]).status().unwrap();
        let _ = hung.0.wait();
        drop(hung);
        let sink = SmtpSink::start().await;
        let _worker = start_worker(&app, dir.path(), &sink.url(), &telegram.url());
        wait_for("the held e-mails after the restart", Duration::from_secs(30), || {
            sink.received().iter().filter(|m| m.rcpt_to.contains(&w.engineer.email)).count() >= 2
        })
        .await;
        all_delivered(&app).await;
        let attempts: Vec<i64> = sqlx::query_scalar("SELECT attempts FROM outbox WHERE kind = 'email' ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert!(attempts.contains(&2), "the held one was tried again after the kill: {attempts:?}");
    }
}
