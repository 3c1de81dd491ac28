//! Hostile input found by attacking the service on purpose: control characters, redirects
//! after sign-in, forged sign-in form tokens, refusals that must read right.

use crate::pages::{Browser, hidden, html, location};
use crate::support::*;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use ferum::domain::access::Role;
use serde_json::json;

both! {
    // NUL (which PostgreSQL cannot hold) and other control characters are refused where
    // they enter, the same on both backends: query strings of every list, JSON bodies, forms.
    async fn control_characters_are_refused_at_the_boundary(app) {
        let w = app.world().await;
        for list in [
            "/api/v1/requests", "/api/v1/customers", "/api/v1/objects", "/api/v1/projects",
            "/api/v1/reports", "/api/v1/users", "/api/v1/audit",
        ] {
            for q in ["%00", "a%00b", "%1b%5b31m", "%7f"] {
                let r = app.get(&format!("{list}?q={q}"), &w.admin).await;
                r.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
                assert_eq!(r.fields(), vec!["q"], "{list}?q={q}: {}", r.body);
            }
            // Tabs and line breaks are ordinary text.
            app.get(&format!("{list}?q=%09"), &w.admin).await.assert(StatusCode::OK);
        }
        let login = app
            .call(Method::POST, "/api/v1/auth/login", None, Some(json!({"email": "\u{0}", "password": "x"})))
            .await;
        login.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(login.fields(), vec!["email"]);
        let r = app
            .post("/api/v1/requests", &w.admin, json!({"type": "maintenance", "subject": "a\u{0}b", "object_id": w.object}))
            .await;
        r.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(r.fields(), vec!["subject"]);
        let r = app
            .post("/api/v1/customers", &w.admin, json!({"name": "ok", "inn": next_inn(), "contacts": [{"x\u{0}": 1}]}))
            .await;
        r.assert(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.count("service_requests").await, 0);

        // The pages: lists with a search, and the sign-in form.
        app.reconfigure(|s| s.security.mfa_roles = vec![]);
        let mut b = Browser::default();
        b.sign_in(&app, &w.admin.email).await;
        for page in ["/requests", "/customers", "/objects", "/projects", "/reports", "/admin/users", "/admin/audit"] {
            let r = b.get(&app, &format!("{page}?q=%00")).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
            assert!(html(&r).contains("служебные символы"), "{page}: {}", html(&r));
        }
        let mut anon = Browser::default();
        let page = anon.get(&app, "/login").await;
        for _ in 0..15 {
            let r = anon
                .submit(&app, &page, "/login", &[("email", "\u{0}"), ("password", "x"), ("next", "/")])
                .await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        }
        // Refused at the boundary, so no sign-in budget was spent: a real sign-in still works.
        let r = anon.sign_in(&app, &w.engineer.email).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
    }

    // After sign-in and after switching the language, only a plain path on this site is
    // followed; anything a browser could turn into another site, or that cannot go into a
    // Location header, goes to `/`.
    async fn next_goes_only_to_plain_local_paths(app) {
        let w = app.world().await;
        let bad = ["/%7f", "/%0d%0aSet-Cookie:%20x=1", "/%09/evil.example", "/%0a/evil.example", "/%5cevil.example", "//evil.example", "https://evil.example/"];
        for next in bad {
            let mut b = Browser::default();
            let page = b.get(&app, &format!("/login?next={next}")).await;
            assert_eq!(page.status, StatusCode::OK, "{next}");
            assert_eq!(hidden(&page, "next"), "/", "{next}");
            let decoded: String = url::form_urlencoded::parse(format!("n={next}").as_bytes())
                .next()
                .unwrap()
                .1
                .into_owned();
            let r = b
                .submit(&app, &page, "/login", &[("email", &w.engineer.email), ("password", PASSWORD), ("next", &decoded)])
                .await;
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{next}: {}", html(&r));
            assert_eq!(location(&r), "/", "{next}");
            let home = b.get(&app, "/").await;
            let r = b.submit(&app, &home, "/lang", &[("lang", "en"), ("next", &decoded)]).await;
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{next}");
            assert_eq!(location(&r), "/", "{next}");
        }
        let mut b = Browser::default();
        let page = b.get(&app, "/login?next=%2Frequests%3Fstatus%3Dopen").await;
        let r = b
            .submit(&app, &page, "/login", &[("email", &w.engineer.email), ("password", PASSWORD), ("next", &hidden(&page, "next"))])
            .await;
        assert_eq!(location(&r), "/requests?status=open");
    }

    // The sign-in form's token must be one the server issued: a cookie and field the client
    // made up to match are refused.
    async fn a_made_up_sign_in_form_token_is_refused(app) {
        let w = app.world().await;
        for made_up in ["abc", "x".repeat(43).as_str(), "eyJhbGciOiJub25lIn0.e30."] {
            let mut b = Browser { cookies: vec![("ferum_pre".into(), made_up.to_owned())] };
            let r = b
                .post(&app, "/login", &[("_csrf", made_up), ("email", &w.engineer.email), ("password", PASSWORD), ("next", "/")])
                .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{made_up}");
            assert!(b.cookie("ferum_session").is_none());
        }
        // The server's own token works, and a browser's stays the same between pages.
        let mut b = Browser::default();
        let page = b.get(&app, "/login").await;
        let again = b.get(&app, "/login").await;
        assert_eq!(hidden(&page, "_csrf"), hidden(&again, "_csrf"));
        let r = b.submit(&app, &page, "/login", &[("email", &w.engineer.email), ("password", PASSWORD), ("next", "/")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        // Another browser's server-issued token does not fit this browser's cookie.
        let mut other = Browser::default();
        other.get(&app, "/login").await;
        let r = other.submit(&app, &page, "/login", &[("email", &w.engineer.email), ("password", PASSWORD), ("next", "/")]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }

    // A throttled sign-in page says when to come back, as the API does.
    async fn a_throttled_sign_in_page_has_retry_after(app) {
        let w = app.world().await;
        let mut b = Browser::default();
        let page = b.get(&app, "/login").await;
        let mut last = None;
        for _ in 0..12 {
            let r = b
                .submit(&app, &page, "/login", &[("email", &w.engineer.email), ("password", "wrong password"), ("next", "/")])
                .await;
            if r.status == StatusCode::TOO_MANY_REQUESTS {
                last = Some(r);
                break;
            }
        }
        let r = last.expect("the sign-in page was never throttled");
        let retry: i64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry >= 1, "{retry}");
    }

    // A user-administration post without a known action is a 422 page that says so, the
    // same for users that exist and ids that do not.
    async fn an_unknown_user_action_is_a_422_page(app) {
        app.reconfigure(|s| s.security.mfa_roles = vec![]);
        let admin = app.user(&[Role::Admin], None).await;
        let mut b = Browser::default();
        b.sign_in(&app, &admin.email).await;
        let home = b.get(&app, "/").await;
        for id in [admin.id, 999_999] {
            for action in [None, Some("explode")] {
                let mut fields = vec![("version", "1")];
                if let Some(a) = action {
                    fields.push(("action", a));
                }
                let r = b.submit(&app, &home, &format!("/admin/users/{id}"), &fields).await;
                assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{id} {action:?}");
                let page = html(&r);
                assert!(page.contains("Такого действия нет"), "{page}");
                assert!(!page.contains("404"), "{page}");
            }
        }
    }
}

// A JSON body may not smuggle a control character inside a nested value either.
#[tokio::test]
async fn nested_json_text_is_checked_with_its_path() {
    let app = TestApp::sqlite().await;
    let w = app.world().await;
    let req = app.started_request(&w).await;
    let body = json!({"request_id": req["id"], "work_date": "2026-03-02", "items": [
        {"description": "ok", "quantity": "1", "unit": "шт", "unit_price": "10.00"},
        {"description": "bad\u{1}", "quantity": "1", "unit": "шт", "unit_price": "10.00"}
    ]});
    let r = app.post("/api/v1/reports", &w.engineer, body).await;
    r.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(r.fields(), vec!["items[1].description"], "{}", r.body);
    let raw = Request::post("/api/v1/auth/login")
        .header("content-type", "application/json")
        .body(Body::from(
            r#"{"email":"a\u0000@example.ru","password":"x"}"#,
        ))
        .unwrap();
    let r = app.send(raw).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
}
