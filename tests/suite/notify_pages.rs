//! The notification pages: the administrators' queue of the outbox (`/admin/outbox`) and
//! every user's own settings (`/account`), driven through the router as a browser would.

use crate::pages::{Browser, hidden, html, location};
use crate::support::*;
use axum::http::StatusCode;
use ferum::domain::access::Role;
use serde_json::json;

async fn scalar_i64(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
}

async fn scalar_text(app: &TestApp, sql: &str) -> String {
    sqlx::query_scalar(sql)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
}

async fn exec(app: &TestApp, sql: &str) {
    sqlx::query(sql).execute(app.db.pool()).await.unwrap();
}

/// The `<option>` of a language of messages, as the settings page draws it.
fn lang_option(code: &str, selected: bool) -> String {
    let label = if code == "ru" {
        "Русский"
    } else {
        "English"
    };
    let sel = if selected { " selected" } else { "" };
    format!("<option value=\"{code}\" lang=\"{code}\"{sel}>{label}</option>")
}

fn checkbox(name: &str, checked: bool) -> String {
    let c = if checked { " checked" } else { "" };
    format!("name=\"{name}\" value=\"1\"{c}>")
}

both! {
    async fn administrators_list_filter_and_retry_the_outbox(app) {
        app.reconfigure(|s| s.security.mfa_roles = vec![]);
        let w = app.world().await;
        app.request(&w.admin, w.object, "maintenance").await;
        let opened = scalar_i64(&app, "SELECT id FROM outbox WHERE kind = 'request_opened'").await;
        let welcome = scalar_i64(&app, "SELECT id FROM outbox WHERE kind = 'project_activated'").await;
        let mut admin = Browser::default();
        admin.sign_in(&app, &w.admin.email).await;

        // Every row, newest first, with readable kinds and statuses; the menu leads here.
        let page = admin.get(&app, "/admin/outbox").await;
        assert_eq!(page.status, StatusCode::OK, "{}", html(&page));
        let body = html(&page);
        assert!(body.contains("href=\"/admin/outbox\" aria-current=\"page\""), "{body}");
        assert!(body.contains("<span title=\"request_opened\">Событие: новая заявка</span>"), "{body}");
        assert!(body.contains("<span title=\"project_activated\">Событие: договор вступил в силу</span>"));
        assert!(body.contains("Ожидает"));
        assert!(
            body.find(&format!("id=\"outbox-{opened}\"")).unwrap() < body.find(&format!("id=\"outbox-{welcome}\"")).unwrap(),
            "newest first"
        );
        // Times in the company's time zone (the test clock starts at 09:00 UTC, 12:00 in Moscow).
        assert!(body.contains("02.03.2026 12:00"), "{body}");
        // In English too.
        admin.cookies.push(("ferum_lang".into(), "en".into()));
        let en = admin.get(&app, "/admin/outbox").await;
        assert!(html(&en).contains(">Event: request opened</span>"), "{}", html(&en));
        assert!(html(&en).contains("Pending"));
        admin.cookies.retain(|(k, _)| k != "ferum_lang");

        // One row dead after its attempts, another delivered.
        exec(&app, &format!("UPDATE outbox SET status = 'dead', attempts = 8, last_error = 'smtp: connection refused' WHERE id = {opened}")).await;
        exec(&app, &format!("UPDATE outbox SET status = 'delivered', delivered_at = created_at WHERE id = {welcome}")).await;
        let dead = admin.get(&app, "/admin/outbox?status=dead").await;
        let body = html(&dead);
        assert_eq!(dead.status, StatusCode::OK);
        assert!(body.contains("<option value=\"dead\" selected>Не доставлена</option>"), "{body}");
        assert!(body.contains(&format!("id=\"outbox-{opened}\"")), "{body}");
        assert!(!body.contains(&format!("id=\"outbox-{welcome}\"")), "the filter keeps to dead rows: {body}");
        assert!(body.contains("<code>smtp: connection refused</code>"));
        assert!(body.contains(&format!("action=\"/admin/outbox/{opened}/retry\"")));
        let delivered = admin.get(&app, "/admin/outbox?status=delivered").await;
        assert!(html(&delivered).contains(&format!("id=\"outbox-{welcome}\"")));
        assert!(!html(&delivered).contains(&format!("action=\"/admin/outbox/{welcome}/retry\"")), "a delivered row has no retry button");

        // Retrying the dead row: pending again, its attempts afresh, audited, back to the
        // same list with a notice.
        let r = admin.submit(&app, &dead, &format!("/admin/outbox/{opened}/retry"), &[("status", "dead")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        assert_eq!(location(&r), "/admin/outbox?status=dead&done=retried");
        let back = admin.get(&app, location(&r)).await;
        assert!(html(&back).contains("role=\"status\">Строка отправлена на повторную попытку."), "{}", html(&back));
        assert!(html(&back).contains("Строк нет."), "no dead rows left: {}", html(&back));
        assert_eq!(scalar_text(&app, &format!("SELECT status FROM outbox WHERE id = {opened}")).await, "pending");
        assert_eq!(scalar_i64(&app, &format!("SELECT attempts FROM outbox WHERE id = {opened}")).await, 0);
        let audited = scalar_i64(&app, &format!("SELECT COUNT(*) FROM audit_log WHERE action = 'retry' AND entity = 'outbox' AND entity_id = {opened} AND user_id = {}", w.admin.id)).await;
        assert_eq!(audited, 1);

        // A delivered row stays delivered: the list again with the refusal.
        let r = admin.submit(&app, &delivered, &format!("/admin/outbox/{welcome}/retry"), &[("status", "delivered")]).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", html(&r));
        assert!(html(&r).contains("role=\"alert\">Эта строка уже доставлена: повторять нечего."), "{}", html(&r));
        assert_eq!(scalar_text(&app, &format!("SELECT status FROM outbox WHERE id = {welcome}")).await, "delivered");
        // No such row, or no row id at all: the 404 page.
        let r = admin.submit(&app, &dead, "/admin/outbox/999999/retry", &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = admin.submit(&app, &dead, "/admin/outbox/abc/retry", &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        // Without the form token nothing happens.
        exec(&app, &format!("UPDATE outbox SET status = 'dead' WHERE id = {opened}")).await;
        let r = admin.post(&app, &format!("/admin/outbox/{opened}/retry"), &[]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(scalar_text(&app, &format!("SELECT status FROM outbox WHERE id = {opened}")).await, "dead");
        // An unknown status shows every row.
        let all = admin.get(&app, "/admin/outbox?status=lost").await;
        assert_eq!(all.status, StatusCode::OK);
        assert!(html(&all).contains("<option value=\"\" selected>Все</option>"), "{}", html(&all));

        // Pages of 50, the next one keeping the filter.
        for i in 0..50 {
            exec(&app, &format!("INSERT INTO outbox (kind, payload, dedup_key, status, attempts, created_at, next_attempt_at, last_error) \
                SELECT 'email', payload, 'copy-{i}', 'dead', 8, created_at, next_attempt_at, 'mailbox full' FROM outbox WHERE id = {opened}")).await;
        }
        let first = admin.get(&app, "/admin/outbox?status=dead").await;
        let body = html(&first);
        assert!(body.contains(">Письмо</span>"), "{body}");
        assert!(!body.contains(&format!("id=\"outbox-{opened}\"")), "the oldest dead row is on the next page");
        let next = body.split("<a rel=\"next\" href=\"").nth(1).unwrap().split('"').next().unwrap().replace("&#38;", "&").replace("&amp;", "&");
        assert!(next.starts_with("/admin/outbox?status=dead&cursor="), "{next}");
        let second = admin.get(&app, &next).await;
        assert!(html(&second).contains(&format!("id=\"outbox-{opened}\"")), "{}", html(&second));
        assert!(!html(&second).contains(&format!("id=\"outbox-{welcome}\"")));
        assert!(!html(&second).contains("rel=\"next\""));
    }

    async fn the_outbox_does_not_exist_for_anyone_but_administrators(app) {
        app.reconfigure(|s| s.security.mfa_roles = vec![]);
        let w = app.world().await;
        let row = scalar_i64(&app, "SELECT MIN(id) FROM outbox").await;
        exec(&app, &format!("UPDATE outbox SET status = 'dead' WHERE id = {row}")).await;
        let director = app.user(&[Role::Director], None).await;
        let client = app.user(&[Role::Client], Some(w.customer)).await;
        for email in [&w.engineer.email, &director.email, &client.email] {
            let mut b = Browser::default();
            b.sign_in(&app, email).await;
            let dash = b.get(&app, "/").await;
            assert_eq!(dash.status, StatusCode::OK);
            assert!(!html(&dash).contains("/admin/outbox"), "{email} sees the queue in the menu");
            let r = b.get(&app, "/admin/outbox").await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{email}");
            assert!(!html(&r).contains("outbox-"), "{email}");
            let r = b.get(&app, "/admin/outbox?status=dead").await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{email}");
            let r = b.submit(&app, &dash, &format!("/admin/outbox/{row}/retry"), &[]).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{email}");
        }
        assert_eq!(scalar_text(&app, &format!("SELECT status FROM outbox WHERE id = {row}")).await, "dead");
        assert_eq!(scalar_i64(&app, "SELECT COUNT(*) FROM audit_log WHERE action = 'retry'").await, 0);
        // The administrator's menu has it.
        let mut admin = Browser::default();
        admin.sign_in(&app, &w.admin.email).await;
        assert!(html(&admin.get(&app, "/").await).contains("<a href=\"/admin/outbox\">Очередь уведомлений</a>"));
    }

    async fn clients_and_engineers_choose_their_own_language_and_channels(app) {
        app.reconfigure(|s| s.security.mfa_roles = vec![]);
        let w = app.world().await;
        let client = app.user(&[Role::Client], Some(w.customer)).await;
        for (user, role) in [(&client, "client"), (&w.engineer, "engineer")] {
            let mut b = Browser::default();
            b.sign_in(&app, &user.email).await;
            let dash = b.get(&app, "/").await;
            assert!(html(&dash).contains("href=\"/account\""), "{role}: the settings are linked for every user");
            let page = b.get(&app, "/account").await;
            assert_eq!(page.status, StatusCode::OK, "{}", html(&page));
            let body = html(&page);
            assert!(body.contains("href=\"/account\" aria-current=\"page\""), "{body}");
            assert!(body.contains(&lang_option("ru", true)), "{body}");
            assert!(body.contains(&checkbox("notify_email", true)), "{body}");
            assert!(body.contains(&checkbox("notify_telegram", true)), "{body}");
            assert!(body.contains("<dd id=\"a-telegram\">не привязан</dd>"), "{body}");
            let version = hidden(&page, "version");

            // A forged post without the form token changes nothing.
            let r = b.post(&app, "/account", &[("version", &version), ("lang", "en")]).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{role}");
            // A language the messages do not come in: next to its field, nothing saved.
            let r = b.submit(&app, &page, "/account", &[("version", &version), ("lang", "de"), ("notify_email", "1")]).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", html(&r));
            assert!(html(&r).contains("aria-invalid=\"true\" aria-describedby=\"a-lang-error\""), "{}", html(&r));
            assert!(html(&r).contains("<p class=\"field-error\" id=\"a-lang-error\">"));

            // English, no e-mail, Telegram on; what else the form sends is not its business.
            let r = b.submit(&app, &page, "/account", &[
                ("version", &version), ("lang", "en"), ("notify_telegram", "1"),
                ("role_admin", "1"), ("roles", "admin"), ("enabled", "0"), ("telegram_chat_id", "42"),
            ]).await;
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
            assert_eq!(location(&r), "/account?done");
            let saved = b.get(&app, "/account?done").await;
            assert!(html(&saved).contains("role=\"status\">Настройки сохранены."), "{}", html(&saved));
            assert!(html(&saved).contains(&lang_option("en", true)));
            assert!(html(&saved).contains(&checkbox("notify_email", false)));
            assert!(html(&saved).contains(&checkbox("notify_telegram", true)));
            let api = app.get(&format!("/api/v1/users/{}", user.id), &w.admin).await;
            api.assert(StatusCode::OK);
            assert_eq!(api.body["lang"], "en", "{role}");
            assert_eq!(api.body["notify_email"], false);
            assert_eq!(api.body["notify_telegram"], true);
            assert_eq!(api.body["roles"], json!([role]), "roles are not the user's to change");
            assert_eq!(api.body["enabled"], true);
            assert_eq!(api.body["telegram_chat_id"], json!(null), "the chat is linked elsewhere");
            let audited = scalar_i64(&app, &format!("SELECT COUNT(*) FROM audit_log WHERE action = 'update' AND entity = 'user' AND entity_id = {} AND user_id = {}", user.id, user.id)).await;
            assert_eq!(audited, 1);

            // The first form again is stale: refused, the choices kept, nothing overwritten.
            let r = b.submit(&app, &page, "/account", &[("version", &version), ("lang", "ru"), ("notify_email", "1")]).await;
            assert_eq!(r.status, StatusCode::CONFLICT, "{}", html(&r));
            let body = html(&r);
            assert!(body.contains("role=\"alert\">Пока вы меняли настройки, их изменили в другом месте."), "{body}");
            assert!(body.contains(&lang_option("ru", true)), "{body}");
            assert!(body.contains(&checkbox("notify_email", true)));
            assert!(body.contains(&checkbox("notify_telegram", false)));
            assert_eq!(app.get(&format!("/api/v1/users/{}", user.id), &w.admin).await.body["lang"], "en");
            // Saving the kept choices again is deliberate, and lands.
            let again = hidden(&r, "version");
            assert_ne!(again, version);
            let r = b.submit(&app, &r, "/account", &[("version", &again), ("lang", "ru"), ("notify_email", "1")]).await;
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
            let api = app.get(&format!("/api/v1/users/{}", user.id), &w.admin).await;
            assert_eq!((api.body["lang"].as_str(), api.body["notify_email"].as_bool(), api.body["notify_telegram"].as_bool()), (Some("ru"), Some(true), Some(false)));
        }
    }

    async fn administrators_link_a_telegram_chat_on_the_users_page(app) {
        app.reconfigure(|s| s.security.mfa_roles = vec![]);
        let w = app.world().await;
        let mut admin = Browser::default();
        admin.sign_in(&app, &w.admin.email).await;
        let path = format!("/admin/users/{}", w.engineer.id);
        let page = admin.get(&app, &path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", html(&page));
        assert!(html(&page).contains("name=\"telegram_chat_id\" inputmode=\"numeric\" autocomplete=\"off\" value=\"\""), "{}", html(&page));
        let version = hidden(&page, "version");
        let name = format!("Test {}", "engineer");
        // Not a chat id: next to its field, what was typed kept, nothing changed.
        let r = admin.submit(&app, &page, &path, &[("version", &version), ("action", "save"), ("name", &name), ("role_engineer", "1"), ("telegram_chat_id", "@my_chat")]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", html(&r));
        assert!(html(&r).contains("<p class=\"field-error\" id=\"u-telegram-error\">Идентификатор чата Telegram — целое число"), "{}", html(&r));
        assert!(html(&r).contains("aria-invalid=\"true\" aria-describedby=\"u-telegram-error u-telegram-hint\""));
        assert!(html(&r).contains("value=\"@my_chat\""));
        assert_eq!(app.get(&format!("/api/v1/users/{}", w.engineer.id), &w.admin).await.body["telegram_chat_id"], json!(null));
        // A chat id lands, and the user sees the chat linked.
        let r = admin.submit(&app, &page, &path, &[("version", &version), ("action", "save"), ("name", &name), ("role_engineer", "1"), ("telegram_chat_id", " 123456789 ")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        let api = app.get(&format!("/api/v1/users/{}", w.engineer.id), &w.admin).await;
        assert_eq!(api.body["telegram_chat_id"], "123456789");
        let page = admin.get(&app, &path).await;
        assert!(html(&page).contains("value=\"123456789\""));
        let mut eng = Browser::default();
        eng.sign_in(&app, &w.engineer.email).await;
        assert!(html(&eng.get(&app, "/account").await).contains("<dd id=\"a-telegram\">привязан</dd>"));
        // Left empty, the chat is unlinked.
        let r = admin.submit(&app, &page, &path, &[("version", &hidden(&page, "version")), ("action", "save"), ("name", &name), ("role_engineer", "1"), ("telegram_chat_id", "")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        assert_eq!(app.get(&format!("/api/v1/users/{}", w.engineer.id), &w.admin).await.body["telegram_chat_id"], json!(null));
    }
}
