//! The web pages, driven through the router as a browser would: forms, cookies, redirects.

use crate::support::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use ferum::domain::access::Role;
use serde_json::json;

/// A browser: its cookies, kept between requests.
#[derive(Default)]
pub struct Browser {
    pub cookies: Vec<(String, String)>,
}

impl Browser {
    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn keep(&mut self, r: &Resp) {
        for v in r.headers.get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let pair = v.split(';').next().unwrap();
            let (k, val) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != k);
            if !v.contains("Max-Age=0") {
                self.cookies.push((k.to_owned(), val.to_owned()));
            }
        }
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub async fn get(&mut self, app: &TestApp, path: &str) -> Resp {
        let req = Request::get(path)
            .header("cookie", self.cookie_header())
            .body(Body::empty())
            .unwrap();
        let r = app.send(req).await;
        self.keep(&r);
        r
    }

    pub async fn post(&mut self, app: &TestApp, path: &str, fields: &[(&str, &str)]) -> Resp {
        let body = serde_urlencoded::to_string(fields).unwrap();
        let req = Request::post(path)
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .unwrap();
        let r = app.send(req).await;
        self.keep(&r);
        r
    }

    /// Posts a form with the page's CSRF token, as the browser would from `page`.
    pub async fn submit(
        &mut self,
        app: &TestApp,
        page: &Resp,
        path: &str,
        fields: &[(&str, &str)],
    ) -> Resp {
        let token = hidden(page, "_csrf");
        let mut all = vec![("_csrf", token.as_str())];
        all.extend_from_slice(fields);
        self.post(app, path, &all).await
    }

    pub async fn sign_in(&mut self, app: &TestApp, email: &str) -> Resp {
        let page = self.get(app, "/login").await;
        self.submit(
            app,
            &page,
            "/login",
            &[("email", email), ("password", PASSWORD), ("next", "/")],
        )
        .await
    }
}

pub fn html(r: &Resp) -> &str {
    r.body.as_str().unwrap_or_default()
}

/// The value of a hidden input of the page.
pub fn hidden(r: &Resp, name: &str) -> String {
    let page = html(r);
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in\n{page}"))
        + marker.len();
    page[start..].split('"').next().unwrap().to_owned()
}

pub fn location(r: &Resp) -> &str {
    r.headers["location"].to_str().unwrap()
}

