//! Events in the outbox, written by the writes that cause them, and the worker that turns
//! them into messages for the right people.

use crate::support::*;
use axum::http::StatusCode;
use ferum::domain::access::Role;
use ferum::jobs::notify::Composer;
use ferum::jobs::worker::{Pass, Worker, WorkerConfig};
use ferum::notify::{Channel, DeliveryError, Notifier, Recording};
use serde_json::json;

/// The kinds of the events queued so far, in order.
async fn kinds(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT kind FROM outbox WHERE kind NOT IN ('email', 'telegram') ORDER BY id",
    )
    .fetch_all(app.db.pool())
    .await
    .unwrap()
}

fn worker(app: &TestApp, max_attempts: i64) -> (Worker, Recording) {
    let (notifier, recording) = Notifier::recording();
    let w = Worker {
        db: app.db.clone(),
        notifier: std::sync::Arc::new(notifier),
        composer: Composer {
            db: app.db.clone(),
            public_url: Some("https://desk.example.ru".into()),
            tz: chrono_tz::Europe::Moscow,
            channels: Channel::ALL.to_vec(),
        },
        clock: app.clock.clone(),
        id: "test-worker".into(),
        config: WorkerConfig {
            max_attempts,
            ..WorkerConfig::default()
        },
    };
    (w, recording)
}

/// Runs passes until nothing is due.
async fn drain(w: &Worker) -> Pass {
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let mut total = Pass::default();
    for _ in 0..20 {
        let p = w.pass(&stopped).await.unwrap();
        if p.claimed == 0 {
            break;
        }
        total.claimed += p.claimed;
        total.delivered += p.delivered;
        total.retried += p.retried;
        total.dead += p.dead;
    }
    total
}

/// Who got e-mail: the addresses, sorted.
fn mailed(r: &Recording) -> Vec<String> {
    let mut to: Vec<String> = r
        .sent_on(Channel::Email)
        .into_iter()
        .map(|m| m.to)
        .collect();
    to.sort();
    to
}

both! {
    // Each write queues its events in its own transaction; a refused write queues nothing.
    async fn writes_queue_their_events_and_refused_writes_none(app) {
        let w = app.world().await;
        let other = app.user(&[Role::Engineer], None).await;
        let head = app.user(&[Role::DepartmentHead], None).await;
        let r = app
            .post("/api/v1/requests", &w.admin, json!({"type": "emergency", "subject": "Пожар", "object_id": w.object, "assigned_to": w.engineer.id}))
            .await;
        r.assert(StatusCode::CREATED);
        let id = r.id();
        // The world's project was created active: its welcome came first.
        assert_eq!(kinds(&app).await, ["project_activated", "request_opened", "request_assigned"]);
        app.post("/api/v1/requests", &w.admin, json!({"type": "emergency", "subject": "", "object_id": w.object}))
            .await
            .assert(StatusCode::UNPROCESSABLE_ENTITY);
        app.put(&format!("/api/v1/requests/{id}/status"), &w.engineer, json!({"status": "closed"}))
            .await
            .assert(StatusCode::CONFLICT);
        assert_eq!(kinds(&app).await.len(), 3, "refused writes queued events");
        // Reassigning queues an assignment; saving the same engineer again does not.
        let v = app.get(&format!("/api/v1/requests/{id}"), &w.admin).await.body["version"].as_i64().unwrap();
        app.patch(&format!("/api/v1/requests/{id}"), &w.admin, json!({"version": v, "assigned_to": other.id}))
            .await
            .assert(StatusCode::OK);
        let v = app.get(&format!("/api/v1/requests/{id}"), &w.admin).await.body["version"].as_i64().unwrap();
        app.patch(&format!("/api/v1/requests/{id}"), &w.admin, json!({"version": v, "assigned_to": other.id, "subject": "Пожар на складе"}))
            .await
            .assert(StatusCode::OK);
        app.put(&format!("/api/v1/requests/{id}/status"), &other, json!({"status": "in_progress"}))
            .await
            .assert(StatusCode::OK);
        let report = app.report(&other, id).await;
        let rid = report["id"].as_i64().unwrap();
        app.post(&format!("/api/v1/reports/{rid}/submit"), &other, json!({})).await.assert(StatusCode::OK);
        app.post(&format!("/api/v1/reports/{rid}/approve"), &head, json!({})).await.assert(StatusCode::OK);
        assert_eq!(
            kinds(&app).await,
            ["project_activated", "request_opened", "request_assigned", "request_assigned",
             "status_changed", "status_changed", "report_submitted", "report_approved"]
        );
        // A project becoming active welcomes its customer once.
        let p = app.project(&w.admin, w.customer, &[], "planned").await;
        let v = app.get(&format!("/api/v1/projects/{p}"), &w.admin).await.body["version"].as_i64().unwrap();
        app.patch(&format!("/api/v1/projects/{p}"), &w.admin, json!({"version": v, "status": "active"}))
            .await
            .assert(StatusCode::OK);
        let v = app.get(&format!("/api/v1/projects/{p}"), &w.admin).await.body["version"].as_i64().unwrap();
        app.patch(&format!("/api/v1/projects/{p}"), &w.admin, json!({"version": v, "name": "Новое имя"}))
            .await
            .assert(StatusCode::OK);
        // The world's own project was created active: one welcome for it, one for this.
        let welcomes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE kind = 'project_activated'")
            .fetch_one(app.db.pool())
            .await
            .unwrap();
        assert_eq!(welcomes, 2);
    }

    // The worker tells the people whose work it is, and no one else.
    async fn notifications_reach_the_right_people_and_no_one_else(app) {
        let admin = app.user(&[Role::Admin], None).await;
        let manager = app.user(&[Role::ProjectManager], None).await;
        let engineer = app.user(&[Role::Engineer], None).await;
        let site_engineer = app.user(&[Role::Engineer], None).await;
        let stranger = app.user(&[Role::Engineer], None).await;
        let customer = app.customer(&admin, "ООО Ромашка", next_inn()).await;
        let other_customer = app.customer(&admin, "ООО Лютик", next_inn()).await;
        let client = app.user(&[Role::Client], Some(customer)).await;
        let other_client = app.user(&[Role::Client], Some(other_customer)).await;
        let object = app.object(&admin, customer, "Склад").await;
        let v = app.get(&format!("/api/v1/objects/{object}"), &admin).await.body["version"].as_i64().unwrap();
        app.patch(&format!("/api/v1/objects/{object}"), &admin, json!({"version": v, "engineers": [site_engineer.id]}))
            .await
            .assert(StatusCode::OK);
        let project = app
            .post("/api/v1/projects", &admin, json!({"customer_id": customer, "name": "Договор", "start_date": "2026-01-01", "status": "active", "manager_id": manager.id, "objects": [{"object_id": object}]}))
            .await;
        project.assert(StatusCode::CREATED);
        let (w, sent) = worker(&app, 8);
        drain(&w).await;
        // The welcome went to the customer's contact only.
        assert_eq!(mailed(&sent), ["boss@example.ru"]);
        assert!(sent.sent_on(Channel::Email)[0].text.contains("Договор"));
        sent.clear();

        let r = app
            .post("/api/v1/requests", &admin, json!({"type": "emergency", "subject": "Сработала сигнализация", "object_id": object, "assigned_to": engineer.id}))
            .await;
        r.assert(StatusCode::CREATED);
        let id = r.id();
        let number = r.body["number"].as_str().unwrap().to_owned();
        drain(&w).await;
        let mut expected = vec![admin.email.clone(), manager.email.clone(), engineer.email.clone(), site_engineer.email.clone()];
        expected.sort();
        let got = mailed(&sent);
        for who in [&stranger.email, &client.email, &other_client.email] {
            assert!(!got.contains(who), "{who} heard of an emergency that is not theirs: {got:?}");
        }
        let mut distinct = got.clone();
        distinct.dedup();
        assert_eq!(distinct, expected);
        let to_engineer: Vec<_> = sent.sent_on(Channel::Email).into_iter().filter(|m| m.to == engineer.email).collect();
        assert_eq!(to_engineer.len(), 2, "the alert and the assignment: {to_engineer:?}");
        assert!(to_engineer.iter().any(|m| m.text.contains("АВАРИЙНАЯ") && m.text.contains(&number)));
        assert_eq!(to_engineer[0].link.as_deref(), Some(format!("https://desk.example.ru/requests/{id}").as_str()));
        sent.clear();

        // A status change reaches the customer's contact and its client users only, in
        // words a client may read.
        app.put(&format!("/api/v1/requests/{id}/status"), &engineer, json!({"status": "in_progress", "comment": "внутреннее"}))
            .await
            .assert(StatusCode::OK);
        drain(&w).await;
        let mut expected = vec!["boss@example.ru".to_owned(), client.email.clone()];
        expected.sort();
        assert_eq!(mailed(&sent), expected);
        for m in sent.sent_on(Channel::Email) {
            assert!(m.text.contains("В работе") && m.text.contains(&number), "{}", m.text);
            assert!(!m.text.contains("внутреннее"), "a staff comment reached a client: {}", m.text);
        }
    }

    // A user's own language and Telegram chat.
    async fn messages_are_in_the_recipients_language_and_on_their_channels(app) {
        let w = app.world().await;
        let v = app.get(&format!("/api/v1/users/{}", w.engineer.id), &w.admin).await.body["version"].as_i64().unwrap();
        app.patch(&format!("/api/v1/users/{}", w.engineer.id), &w.admin, json!({"version": v, "lang": "en", "telegram_chat_id": "123456789"}))
            .await
            .assert(StatusCode::OK);
        let v = v + 1;
        for (field, bad) in [("lang", json!("de")), ("telegram_chat_id", json!("@me"))] {
            let r = app.patch(&format!("/api/v1/users/{}", w.engineer.id), &w.admin, json!({"version": v, field: bad})).await;
            r.assert(StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(r.fields(), vec![field]);
        }
        let (wk, sent) = worker(&app, 8);
        drain(&wk).await;
        sent.clear();
        let r = app
            .post("/api/v1/requests", &w.admin, json!({"type": "maintenance", "subject": "ТО", "object_id": w.object, "assigned_to": w.engineer.id}))
            .await;
        r.assert(StatusCode::CREATED);
        drain(&wk).await;
        let mail: Vec<_> = sent.sent_on(Channel::Email).into_iter().filter(|m| m.to == w.engineer.email).collect();
        assert!(mail.iter().any(|m| m.text.starts_with("Request ") && m.text.contains("is assigned to you")), "{mail:?}");
        let chats = sent.sent_on(Channel::Telegram);
        assert!(chats.iter().any(|m| m.to == "123456789" && m.text.contains("is assigned to you")), "{chats:?}");
        // Nobody else has a chat linked.
        assert!(chats.iter().all(|m| m.to == "123456789"));
        // Without e-mail, only Telegram; with neither, nothing.
        let v = app.get(&format!("/api/v1/users/{}", w.engineer.id), &w.admin).await.body["version"].as_i64().unwrap();
        app.patch(&format!("/api/v1/users/{}", w.engineer.id), &w.admin, json!({"version": v, "notify_email": false}))
            .await
            .assert(StatusCode::OK);
        sent.clear();
        app.post("/api/v1/requests", &w.admin, json!({"type": "maintenance", "subject": "ТО-2", "object_id": w.object, "assigned_to": w.engineer.id}))
            .await
            .assert(StatusCode::CREATED);
        drain(&wk).await;
        assert!(!mailed(&sent).contains(&w.engineer.email));
        assert!(sent.sent_on(Channel::Telegram).iter().any(|m| m.text.contains("ТО-2")));
        app.patch(&format!("/api/v1/users/{}", w.engineer.id), &w.admin, json!({"version": v + 1, "notify_telegram": false}))
            .await
            .assert(StatusCode::OK);
        sent.clear();
        app.post("/api/v1/requests", &w.admin, json!({"type": "maintenance", "subject": "ТО-3", "object_id": w.object, "assigned_to": w.engineer.id}))
            .await
            .assert(StatusCode::CREATED);
        drain(&wk).await;
        assert!(sent.sent().is_empty(), "{:?}", sent.sent());
    }

    // A failing channel is retried with back-off, then given up; an administrator sees it
    // with its error and sends it again; nobody else sees the outbox.
    async fn failures_back_off_then_die_and_administrators_retry_them(app) {
        let w = app.world().await;
        let (wk, sent) = worker(&app, 2);
        drain(&wk).await;
        sent.clear();
        app.post("/api/v1/requests", &w.admin, json!({"type": "maintenance", "subject": "ТО", "object_id": w.object, "assigned_to": w.engineer.id}))
            .await
            .assert(StatusCode::CREATED);
        // Two e-mails to the engineer (opened, assigned): fail each of them twice.
        for _ in 0..4 {
            sent.fail_next(Channel::Email, DeliveryError::retryable("connection refused"));
        }
        let first = drain(&wk).await;
        assert!(first.retried > 0, "{first:?}");
        let due: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT next_attempt_at, last_error FROM outbox WHERE kind = 'email' AND status = 'pending'",
        )
        .fetch_all(app.db.pool())
        .await
        .unwrap();
        assert!(!due.is_empty());
        for (at, err) in &due {
            assert!(at.as_str() > ferum::domain::time::to_db(app.clock.now()).as_str(), "not backed off: {at}");
            assert_eq!(err.as_deref(), Some("connection refused"));
        }
        // Nothing is due until the back-off passes.
        assert_eq!(drain(&wk).await.claimed, 0);
        app.clock.advance(chrono::Duration::minutes(2));
        let second = drain(&wk).await;
        assert_eq!(second.dead, 2, "{second:?}");
        assert!(sent.sent_on(Channel::Email).is_empty());

        let dead = app.get("/api/v1/outbox?status=dead", &w.admin).await;
        dead.assert(StatusCode::OK);
        let items = dead.body["items"].as_array().unwrap().clone();
        assert!(!items.is_empty());
        assert_eq!(items[0]["last_error"], "connection refused");
        assert_eq!(items[0]["attempts"], 2);
        let id = items[0]["id"].as_i64().unwrap();
        for nobody in [&w.engineer] {
            app.get("/api/v1/outbox", nobody).await.problem(StatusCode::NOT_FOUND, "not_found");
            app.post(&format!("/api/v1/outbox/{id}/retry"), nobody, json!({})).await.problem(StatusCode::NOT_FOUND, "not_found");
        }
        let retried = app.post(&format!("/api/v1/outbox/{id}/retry"), &w.admin, json!({})).await;
        retried.assert(StatusCode::OK);
        assert_eq!(retried.body["status"], "pending");
        drain(&wk).await;
        assert_eq!(sent.sent_on(Channel::Email).len(), 1);
        app.post(&format!("/api/v1/outbox/{id}/retry"), &w.admin, json!({}))
            .await
            .problem(StatusCode::CONFLICT, "already_delivered");
        app.get("/api/v1/outbox?status=nonsense", &w.admin).await.assert(StatusCode::UNPROCESSABLE_ENTITY);
    }

    // The SLA sweep warns at 80 % of a deadline and raises a breach when it passes, once
    // each, under a lease that keeps a second instance from sweeping at the same time; the
    // heads of service and administrators hear of it, nobody else.
    async fn the_sla_sweep_warns_and_escalates_once_per_deadline(app) {
        use ferum::jobs::sweep::sweep;
        let w = app.world().await;
        let head = app.user(&[Role::DepartmentHead], None).await;
        let every = chrono::Duration::seconds(60);
        let r = app
            .post("/api/v1/requests", &w.admin, json!({"type": "emergency", "subject": "Дым", "object_id": w.object}))
            .await;
        r.assert(StatusCode::CREATED);
        let (wk, sent) = worker(&app, 8);
        drain(&wk).await;
        sent.clear();
        let sla = |app: &TestApp| {
            let pool = app.db.pool().clone();
            async move {
                sqlx::query_scalar::<_, String>("SELECT kind FROM outbox WHERE kind LIKE 'sla_%' ORDER BY id")
                    .fetch_all(&pool)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(sweep(&app.db, "a", app.clock.now(), every, 80, chrono_tz::Europe::Moscow).await.unwrap(), Some(0));
        // Another instance may not sweep while the lease runs; the holder renews it.
        assert_eq!(sweep(&app.db, "b", app.clock.now(), every, 80, chrono_tz::Europe::Moscow).await.unwrap(), None);
        app.clock.advance(chrono::Duration::minutes(12));
        assert_eq!(sweep(&app.db, "a", app.clock.now(), every, 80, chrono_tz::Europe::Moscow).await.unwrap(), Some(1));
        assert_eq!(sweep(&app.db, "b", app.clock.now(), every, 80, chrono_tz::Europe::Moscow).await.unwrap(), None);
        assert_eq!(sweep(&app.db, "a", app.clock.now(), every, 80, chrono_tz::Europe::Moscow).await.unwrap(), Some(0));
        assert_eq!(sla(&app).await, ["sla_warning"]);
        app.clock.advance(chrono::Duration::minutes(3));
        assert_eq!(sweep(&app.db, "b", app.clock.now(), every, 80, chrono_tz::Europe::Moscow).await.unwrap(), Some(1));
        assert_eq!(sla(&app).await, ["sla_warning", "sla_breached"]);
        drain(&wk).await;
        let mut expected = vec![w.admin.email.clone(), head.email.clone()];
        expected.sort();
        let mut got = mailed(&sent);
        got.dedup();
        assert_eq!(got, expected);
        assert!(sent.sent_on(Channel::Email).iter().any(|m| m.text.contains("пропущен")));
    }

    // Each project manager gets the day's list of overdue requests in their projects, once a
    // day, from 09:00 of the company's day; nobody else gets it.
    async fn project_managers_get_a_daily_digest_of_their_overdue_requests(app) {
        use ferum::jobs::sweep::sweep;
        let admin = app.user(&[Role::Admin], None).await;
        let manager = app.user(&[Role::ProjectManager], None).await;
        let other_manager = app.user(&[Role::ProjectManager], None).await;
        let customer = app.customer(&admin, "ООО Ромашка", next_inn()).await;
        let object = app.object(&admin, customer, "Склад").await;
        app.post("/api/v1/projects", &admin, json!({"customer_id": customer, "name": "Договор", "start_date": "2026-01-01", "status": "active", "manager_id": manager.id, "objects": [{"object_id": object}]}))
            .await
            .assert(StatusCode::CREATED);
        let r = app.post("/api/v1/requests", &admin, json!({"type": "maintenance", "subject": "Замена датчика", "object_id": object})).await;
        r.assert(StatusCode::CREATED);
        let number = r.body["number"].as_str().unwrap().to_owned();
        let (wk, sent) = worker(&app, 8);
        drain(&wk).await;
        sent.clear();
        let every = chrono::Duration::seconds(60);
        let moscow = chrono_tz::Europe::Moscow;
        let digests = |app: &TestApp| {
            let pool = app.db.pool().clone();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM outbox WHERE kind = 'overdue_digest'")
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            }
        };
        // 12:00 in Moscow, nothing overdue yet.
        sweep(&app.db, "a", app.clock.now(), every, 80, moscow).await.unwrap();
        assert_eq!(digests(&app).await, 0);
        // Four hours later the assignment deadline (three hours) has passed.
        app.clock.advance(chrono::Duration::hours(4));
        sweep(&app.db, "a", app.clock.now(), every, 80, moscow).await.unwrap();
        app.clock.advance(chrono::Duration::minutes(2));
        sweep(&app.db, "a", app.clock.now(), every, 80, moscow).await.unwrap();
        assert_eq!(digests(&app).await, 1, "once a day");
        drain(&wk).await;
        let to_manager: Vec<_> = sent.sent_on(Channel::Email).into_iter().filter(|m| m.to == manager.email).collect();
        let digest = to_manager.iter().find(|m| m.text.starts_with("Просроченные заявки")).expect("the digest");
        assert!(digest.text.contains(&number) && digest.text.contains("Замена датчика"), "{}", digest.text);
        assert!(!mailed(&sent).contains(&other_manager.email));
        // Before 09:00 of the next day in Moscow (05:30 UTC = 08:30), no new digest; after, one.
        let next_morning = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 3, 3, 5, 30, 0).unwrap();
        app.clock.advance(next_morning - app.clock.now());
        sweep(&app.db, "a", app.clock.now(), every, 80, moscow).await.unwrap();
        assert_eq!(digests(&app).await, 1);
        app.clock.advance(chrono::Duration::hours(1));
        sweep(&app.db, "a", app.clock.now(), every, 80, moscow).await.unwrap();
        assert_eq!(digests(&app).await, 2);
    }

    // A channel the site has not configured gets no messages: the event is done without
    // filling the outbox with messages that could never be sent.
    async fn unconfigured_channels_get_no_messages(app) {
        let w = app.world().await;
        let (mut wk, sent) = worker(&app, 8);
        wk.composer.channels = vec![Channel::Email];
        let v = app.get(&format!("/api/v1/users/{}", w.engineer.id), &w.admin).await.body["version"].as_i64().unwrap();
        app.patch(&format!("/api/v1/users/{}", w.engineer.id), &w.admin, json!({"version": v, "telegram_chat_id": "777"}))
            .await
            .assert(StatusCode::OK);
        app.post("/api/v1/requests", &w.admin, json!({"type": "maintenance", "subject": "ТО", "object_id": w.object, "assigned_to": w.engineer.id}))
            .await
            .assert(StatusCode::CREATED);
        drain(&wk).await;
        assert!(sent.sent_on(Channel::Telegram).is_empty());
        assert!(!sent.sent_on(Channel::Email).is_empty());
        wk.composer.channels = vec![];
        app.post("/api/v1/requests", &w.admin, json!({"type": "maintenance", "subject": "ТО-2", "object_id": w.object, "assigned_to": w.engineer.id}))
            .await
            .assert(StatusCode::CREATED);
        let before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox").fetch_one(app.db.pool()).await.unwrap();
        drain(&wk).await;
        let after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox").fetch_one(app.db.pool()).await.unwrap();
        assert_eq!(before, after, "messages were queued for no channel");
        let waiting: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE status <> 'delivered'").fetch_one(app.db.pool()).await.unwrap();
        assert_eq!(waiting, 0);
    }

    // A permanent refusal (an unknown mailbox) is not retried.
    async fn permanent_refusals_are_not_retried(app) {
        let w = app.world().await;
        let (wk, sent) = worker(&app, 8);
        drain(&wk).await;
        sent.clear();
        app.post("/api/v1/requests", &w.admin, json!({"type": "maintenance", "subject": "ТО", "object_id": w.object, "assigned_to": w.engineer.id}))
            .await
            .assert(StatusCode::CREATED);
        for _ in 0..10 {
            sent.fail_next(Channel::Email, DeliveryError::permanent("550 no such mailbox"));
        }
        let p = drain(&wk).await;
        assert!(p.dead > 0 && p.retried == 0, "{p:?}");
    }
}