both! {
    async fn signing_in_out_and_the_session_rules(app) {
        let w = app.world().await;
        let mut b = Browser::default();
        // Anonymous pages send to the sign-in page and come back.
        let r = b.get(&app, "/requests?status=open").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(location(&r), "/login?next=%2Frequests%3Fstatus%3Dopen");

        let page = b.get(&app, "/login").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(html(&page).contains("<html lang=\"ru\">"));
        assert!(html(&page).contains("<label for=\"email\">Электронная почта</label>"));
        // A wrong password: the page again, the e-mail kept, an alert, nothing signed in.
        let r = b.submit(&app, &page, "/login", &[("email", &w.engineer.email), ("password", "not the password"), ("next", "/")]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(html(&r).contains("role=\"alert\">Неверная почта или пароль."), "{}", html(&r));
        assert!(html(&r).contains(&format!("value=\"{}\"", w.engineer.email)));
        assert!(b.cookie("ferum_session").is_none());
        // Without the form token: refused.
        let r = b.post(&app, "/login", &[("email", &w.engineer.email), ("password", PASSWORD)]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(b.cookie("ferum_session").is_none());

        let r = b.submit(&app, &page, "/login", &[("email", &w.engineer.email), ("password", PASSWORD), ("next", "/requests")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        assert_eq!(location(&r), "/requests");
        let set = r.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect::<Vec<_>>().join("\n");
        assert!(set.contains("ferum_session=") && set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Secure"), "{set}");
        let dash = b.get(&app, "/").await;
        assert_eq!(dash.status, StatusCode::OK);
        assert!(html(&dash).contains("<h1>Здравствуйте,"), "{}", html(&dash));
        assert!(html(&dash).contains("href=\"/requests\""));

        // An open redirect is not possible through `next`.
        let mut other = Browser::default();
        let p = other.get(&app, "/login").await;
        let r = other.submit(&app, &p, "/login", &[("email", &w.engineer.email), ("password", PASSWORD), ("next", "//evil.example/")]).await;
        assert_eq!(location(&r), "/");

        // Sign-out needs the token, and ends the session for good.
        let r = b.post(&app, "/logout", &[]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let old = b.cookie("ferum_session").unwrap().to_owned();
        let r = b.submit(&app, &dash, "/logout", &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert!(b.cookie("ferum_session").is_none());
        b.cookies.push(("ferum_session".into(), old));
        let r = b.get(&app, "/").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "a signed-out session cookie must not work");

        // Disabling a user ends their browser sessions too, as it does their tokens.
        let r = other.get(&app, "/").await;
        assert_eq!(r.status, StatusCode::OK);
        let u = app.get(&format!("/api/v1/users/{}", w.engineer.id), &w.admin).await;
        app.call_with(axum::http::Method::PATCH, &format!("/api/v1/users/{}", w.engineer.id), Some(&w.admin.token), Some(json!({"enabled": false, "version": u.body["version"]})), &[]).await.assert(StatusCode::OK);
        let r = other.get(&app, "/").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
    }

    async fn users_change_their_password_and_their_other_sessions_end(app) {
        let w = app.world().await;
        let mut phone = Browser::default();
        phone.sign_in(&app, &w.engineer.email).await;
        let mut desk = Browser::default();
        desk.sign_in(&app, &w.engineer.email).await;
        let form = desk.get(&app, "/password").await;
        assert_eq!(form.status, StatusCode::OK);
        let r = desk.submit(&app, &form, "/password", &[("current_password", "not it at all"), ("new_password", "a brand new long password")]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(html(&r).contains("<p class=\"field-error\" id=\"current_password-error\">Текущий пароль указан неверно.</p>"), "next to its field: {}", html(&r));
        let r = desk.submit(&app, &form, "/password", &[("current_password", PASSWORD), ("new_password", "short")]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(html(&r).contains("aria-invalid=\"true\" aria-describedby=\"new_password-error new-password-hint\""), "{}", html(&r));
        let r = desk.submit(&app, &form, "/password", &[("current_password", PASSWORD), ("new_password", "a brand new long password")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        assert!(html(&desk.get(&app, "/password?done").await).contains("role=\"status\""));
        assert_eq!(desk.get(&app, "/").await.status, StatusCode::OK, "this session goes on");
        assert_eq!(phone.get(&app, "/").await.status, StatusCode::SEE_OTHER, "the other session has ended");
        let login = app.call(axum::http::Method::POST, "/api/v1/auth/login", None, Some(json!({"email": w.engineer.email, "password": "a brand new long password"}))).await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    }

    async fn administrators_manage_users_and_reset_the_second_factor(app) {
        app.reconfigure(|s| s.security.mfa_roles = vec![]);
        let w = app.world().await;
        let mut eng = Browser::default();
        eng.sign_in(&app, &w.engineer.email).await;
        assert_eq!(eng.get(&app, "/admin/users").await.status, StatusCode::NOT_FOUND, "not for engineers");
        let mut admin = Browser::default();
        admin.sign_in(&app, &w.admin.email).await;
        let page = admin.get(&app, "/admin/users").await;
        assert_eq!(page.status, StatusCode::OK, "{}", html(&page));
        assert!(html(&page).contains(&w.engineer.email));
        // A bad new user: the form again with the input kept; nothing created.
        let before = app.count("users").await;
        let r = admin.submit(&app, &page, "/admin/users", &[("email", "new.engineer@example.ru"), ("name", "Новый инженер"), ("role_engineer", "1"), ("password", "short")]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", html(&r));
        assert!(html(&r).contains("value=\"new.engineer@example.ru\""));
        assert_eq!(app.count("users").await, before);
        let r = admin.submit(&app, &page, "/admin/users", &[("email", "new.engineer@example.ru"), ("name", "Новый инженер"), ("role_engineer", "1"), ("password", "a long enough password")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        assert_eq!(app.count("users").await, before + 1);
        // Disabling ends the engineer's session at once.
        let page = admin.get(&app, "/admin/users?done=created").await;
        assert!(html(&page).contains("role=\"status\""));
        let form_start = html(&page).find(&format!("action=\"/admin/users/{}\"", w.engineer.id)).unwrap();
        let version = html(&page)[form_start..].split("name=\"version\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
        let r = admin.submit(&app, &page, &format!("/admin/users/{}", w.engineer.id), &[("version", &version), ("action", "disable")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        assert_eq!(eng.get(&app, "/").await.status, StatusCode::SEE_OTHER);
        // Resetting the second factor makes the user set it up again.
        let boss = app.user(&[Role::Director], None).await;
        sqlx::query(&format!("UPDATE users SET totp_secret = 'enrolled' WHERE id = {}", boss.id)).execute(app.db.pool()).await.unwrap();
        let r = admin.submit(&app, &page, &format!("/admin/users/{}", boss.id), &[("version", "0"), ("action", "reset_mfa")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        let audit: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'mfa_reset'").fetch_one(app.db.pool()).await.unwrap();
        assert_eq!(audit, 1);
        let secret: Option<String> = sqlx::query_scalar(&format!("SELECT totp_secret FROM users WHERE id = {}", boss.id)).fetch_one(app.db.pool()).await.unwrap();
        assert_eq!(secret, None, "the second factor is set up again at the next sign-in");
        let r = app.get("/api/v1/me", &boss).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "the user's sessions ended");
        // Without the token nothing happens.
        let r = admin.post(&app, &format!("/admin/users/{}", boss.id), &[("action", "reset_mfa")]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }

    async fn administrators_edit_roles_names_and_customers(app) {
        app.reconfigure(|s| s.security.mfa_roles = vec![]);
        let w = app.world().await;
        let other = app.customer(&w.admin, "ООО Лютик", next_inn()).await;
        let mut admin = Browser::default();
        admin.sign_in(&app, &w.admin.email).await;
        let page = admin.get(&app, &format!("/admin/users/{}", w.engineer.id)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", html(&page));
        assert!(html(&page).contains("name=\"role_engineer\" value=\"1\" checked"), "{}", html(&page));
        assert!(html(&page).contains("<option value=\"\">—</option>"));
        assert!(html(&page).contains("ООО Лютик"), "customers are chosen by name");
        let version = hidden(&page, "version");
        // A client role without a customer: the form again, the error next to its field,
        // what was typed kept, nothing changed.
        let r = admin.submit(&app, &page, &format!("/admin/users/{}", w.engineer.id), &[("version", &version), ("action", "save"), ("name", "Пётр Клиентов"), ("phone", ""), ("role_client", "1"), ("customer_id", "")]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", html(&r));
        assert!(html(&r).contains("value=\"Пётр Клиентов\""));
        assert!(html(&r).contains("class=\"field-error\""), "{}", html(&r));
        let api = app.get(&format!("/api/v1/users/{}", w.engineer.id), &w.admin).await;
        assert_eq!(api.body["roles"], json!(["engineer"]));
        // Garbage for a customer is refused next to the field.
        let r = admin.submit(&app, &page, &format!("/admin/users/{}", w.engineer.id), &[("version", &version), ("action", "save"), ("name", "Пётр"), ("role_client", "1"), ("customer_id", "abc")]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(html(&r).contains("aria-describedby=\"u-customer-error\""), "{}", html(&r));
        // The right change lands: name, phone, roles, customer.
        let r = admin.submit(&app, &page, &format!("/admin/users/{}", w.engineer.id), &[("version", &version), ("action", "save"), ("name", "Пётр Клиентов"), ("phone", "+7 900 000-00-01"), ("role_client", "1"), ("customer_id", &other.to_string())]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        assert_eq!(location(&r), format!("/admin/users/{}?done=changed", w.engineer.id));
        let api = app.get(&format!("/api/v1/users/{}", w.engineer.id), &w.admin).await;
        assert_eq!(api.body["roles"], json!(["client"]));
        assert_eq!(api.body["customer_id"], other);
        assert_eq!(api.body["name"], "Пётр Клиентов");
        // The same old form again is stale: refused with a clear message, nothing overwritten.
        let r = admin.submit(&app, &page, &format!("/admin/users/{}", w.engineer.id), &[("version", &version), ("action", "save"), ("name", "Старое имя"), ("role_engineer", "1")]).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", html(&r));
        assert!(html(&r).contains("Запись успела измениться"), "{}", html(&r));
        assert_eq!(app.get(&format!("/api/v1/users/{}", w.engineer.id), &w.admin).await.body["name"], "Пётр Клиентов");
        // An administrator cannot lock themselves out; the refusal is in the user's words.
        let me = admin.get(&app, &format!("/admin/users/{}", w.admin.id)).await;
        let r = admin.submit(&app, &me, &format!("/admin/users/{}", w.admin.id), &[("version", &hidden(&me, "version")), ("action", "save"), ("name", "Админ"), ("role_engineer", "1")]).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", html(&r));
        assert!(html(&r).contains("Нельзя отключить себя"), "{}", html(&r));
        // A director reads users but changes nothing: no forms.
        let boss = app.user(&[Role::Director], None).await;
        let mut director = Browser::default();
        director.sign_in(&app, &boss.email).await;
        let page = director.get(&app, &format!("/admin/users/{}", w.engineer.id)).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(!html(&page).contains("method=\"post\" action=\"/admin/users"), "{}", html(&page));
        assert!(!html(&director.get(&app, "/admin/users").await).contains("action=\"/admin/users\""));
        // Nobody else sees the pages at all.
        let client = app.user(&[Role::Client], Some(w.customer)).await;
        let mut c = Browser::default();
        c.sign_in(&app, &client.email).await;
        assert_eq!(c.get(&app, &format!("/admin/users/{}", w.admin.id)).await.status, StatusCode::NOT_FOUND);
        assert!(!html(&c.get(&app, "/").await).contains("href=\"/admin/"), "no administration in the client's menu");
    }

    async fn the_audit_log_viewer_shows_who_did_what_and_verifies_the_chain(app) {
        app.reconfigure(|s| s.security.mfa_roles = vec![]);
        let w = app.world().await;
        let mut admin = Browser::default();
        admin.sign_in(&app, &w.admin.email).await;
        let page = admin.get(&app, "/admin/audit").await;
        assert_eq!(page.status, StatusCode::OK, "{}", html(&page));
        assert!(html(&page).contains("href=\"/admin/audit\" aria-current=\"page\""));
        assert!(html(&page).contains(&format!("<a href=\"/customers/{}\">customer {}</a>", w.customer, w.customer)), "{}", html(&page));
        let admin_name: String = sqlx::query_scalar(&format!("SELECT name FROM users WHERE id = {}", w.admin.id)).fetch_one(app.db.pool()).await.unwrap();
        assert!(html(&page).contains(&format!("<a href=\"/admin/audit?user_id={}\" title=\"Только этот пользователь\">{admin_name}</a>", w.admin.id)), "entries name who did it: {}", html(&page));
        // What one user did: the engineer has done nothing yet, the administrator everything.
        let theirs = admin.get(&app, &format!("/admin/audit?user_id={}", w.engineer.id)).await;
        assert!(html(&theirs).contains("Записей нет."), "{}", html(&theirs));
        let mine = admin.get(&app, &format!("/admin/audit?user_id={}", w.admin.id)).await;
        assert!(html(&mine).contains(&format!("Только действия пользователя {admin_name}.")));
        assert!(html(&mine).contains(&format!(">customer {}</a>", w.customer)));
        // Days of the company's calendar: the world was made today (the test clock's day).
        let today = app.clock.now().with_timezone(&chrono_tz::Europe::Moscow).date_naive();
        let day = |d: chrono::NaiveDate| d.format("%Y-%m-%d").to_string();
        let on = admin.get(&app, &format!("/admin/audit?from={}&to={}", day(today), day(today))).await;
        assert!(html(&on).contains(&format!(">customer {}</a>", w.customer)), "{}", html(&on));
        let before = admin.get(&app, &format!("/admin/audit?to={}", day(today.pred_opt().unwrap()))).await;
        assert!(html(&before).contains("Записей нет."), "{}", html(&before));
        let after = admin.get(&app, &format!("/admin/audit?from={}", day(today.succ_opt().unwrap()))).await;
        assert!(html(&after).contains("Записей нет."));
        // Filtered to one record.
        let one = admin.get(&app, &format!("/admin/audit?entity=object&entity_id={}", w.object)).await;
        assert!(html(&one).contains(&format!(">object {}</a>", w.object)));
        assert!(!html(&one).contains(">customer "), "{}", html(&one));
        // The chain is verified on demand.
        let checked = admin.get(&app, "/admin/audit?verify=1").await;
        assert!(html(&checked).contains("Цепочка цела: записей — "), "{}", html(&checked));
        sqlx::query("UPDATE audit_log SET ip = '6.6.6.6' WHERE id = (SELECT MIN(id) FROM audit_log)").execute(app.db.pool()).await.unwrap();
        let checked = admin.get(&app, "/admin/audit?verify=1").await;
        assert!(html(&checked).contains("Цепочка нарушена"), "{}", html(&checked));
        // Paging: the next page link keeps the filter.
        let page = admin.get(&app, "/admin/audit?entity=customer").await;
        assert_eq!(page.status, StatusCode::OK);
        // Not for engineers or clients: the page does not exist for them, nor its menu item.
        let mut eng = Browser::default();
        eng.sign_in(&app, &w.engineer.email).await;
        assert_eq!(eng.get(&app, "/admin/audit").await.status, StatusCode::NOT_FOUND);
        assert!(!html(&eng.get(&app, "/").await).contains("/admin/audit"));
    }

    async fn each_role_reads_its_part_of_the_audit_log(app) {
        app.reconfigure(|s| s.security.mfa_roles = vec![]);
        let w = app.world().await;
        let pm = app.user(&[Role::ProjectManager], None).await;
        let head = app.user(&[Role::DepartmentHead], None).await;
        let accountant = app.user(&[Role::Accountant], None).await;
        let office = app.user(&[Role::OfficeManager], None).await;
        // The project manager's own project, with its own site and request; the world's
        // request belongs to a project someone else manages.
        let site = app.object(&w.admin, w.customer, "Цех №2").await;
        let own = app.post("/api/v1/projects", &w.admin, json!({"customer_id": w.customer, "name": "Свой договор", "start_date": "2026-01-01", "status": "active", "manager_id": pm.id, "objects": [{"object_id": site}]})).await;
        assert_eq!(own.status, StatusCode::CREATED, "{}", own.body);
        let mine = app.request(&w.admin, site, "maintenance").await["id"].as_i64().unwrap();
        let other = app.request(&w.admin, w.object, "maintenance").await["id"].as_i64().unwrap();

        let mut b = Browser::default();
        b.sign_in(&app, &pm.email).await;
        let page = b.get(&app, "/admin/audit").await;
        assert_eq!(page.status, StatusCode::OK, "{}", html(&page));
        assert!(html(&page).contains(&format!(">request {mine}</a>")), "{}", html(&page));
        assert!(html(&page).contains(&format!(">project {}</a>", own.body["id"])));
        assert!(!html(&page).contains(&format!(">request {other}</a>")), "not another manager's request");
        assert!(!html(&page).contains(">customer ") && !html(&page).contains(">user "), "{}", html(&page));
        assert!(!html(&page).contains("name=\"verify\""), "the chain is walked by those who read all of it");
        // The same part through the API, and a filter cannot widen it.
        let api = app.get(&format!("/api/v1/audit?entity=request&entity_id={other}"), &pm).await;
        api.assert(StatusCode::OK);
        assert!(api.ids().is_empty(), "{}", api.body);
        let api = app.get(&format!("/api/v1/audit?entity=request&entity_id={mine}&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z"), &pm).await;
        assert!(!api.ids().is_empty(), "{}", api.body);
        let api = app.get("/api/v1/audit?from=yesterday", &pm).await;
        assert_eq!(api.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", api.body);
        assert_eq!(api.body["errors"][0]["field"], "from");

        let mut b = Browser::default();
        b.sign_in(&app, &head.email).await;
        let page = b.get(&app, "/admin/audit").await;
        assert!(html(&page).contains(&format!(">request {other}</a>")) && html(&page).contains(&format!(">request {mine}</a>")));
        assert!(html(&page).contains(&format!(">customer {}</a>", w.customer)));
        assert!(!html(&page).contains(">user "), "operations, not accounts: {}", html(&page));

        let mut b = Browser::default();
        b.sign_in(&app, &accountant.email).await;
        let page = b.get(&app, "/admin/audit").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(html(&page).contains("Записей нет."), "no financial entries yet: {}", html(&page));
        assert!(html(&page).contains("href=\"/admin/audit\""), "the menu has it");

        let mut b = Browser::default();
        b.sign_in(&app, &office.email).await;
        assert_eq!(b.get(&app, "/admin/audit").await.status, StatusCode::NOT_FOUND);
        app.get("/api/v1/audit", &office).await.problem(StatusCode::NOT_FOUND, "not_found");
    }

    async fn the_language_switch_is_remembered(app) {
        let w = app.world().await;
        let mut b = Browser::default();
        b.sign_in(&app, &w.engineer.email).await;
        let page = b.get(&app, "/requests").await;
        assert!(html(&page).contains("<html lang=\"ru\">"));
        assert!(html(&page).contains("<h1>Заявки</h1>"));
        let r = b.submit(&app, &page, "/lang", &[("lang", "en"), ("next", "/requests")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(location(&r), "/requests");
        let page = b.get(&app, "/requests").await;
        assert!(html(&page).contains("<html lang=\"en\">"), "{}", html(&page));
        assert!(html(&page).contains("<h1>Requests</h1>"));
        let login = Browser { cookies: vec![("ferum_lang".into(), "en".into())] }.get(&app, "/login").await;
        assert!(html(&login).contains("<h1>Sign in to Ferum</h1>"));
        // Before any choice, the browser's own preference counts; a choice outranks it.
        let req = Request::get("/login").header("accept-language", "en-GB,en;q=0.9,ru;q=0.5").body(Body::empty()).unwrap();
        assert!(html(&app.send(req).await).contains("<html lang=\"en\">"));
        let req = Request::get("/login").header("accept-language", "en-GB,en;q=0.9").header("cookie", "ferum_lang=ru").body(Body::empty()).unwrap();
        assert!(html(&app.send(req).await).contains("<html lang=\"ru\">"));
        let r = app.send(Request::get("/login").body(Body::empty()).unwrap()).await;
        assert_eq!(r.headers["vary"], "Cookie, Accept-Language", "caches keep each language apart");
        let req = Request::get("/login").header("accept-language", "de-DE").body(Body::empty()).unwrap();
        assert!(html(&app.send(req).await).contains("<html lang=\"ru\">"), "Russian when neither is asked for");
        // Without the token the switch is refused.
        let r = b.post(&app, "/lang", &[("lang", "ru")]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }

    async fn request_pages_honour_the_access_matrix_and_move_requests(app) {
        // Password-only sign-in here; the second factor has its own test.
        app.reconfigure(|s| s.security.mfa_roles = vec![]);
        let w = app.world().await;
        let request = app.request(&w.admin, w.object, "emergency").await;
        let id = request["id"].as_i64().unwrap();
        let number = request["number"].as_str().unwrap().to_owned();
        // A client of another customer: the request does not exist for them.
        let other_customer = app.customer(&w.admin, "ООО Другой", next_inn()).await;
        let stranger = app.user(&[Role::Client], Some(other_customer)).await;
        let mut b = Browser::default();
        b.sign_in(&app, &stranger.email).await;
        let r = b.get(&app, &format!("/requests/{id}")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert!(html(&r).contains("data-request-id>"), "{}", html(&r));
        let list = b.get(&app, "/requests").await;
        assert!(!html(&list).contains(&number));

        // The admin sees it, emergency first on the dashboard, and can only assign-free moves.
        let mut admin = Browser::default();
        let r = admin.sign_in(&app, &w.admin.email).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        let dash = admin.get(&app, "/").await;
        assert!(html(&dash).contains(&format!("href=\"/requests/{id}\"")), "{}", html(&dash));
        // A dispatcher's own work: requests waiting for an engineer.
        let queue = html(&dash).split("<h2>Ждут назначения инженера</h2>").nth(1).expect("the queue section").split("</section>").next().unwrap().to_owned();
        assert!(queue.contains(&format!("href=\"/requests/{id}\"")), "{queue}");
        let api = app.get("/api/v1/requests?unassigned=true", &w.admin).await;
        assert_eq!(api.ids(), vec![id]);
        assert!(app.get("/api/v1/requests?unassigned=false", &w.admin).await.ids().is_empty());
        // The time left to assign an emergency (15 minutes), and later how late it is.
        assert!(html(&dash).contains("<span class=\"left\">осталось 15\u{a0}мин</span>"), "{}", html(&dash));
        app.clock.advance(chrono::Duration::minutes(40));
        let late = admin.get(&app, &format!("/requests/{id}")).await;
        assert!(html(&late).contains("<span class=\"left\">на 25\u{a0}мин позже срока</span>"), "{}", html(&late));
        app.clock.advance(chrono::Duration::minutes(-40));
        // The weekly chart, drawn on the server: this week has one request opened.
        assert!(html(&dash).contains("<svg class=\"chart\""), "{}", html(&dash));
        assert!(html(&dash).contains("02.03 — открыто 1, выполнено 0"), "{}", html(&dash));
        let list = admin.get(&app, "/requests?q=%D0%B4%D0%B0%D1%82%D1%87%D0%B8%D0%BA").await;
        assert!(html(&list).contains(&number), "{}", html(&list));
        // Filters by type and overdue.
        let only = admin.get(&app, "/requests?type=maintenance").await;
        assert!(!html(&only).contains(&number), "an emergency is not maintenance");
        let only = admin.get(&app, "/requests?type=emergency").await;
        assert!(html(&only).contains(&number));
        assert!(html(&only).contains("<option value=\"emergency\" selected>"));
        let only = admin.get(&app, "/requests?type=emergency&overdue=1").await;
        assert!(!html(&only).contains(&number), "not overdue yet");
        let board = admin.get(&app, "/requests/board").await;
        assert_eq!(board.status, StatusCode::OK);
        assert!(html(&board).contains("aria-labelledby=\"col-open\""));
        assert!(html(&board).contains(&number));
        let board = b.get(&app, "/requests/board").await;
        assert!(!html(&board).contains(&number), "the stranger's board has no foreign requests");

        // The assigned engineer starts it from the page (post/redirect/get).
        // The dispatcher assigns the engineer from the request page.
        let page = admin.get(&app, &format!("/requests/{id}")).await;
        assert!(html(&page).contains(&format!("<option value=\"{}\">", w.engineer.id)), "{}", html(&page));
        let r = admin.submit(&app, &page, &format!("/requests/{id}/assign"), &[("assigned_to", &w.engineer.id.to_string()), ("version", &hidden(&page, "version"))]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        // Garbage for an engineer or a status is refused with 422, and changes nothing.
        let r = admin.submit(&app, &page, &format!("/requests/{id}/assign"), &[("assigned_to", "nobody"), ("version", &hidden(&page, "version"))]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", html(&r));
        let r = admin.submit(&app, &page, &format!("/requests/{id}/status"), &[("status", "finished")]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", html(&r));
        assert!(html(&r).contains("role=\"alert\""));
        // A stale form (the version moved on) is refused and changes nothing.
        let r = admin.submit(&app, &page, &format!("/requests/{id}/assign"), &[("assigned_to", "0"), ("version", &hidden(&page, "version"))]).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", html(&r));
        assert!(html(&r).contains("Запись успела измениться"), "{}", html(&r));
        let api = app.get(&format!("/api/v1/requests/{id}"), &w.admin).await;
        assert_eq!(api.body["assigned_to"], w.engineer.id);
        let mut eng = Browser::default();
        eng.sign_in(&app, &w.engineer.email).await;
        // The engineer's own work is on their dashboard.
        let dash = eng.get(&app, "/").await;
        let mine = html(&dash).split("<h2>Мои заявки</h2>").nth(1).expect("the engineer's section").split("</section>").next().unwrap().to_owned();
        assert!(mine.contains(&format!("href=\"/requests/{id}\"")), "{mine}");
        let page = eng.get(&app, &format!("/requests/{id}")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(html(&page).contains("value=\"in_progress\""), "{}", html(&page));
        assert!(!html(&page).contains("value=\"closed\""));
        let r = eng.submit(&app, &page, &format!("/requests/{id}/status"), &[("status", "in_progress"), ("comment", "Выезжаю")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        assert_eq!(location(&r), format!("/requests/{id}"));
        let page = eng.get(&app, &format!("/requests/{id}")).await;
        assert!(html(&page).contains("В работе"));
        assert!(html(&page).contains("Выезжаю"));
        assert!(!html(&page).contains("/assign\""), "engineers do not assign");
        // Times in the company's zone (Moscow, UTC+3): opened at 09:00 UTC.
        assert!(html(&page).contains("<dd>02.03.2026 12:00</dd>"), "{}", html(&page));
        assert!(html(&page).contains("Europe/Moscow"));
        let r = eng.submit(&app, &page, &format!("/requests/{id}/comments"), &[("body", "На месте, ищу неисправность")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        let page = eng.get(&app, &format!("/requests/{id}")).await;
        assert!(html(&page).contains("На месте, ищу неисправность"));
        // A comment too long is refused next to its field, and what was typed stays.
        let long = "Очень длинный комментарий. ".repeat(400);
        let r = eng.submit(&app, &page, &format!("/requests/{id}/comments"), &[("body", &long)]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", html(&r));
        assert!(html(&r).contains("aria-describedby=\"comment-body-error\""), "{}", html(&r));
        assert!(html(&r).contains(long.trim_end()), "the typed comment is kept");
        // A move the workflow refuses is explained on the page, and changes nothing.
        let r = eng.submit(&app, &page, &format!("/requests/{id}/status"), &[("status", "closed"), ("comment", "Закрываю")]).await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert!(html(&r).contains("name=\"comment\" value=\"Закрываю\""), "the comment typed with the refused move stays");
        assert!(html(&r).contains("role=\"alert\">Такой переход невозможен. Доступные переходы: Выполнена."), "in the user's language, naming the moves: {}", html(&r));
        let api = app.get(&format!("/api/v1/requests/{id}"), &w.admin).await;
        assert_eq!(api.body["status"], "in_progress");
        // Without the token nothing moves.
        let r = eng.post(&app, &format!("/requests/{id}/status"), &[("status", "cancelled")]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }

    async fn a_client_opens_a_request_from_the_form(app) {
        let w = app.world().await;
        let client = app.user(&[Role::Client], Some(w.customer)).await;
        let other_customer = app.customer(&w.admin, "ООО Чужой", next_inn()).await;
        let foreign = app.object(&w.admin, other_customer, "Чужой склад").await;
        let mut b = Browser::default();
        b.sign_in(&app, &client.email).await;
        let form = b.get(&app, "/requests/new").await;
        assert_eq!(form.status, StatusCode::OK);
        assert!(html(&form).contains(&format!("<option value=\"{}\"", w.object)), "{}", html(&form));
        assert!(!html(&form).contains("Чужой склад"), "only the client's own sites are offered");
        // A blank subject: the form again, the input kept, the error next to the field.
        let object = w.object.to_string();
        let r = b.submit(&app, &form, "/requests/new", &[("object_id", &object), ("type", "emergency"), ("subject", " "), ("description", "Запах гари")]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", html(&r));
        assert!(html(&r).contains("id=\"subject-error\">Заполните это поле."), "{}", html(&r));
        assert!(html(&r).contains(">Запах гари</textarea>"));
        assert!(html(&r).contains("<option value=\"emergency\" selected>"));
        let before = app.count("service_requests").await;
        // Someone else's site cannot be used, even by a forged form.
        let foreign = foreign.to_string();
        let r = b.submit(&app, &form, "/requests/new", &[("object_id", &foreign), ("type", "maintenance"), ("subject", "Чужое")]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", html(&r));
        assert_eq!(app.count("service_requests").await, before);
        let r = b.submit(&app, &form, "/requests/new", &[("object_id", &object), ("type", "emergency"), ("subject", "Сработка пожарной сигнализации"), ("description", "Запах гари")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        let page = b.get(&app, location(&r)).await;
        assert!(html(&page).contains("Сработка пожарной сигнализации"));
        assert!(html(&page).contains("Аварийная"));
        assert_eq!(app.count("service_requests").await, before + 1);

        // Staff: a customer that is not the site's is refused, with what was typed kept.
        let mut admin = Browser::default();
        app.reconfigure(|s| s.security.mfa_roles = vec![]);
        admin.sign_in(&app, &w.admin.email).await;
        let form = admin.get(&app, "/requests/new").await;
        let r = admin.submit(&app, &form, "/requests/new", &[("customer_id", &other_customer.to_string()), ("object_id", &object), ("type", "maintenance"), ("subject", "Не та пара")]).await;
        assert!(r.status == StatusCode::UNPROCESSABLE_ENTITY || r.status == StatusCode::CONFLICT, "{}: {}", r.status, html(&r));
        assert!(html(&r).contains("role=\"alert\"") && html(&r).contains("value=\"Не та пара\""), "{}", html(&r));
        assert_eq!(app.count("service_requests").await, before + 1, "nothing written");
        // A role that may not open requests gets the form back with the refusal, as a page.
        let mut eng = Browser::default();
        eng.sign_in(&app, &w.engineer.email).await;
        let form = eng.get(&app, "/requests/new").await;
        assert!(!html(&form).contains("href=\"/requests/new\" class"), "no way to the form in the menu");
        let r = eng.submit(&app, &form, "/requests/new", &[("object_id", &object), ("type", "maintenance"), ("subject", "Не моё дело")]).await;
        assert!(r.status == StatusCode::FORBIDDEN || r.status == StatusCode::NOT_FOUND, "{}: {}", r.status, html(&r));
        assert!(r.headers["content-type"].to_str().unwrap().starts_with("text/html"), "a page, not JSON");
        assert_eq!(app.count("service_requests").await, before + 1);
    }

    async fn the_engineer_writes_and_submits_the_act_and_the_client_sees_it_done(app) {
        app.reconfigure(|s| s.security.mfa_roles = vec![]);
        let w = app.world().await;
        let client = app.user(&[Role::Client], Some(w.customer)).await;
        let id = app.started_request(&w).await["id"].as_i64().unwrap();
        let mut eng = Browser::default();
        eng.sign_in(&app, &w.engineer.email).await;
        let page = eng.get(&app, &format!("/requests/{id}")).await;
        assert!(html(&page).contains(&format!("action=\"/requests/{id}/report\"")), "{}", html(&page));
        let r = eng.submit(&app, &page, &format!("/requests/{id}/report"), &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        let act = location(&r).to_owned();
        assert!(act.starts_with("/reports/"));
        let editor = eng.get(&app, &act).await;
        assert!(html(&editor).contains("name=\"description_0\""), "{}", html(&editor));
        let version = hidden(&editor, "version");
        let row = |q: &'static str, action: &'static str| {
            vec![("version", version.clone()), ("work_date", "2026-03-02".to_owned()), ("description_0", "Замена датчика".to_owned()), ("quantity_0", q.to_owned()), ("unit_0", "шт".to_owned()), ("price_0", "1250,50".to_owned()), ("action", action.to_owned())]
        };
        // A row more, without saving anything.
        let more = row("2", "add");
        let r = eng.submit(&app, &editor, &act, &fields(&more)).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(html(&r).contains("name=\"description_1\""));
        assert!(html(&r).contains("value=\"Замена датчика\""));
        // The redrawn rows show their own amount and total, not the last saved ones.
        assert!(html(&r).contains("<output data-amount>2\u{202f}501,00\u{a0}₽</output>"), "{}", html(&r));
        assert!(html(&r).contains("<output data-total>—</output>"), "the new empty row has no amount yet");
        // A bad quantity: the editor again with the input kept and the problem named.
        let bad = row("два", "save");
        let r = eng.submit(&app, &editor, &act, &fields(&bad)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", html(&r));
        assert!(html(&r).contains("role=\"alert\""));
        assert!(html(&r).contains("value=\"два\""));
        assert!(html(&r).contains("name=\"quantity_0\" value=\"два\" inputmode=\"decimal\" data-quantity aria-invalid=\"true\" aria-describedby=\"q0-error\""), "{}", html(&r));
        // Errors sit next to their own row: a blank first row is left out, so the store's
        // first item is the form's second row, and the summary names that row.
        let mut gap = vec![("version", version.clone()), ("work_date", "2026-03-02".to_owned()), ("action", "save".to_owned())];
        for (k, v) in [("description_0", ""), ("quantity_0", ""), ("unit_0", ""), ("price_0", ""), ("description_1", "Проверка"), ("quantity_1", "0"), ("unit_1", "шт"), ("price_1", "100")] {
            gap.push((k, v.to_owned()));
        }
        let r = eng.submit(&app, &editor, &act, &fields(&gap)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", html(&r));
        assert!(html(&r).contains("name=\"quantity_1\" value=\"0\" inputmode=\"decimal\" data-quantity aria-invalid=\"true\" aria-describedby=\"q1-error\""), "{}", html(&r));
        assert!(html(&r).contains("<span class=\"field-error\" id=\"q1-error\">"));
        assert!(!html(&r).contains("q0-error") && !html(&r).contains("d1-error"), "only the wrong field is marked");
        assert!(html(&r).contains("<li>Строка 2, Количество: "), "{}", html(&r));
        let bad_date = vec![("version", version.clone()), ("work_date", "02.03.2026".to_owned()), ("description_0", "Замена".to_owned()), ("quantity_0", "1".to_owned()), ("unit_0", "шт".to_owned()), ("price_0", "1".to_owned()), ("action", "save".to_owned())];
        let r = eng.submit(&app, &editor, &act, &fields(&bad_date)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(html(&r).contains("aria-describedby=\"work_date-error\""), "{}", html(&r));
        let good = row("2", "save");
        let r = eng.submit(&app, &editor, &act, &fields(&good)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        let saved = eng.get(&app, &act).await;
        assert!(html(&saved).contains("2\u{202f}501,00\u{a0}₽"), "{}", html(&saved));
        let mut submit = row("2", "submit");
        submit[0].1 = hidden(&saved, "version");
        let r = eng.submit(&app, &saved, &act, &fields(&submit)).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        assert_eq!(location(&r), format!("/requests/{id}"));
        let done = eng.get(&app, &act).await;
        assert!(!html(&done).contains("name=\"description_0\""), "a submitted act is read-only");
        // The client sees the request completed and its act, and nothing staff-only: not the
        // engineer's phone, not the assign control.
        let u = app.get(&format!("/api/v1/users/{}", w.engineer.id), &w.admin).await;
        app.patch(&format!("/api/v1/users/{}", w.engineer.id), &w.admin, json!({"phone": "+7 900 123-45-67", "version": u.body["version"]})).await.assert(StatusCode::OK);
        let mut c = Browser::default();
        c.sign_in(&app, &client.email).await;
        let page = c.get(&app, &format!("/requests/{id}")).await;
        assert!(html(&page).contains("Выполнена"), "{}", html(&page));
        assert!(!html(&page).contains("123-45-67") && !html(&page).contains("/assign\""), "{}", html(&page));
        assert!(html(&page).contains(&format!("href=\"{act}\"")));
        // Staff see the engineer's phone, to call them.
        let desk = eng.get(&app, &format!("/requests/{id}")).await;
        assert!(html(&desk).contains("<a href=\"tel:+79001234567\">+7 900 123-45-67</a>"), "{}", html(&desk));
        // A company that allows it shows clients the phone too.
        app.reconfigure(|s| s.security.clients_see_engineer_phone = true);
        let allowed = c.get(&app, &format!("/requests/{id}")).await;
        assert!(html(&allowed).contains("tel:+79001234567"), "{}", html(&allowed));
        app.reconfigure(|s| s.security.clients_see_engineer_phone = false);
        let act_page = c.get(&app, &act).await;
        assert_eq!(act_page.status, StatusCode::OK);
        assert!(html(&act_page).contains("Замена датчика"));
        // The portal lists the client's acts with their totals.
        let acts = c.get(&app, "/reports").await;
        assert_eq!(acts.status, StatusCode::OK);
        assert!(html(&acts).contains(&format!("href=\"{act}\"")), "{}", html(&acts));
        assert!(html(&acts).contains("2\u{202f}501,00\u{a0}₽"));
        // A client of another customer sees none of them.
        let other = app.customer(&w.admin, "ООО Третий", next_inn()).await;
        let stranger = app.user(&[Role::Client], Some(other)).await;
        let mut x = Browser::default();
        x.sign_in(&app, &stranger.email).await;
        assert!(html(&x.get(&app, "/reports").await).contains("Актов пока нет."));
        assert_eq!(x.get(&app, &act).await.status, StatusCode::NOT_FOUND);
    }

    async fn the_second_factor_is_set_up_and_used_in_the_browser(app) {
        let boss = app.user(&[Role::Director], None).await;
        let mut b = Browser::default();
        let r = b.sign_in(&app, &boss.email).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(html(&r).contains("<svg"), "the enrolment page shows the QR code");
        assert!(b.cookie("ferum_session").is_none());
        let secret = {
            let page = html(&r);
            let start = page.find("<code class=\"secret\">").unwrap() + "<code class=\"secret\">".len();
            page[start..].split('<').next().unwrap().to_owned()
        };
        let wrong = b.submit(&app, &r, "/login/enrol", &[("mfa_token", &hidden(&r, "mfa_token")), ("code", "000000"), ("next", "/")]).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        let code = app.totp(&secret);
        let done = b.submit(&app, &wrong, "/login/enrol", &[("mfa_token", &hidden(&wrong, "mfa_token")), ("code", &code), ("next", "/")]).await;
        // Post/redirect/get: the codes are shown by a page a reload cannot post again.
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", html(&done));
        assert_eq!(location(&done), "/login/recovery?next=%2F");
        assert!(b.cookie("ferum_codes").is_some_and(|c| c.starts_with("enc:")), "the codes travel sealed");
        let shown = b.get(&app, "/login/recovery?next=%2F").await;
        assert_eq!(shown.status, StatusCode::OK, "{}", html(&shown));
        assert_eq!(html(&shown).matches("<li><code>").count(), 10, "ten recovery codes");
        assert_eq!(shown.headers["cache-control"], "no-store");
        assert!(html(&shown).contains("href=\"/\""));
        let again = b.get(&app, "/login/recovery?next=%2F").await;
        assert_eq!(html(&again).matches("<li><code>").count(), 0, "shown once: a reload shows none");
        assert!(html(&again).contains("Резервные коды показываются один раз"));
        assert!(b.cookie("ferum_session").is_some());
        assert_eq!(b.get(&app, "/").await.status, StatusCode::OK);

        // Next time: password, then a code.
        app.clock.advance(chrono::Duration::seconds(60));
        let mut again = Browser::default();
        let r = again.sign_in(&app, &boss.email).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(html(&r).contains("action=\"/login/2fa\""));
        let bad = again.submit(&app, &r, "/login/2fa", &[("mfa_token", &hidden(&r, "mfa_token")), ("code", "123456"), ("next", "/")]).await;
        assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
        assert!(html(&bad).contains("role=\"alert\""));
        let ok = again.submit(&app, &bad, "/login/2fa", &[("mfa_token", &hidden(&bad, "mfa_token")), ("code", &app.totp(&secret)), ("next", "/")]).await;
        assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", html(&ok));
        assert_eq!(again.get(&app, "/").await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn assets_are_cache_busted_and_pages_404_in_html() {
    let app = TestApp::sqlite().await;
    let mut b = Browser::default();
    let login = b.get(&app, "/login").await;
    let page = html(&login);
    let css = page
        .split("href=\"")
        .find(|p| p.starts_with("/assets/app."))
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let r = b.get(&app, &css).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert_eq!(
        b.get(&app, "/assets/app.0000.css").await.status,
        StatusCode::NOT_FOUND
    );
    let r = b.get(&app, "/no/such/page").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(html(&r).contains("data-request-id>"));
    // Under /api/ unknown paths stay problems.
    let r = b.get(&app, "/api/v1/nothing").await;
    assert_eq!(r.body["code"], "not_found");
    assert!(login.body.as_str().unwrap().len() < 100 * 1024);
}

fn fields<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, x)| (*k, x.as_str())).collect()
}