// Two workers on PostgreSQL share a queue of 10,000 messages: each is delivered, and only
// once, by the workers' own claiming (`FOR UPDATE SKIP LOCKED`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_deliver_ten_thousand_messages_once_each() {
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    let now = ferum::domain::time::to_db(app.clock.now());
    sqlx::query(&format!(
        "INSERT INTO outbox (kind, payload, dedup_key, status, created_at, next_attempt_at) \
         SELECT 'email', '{{\"event_id\":0,\"to\":\"user' || g || '@example.ru\",\"subject\":\"s\",\"text\":\"t\",\"link\":null}}', \
         'bulk:' || g, 'pending', '{now}', '{now}' FROM generate_series(1, 10000) g"
    ))
    .execute(app.db.pool())
    .await
    .unwrap();
    let (a, sent_a) = worker(&app, 8);
    let (mut b, sent_b) = worker(&app, 8);
    b.id = "test-worker-b".into();
    let started = std::time::Instant::now();
    let run = |w: Worker| {
        tokio::spawn(async move {
            let (_stop, stopped) = tokio::sync::watch::channel(false);
            let mut delivered = 0;
            loop {
                let p = w.pass(&stopped).await.unwrap();
                if p.claimed == 0 {
                    break delivered;
                }
                delivered += p.delivered;
            }
        })
    };
    let (da, db) = (run(a), run(b));
    let (da, db) = (da.await.unwrap(), db.await.unwrap());
    let elapsed = started.elapsed();
    let mut ids: Vec<String> = sent_a
        .sent_on(Channel::Email)
        .into_iter()
        .chain(sent_b.sent_on(Channel::Email))
        .map(|m| m.id.unwrap())
        .collect();
    assert_eq!(ids.len(), 10_000, "delivered {da} + {db}");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10_000, "a message was delivered twice");
    assert!(da > 0 && db > 0, "one worker did all the work: {da} / {db}");
    let pending: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE status <> 'delivered'")
            .fetch_one(app.db.pool())
            .await
            .unwrap();
    assert_eq!(pending, 0);
    eprintln!("two workers delivered 10,000 messages in {elapsed:?} ({da} + {db})");
}
