//! Security controls: the tamper-evident audit chain.

use crate::support::*;
use ferum::domain::audit::Break;
use ferum::store::audit;
use serde_json::json;

both! {
    async fn audit_chain_detects_a_direct_sql_edit(app) {
        let w = app.world().await;
        for _ in 0..3 {
            app.request(&w.admin, w.object, "maintenance").await;
        }
        let n = app.count("audit_log").await;
        assert_eq!(audit::verify(&app.db).await.unwrap(), Ok(n));
        let victim: i64 = sqlx::query_scalar("SELECT id FROM audit_log WHERE action = 'create' AND entity = 'request' ORDER BY id LIMIT 1")
            .fetch_one(app.db.pool())
            .await
            .unwrap();
        sqlx::query(&format!("UPDATE audit_log SET after_json = '{{}}' WHERE id = {victim}")).execute(app.db.pool()).await.unwrap();
        assert_eq!(audit::verify(&app.db).await.unwrap(), Err(Break::Content { id: victim }));
        // The command line names the same entry and fails.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferum"))
            .args(["audit", "verify"])
            .env("DATABASE_URL", app.url.as_str())
            .env("FERUM_DATA_KEY", &app.data_key)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("entry {victim} was changed")), "{err}");
    }

    async fn audit_chain_detects_removed_entries(app) {
        let w = app.world().await;
        for _ in 0..3 {
            app.request(&w.admin, w.object, "maintenance").await;
        }
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM audit_log ORDER BY id").fetch_all(app.db.pool()).await.unwrap();
        let (middle, last) = (ids[ids.len() / 2], *ids.last().unwrap());
        sqlx::query(&format!("DELETE FROM audit_log WHERE id = {last}")).execute(app.db.pool()).await.unwrap();
        let before_last = ids[ids.len() - 2];
        assert_eq!(audit::verify(&app.db).await.unwrap(), Err(Break::Tail { last_id: before_last }));
        sqlx::query(&format!("DELETE FROM audit_log WHERE id = {middle}")).execute(app.db.pool()).await.unwrap();
        let next = ids[ids.len() / 2 + 1];
        assert_eq!(audit::verify(&app.db).await.unwrap(), Err(Break::Link { id: next }));
    }

    async fn audit_chain_stays_linear_under_concurrent_writes(app) {
        let w = app.world().await;
        let app = std::sync::Arc::new(app);
        let mut tasks = Vec::new();
        for i in 0..20 {
            let app = app.clone();
            let admin = w.admin.clone();
            let object = w.object;
            tasks.push(tokio::spawn(async move {
                app.post("/api/v1/requests", &admin, json!({"type": "emergency", "subject": format!("R{i}"), "object_id": object})).await.status
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap().is_success());
        }
        let n = app.count("audit_log").await;
        assert_eq!(audit::verify(&app.db).await.unwrap(), Ok(n));
    }
}

both! {
    async fn answers_carry_security_headers_and_cors_only_for_allowed_origins(app) {
        let u = app.user(&[ferum::domain::access::Role::Admin], None).await;
        for r in [app.get("/api/v1/me", &u).await, app.call(axum::http::Method::GET, "/api/v1/nope", None, None).await] {
            for h in ["content-security-policy", "x-content-type-options", "referrer-policy", "strict-transport-security", "x-request-id"] {
                assert!(r.headers.contains_key(h), "{h} missing");
            }
            assert_eq!(r.headers["x-content-type-options"], "nosniff");
            assert!(r.headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
        }
        let preflight = |origin: &'static str| {
            axum::http::Request::builder()
                .method(axum::http::Method::OPTIONS)
                .uri("/api/v1/requests")
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let ok = app.send(preflight("https://desk.example.ru")).await;
        assert_eq!(ok.headers["access-control-allow-origin"], "https://desk.example.ru");
        let evil = app.send(preflight("https://evil.example.com")).await;
        assert!(!evil.headers.contains_key("access-control-allow-origin"));
    }

    async fn server_errors_reveal_nothing_but_the_request_id(app) {
        // Break the database under the app: the answer is a generic 500 with the request id.
        let u = app.user(&[ferum::domain::access::Role::Admin], None).await;
        sqlx::query("DROP TABLE request_comments").execute(app.db.pool()).await.unwrap();
        let w = app.request_on_new_world(&u).await;
        let r = app.get(&format!("/api/v1/requests/{w}/comments"), &u).await;
        r.problem(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal");
        let body = r.body.to_string();
        assert!(!body.to_lowercase().contains("request_comments") && !body.contains("sqlx"), "{body}");
        assert_eq!(r.body["request_id"], r.headers["x-request-id"].to_str().unwrap());
    }
}

mod sessions_and_mfa {
    use crate::support::*;
    use axum::http::{Method, StatusCode};
    use ferum::domain::access::Role;
    use serde_json::{Value, json};

    async fn login(app: &TestApp, email: &str) -> Value {
        let r = app
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email, "password": PASSWORD})),
            )
            .await;
        r.assert(StatusCode::OK);
        r.body
    }

    both! {
        async fn refresh_tokens_rotate_and_reuse_revokes_the_family(app) {
            let u = app.user(&[Role::Engineer], None).await;
            let first = login(&app, &u.email).await;
            let (access1, refresh1) = (first["access_token"].as_str().unwrap().to_owned(), first["refresh_token"].as_str().unwrap().to_owned());
            let r = app.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": refresh1}))).await;
            r.assert(StatusCode::OK);
            let (access2, refresh2) = (r.body["access_token"].as_str().unwrap().to_owned(), r.body["refresh_token"].as_str().unwrap().to_owned());
            assert_ne!(refresh1, refresh2);
            app.call(Method::GET, "/api/v1/me", Some(&access2), None).await.assert(StatusCode::OK);
            // The rotated token comes back: refused, and the whole family ends.
            let again = app.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": refresh1}))).await;
            again.problem(StatusCode::UNAUTHORIZED, "unauthorized");
            app.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": refresh2}))).await.problem(StatusCode::UNAUTHORIZED, "unauthorized");
            for t in [&access1, &access2] {
                app.call(Method::GET, "/api/v1/me", Some(t), None).await.problem(StatusCode::UNAUTHORIZED, "unauthorized");
            }
            let reuse: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'token_reuse'").fetch_one(app.db.pool()).await.unwrap();
            assert_eq!(reuse, 1);
            // Refresh tokens are stored hashed, never as issued.
            let stored: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM sessions WHERE refresh_hash = '{refresh2}'")).fetch_one(app.db.pool()).await.unwrap();
            assert_eq!(stored, 0);
            // Unknown and expired refresh tokens.
            app.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": "nonsense"}))).await.problem(StatusCode::UNAUTHORIZED, "unauthorized");
            let other = login(&app, &u.email).await;
            app.clock.advance(chrono::Duration::days(31));
            app.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": other["refresh_token"]}))).await.problem(StatusCode::UNAUTHORIZED, "unauthorized");
        }

        async fn logout_and_account_changes_end_sessions(app) {
            let admin = app.user(&[Role::Admin], None).await;
            let u = app.user(&[Role::Engineer], None).await;
            let s1 = login(&app, &u.email).await;
            let s2 = login(&app, &u.email).await;
            let t1 = s1["access_token"].as_str().unwrap().to_owned();
            let t2 = s2["access_token"].as_str().unwrap().to_owned();
            app.call(Method::POST, "/api/v1/auth/logout", Some(&t1), None).await.assert(StatusCode::NO_CONTENT);
            app.call(Method::GET, "/api/v1/me", Some(&t1), None).await.problem(StatusCode::UNAUTHORIZED, "unauthorized");
            app.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": s1["refresh_token"]}))).await.problem(StatusCode::UNAUTHORIZED, "unauthorized");
            // The other session lives on until the password changes.
            app.call(Method::GET, "/api/v1/me", Some(&t2), None).await.assert(StatusCode::OK);
            app.patch(&format!("/api/v1/users/{}", u.id), &admin, json!({"version": 1, "password": "another long passphrase"})).await.assert(StatusCode::OK);
            app.call(Method::GET, "/api/v1/me", Some(&t2), None).await.problem(StatusCode::UNAUTHORIZED, "unauthorized");
            // New roles end sessions too, and are audited as a permission change.
            let t3 = app.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"email": u.email, "password": "another long passphrase"}))).await.body["access_token"].as_str().unwrap().to_owned();
            app.call(Method::GET, "/api/v1/me", Some(&t3), None).await.assert(StatusCode::OK);
            app.patch(&format!("/api/v1/users/{}", u.id), &admin, json!({"version": 2, "roles": ["engineer", "project_manager"]})).await.assert(StatusCode::OK);
            app.call(Method::GET, "/api/v1/me", Some(&t3), None).await.problem(StatusCode::UNAUTHORIZED, "unauthorized");
            let changes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'permission_change'").fetch_one(app.db.pool()).await.unwrap();
            assert_eq!(changes, 1);
            // Weak passwords are refused.
            for (pw, code) in [("qwerty123456", "too_common"), (u.email.as_str(), "same_as_email"), ("short", "too_short")] {
                let r = app.patch(&format!("/api/v1/users/{}", u.id), &admin, json!({"version": 3, "password": pw})).await;
                r.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
                assert_eq!(r.body["errors"][0]["code"], code);
            }
        }

        async fn second_factor_enrolment_codes_replay_and_lockout(app) {
            let admin = app.user(&[Role::Admin], None).await;
            let first = login(&app, &admin.email).await;
            assert_eq!(first["mfa_enrollment_required"], true);
            assert!(first.get("access_token").is_none());
            let mfa = first["mfa_token"].as_str().unwrap().to_owned();
            // The enrolment token opens nothing else.
            app.call(Method::GET, "/api/v1/me", Some(&mfa), None).await.problem(StatusCode::UNAUTHORIZED, "unauthorized");
            app.call(Method::GET, "/api/v1/requests", Some(&mfa), None).await.problem(StatusCode::UNAUTHORIZED, "unauthorized");
            let setup = app.call(Method::POST, "/api/v1/auth/2fa/setup", Some(&mfa), None).await;
            setup.assert(StatusCode::OK);
            let secret = setup.body["secret"].as_str().unwrap().to_owned();
            assert!(setup.body["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/"));
            assert!(setup.body["qr_svg"].as_str().unwrap().contains("<svg"));
            app.call(Method::POST, "/api/v1/auth/2fa/confirm", Some(&mfa), Some(json!({"code": "000000"}))).await.problem(StatusCode::UNAUTHORIZED, "unauthorized");
            let code = app.totp(&secret);
            let done = app.call(Method::POST, "/api/v1/auth/2fa/confirm", Some(&mfa), Some(json!({"code": code}))).await;
            done.assert(StatusCode::OK);
            let recovery: Vec<String> = done.body["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
            assert_eq!(recovery.len(), 10);
            let token = done.body["tokens"]["access_token"].as_str().unwrap().to_owned();
            app.call(Method::GET, "/api/v1/me", Some(&token), None).await.assert(StatusCode::OK);
            // The secret and the codes are not stored as given.
            let stored: String = sqlx::query_scalar(&format!("SELECT totp_secret FROM users WHERE id = {}", admin.id)).fetch_one(app.db.pool()).await.unwrap();
            assert!(stored.starts_with("enc:v1:") && !stored.contains(&secret), "{stored}");
            let plain: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM recovery_codes WHERE code_hash = '{}'", recovery[0])).fetch_one(app.db.pool()).await.unwrap();
            assert_eq!(plain, 0);

            // Next sign-in: a code is needed, accepted once.
            app.clock.advance(chrono::Duration::seconds(30));
            let second = login(&app, &admin.email).await;
            assert_eq!(second["mfa_required"], true);
            let mfa = second["mfa_token"].as_str().unwrap().to_owned();
            let code = app.totp(&secret);
            app.call(Method::POST, "/api/v1/auth/2fa", None, Some(json!({"mfa_token": mfa, "code": code}))).await.assert(StatusCode::OK);
            let replay = app.call(Method::POST, "/api/v1/auth/2fa", None, Some(json!({"mfa_token": mfa, "code": code}))).await;
            replay.problem(StatusCode::UNAUTHORIZED, "unauthorized");
            // Two more wrong codes make three: locked until the window ends.
            for _ in 0..2 {
                app.call(Method::POST, "/api/v1/auth/2fa", None, Some(json!({"mfa_token": mfa, "code": "123456"}))).await.problem(StatusCode::UNAUTHORIZED, "unauthorized");
            }
            let locked = app.call(Method::POST, "/api/v1/auth/2fa", None, Some(json!({"mfa_token": mfa, "code": recovery[0]}))).await;
            locked.problem(StatusCode::TOO_MANY_REQUESTS, "mfa_locked");
            assert!(locked.headers["retry-after"].to_str().unwrap().parse::<i64>().unwrap() > 0);
            // After the window, a recovery code works once.
            app.clock.advance(chrono::Duration::seconds(31));
            let third = login(&app, &admin.email).await;
            let mfa = third["mfa_token"].as_str().unwrap().to_owned();
            app.call(Method::POST, "/api/v1/auth/2fa", None, Some(json!({"mfa_token": mfa, "code": recovery[0].to_lowercase()}))).await.assert(StatusCode::OK);
            app.call(Method::POST, "/api/v1/auth/2fa", None, Some(json!({"mfa_token": mfa, "code": recovery[0]}))).await.problem(StatusCode::UNAUTHORIZED, "unauthorized");
            // An expired second-factor token is refused.
            app.clock.advance(chrono::Duration::minutes(6));
            let code = app.totp(&secret);
            app.call(Method::POST, "/api/v1/auth/2fa", None, Some(json!({"mfa_token": mfa, "code": code}))).await.problem(StatusCode::UNAUTHORIZED, "unauthorized");
            // Turning it off needs the password and a code.
            let r = app.call(Method::POST, "/api/v1/auth/2fa/disable", Some(&token), Some(json!({"password": "wrong password!!", "code": code}))).await;
            r.problem(StatusCode::UNAUTHORIZED, "unauthorized");
            let r = app.call(Method::POST, "/api/v1/auth/2fa/disable", Some(&token), Some(json!({"password": PASSWORD, "code": code}))).await;
            r.assert(StatusCode::NO_CONTENT);
            let events: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_log WHERE action LIKE 'mfa%' ORDER BY id").fetch_all(app.db.pool()).await.unwrap();
            assert_eq!(
                events,
                ["mfa_enabled", "mfa_failed", "mfa_failed", "mfa_locked", "mfa_recovery_code_used", "mfa_failed", "mfa_disable_failed", "mfa_disabled"]
            );
            // No secret reached the audit log.
            let leaked: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM audit_log WHERE COALESCE(after_json, '') LIKE '%{secret}%' OR COALESCE(before_json, '') LIKE '%{}%'", recovery[1])).fetch_one(app.db.pool()).await.unwrap();
            assert_eq!(leaked, 0);
        }
    }
}

mod throttling {
    use crate::support::*;
    use axum::http::{Method, StatusCode};
    use ferum::domain::access::Role;
    use ferum::throttle::{Limiter, Rule};
    use serde_json::json;

    async fn attempt(app: &TestApp, email: &str, password: &str) -> Resp {
        app.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": email, "password": password})),
        )
        .await
    }

    both! {
        async fn failed_logins_per_address_are_limited_successful_ones_are_not(app) {
            let u = app.user(&[Role::Engineer], None).await;
            // Successful sign-ins never count.
            for _ in 0..15 {
                attempt(&app, &u.email, PASSWORD).await.assert(StatusCode::OK);
            }
            // Ten failures (on different accounts) spend the address's burst…
            for i in 0..10 {
                attempt(&app, &format!("nobody{i}@example.ru"), "wrong password!!").await.problem(StatusCode::UNAUTHORIZED, "unauthorized");
            }
            // …and then even the right password waits.
            let r = attempt(&app, &u.email, PASSWORD).await;
            r.problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
            let retry: i64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&retry), "{retry}");
            app.clock.advance(chrono::Duration::seconds(61));
            attempt(&app, &u.email, PASSWORD).await.assert(StatusCode::OK);
        }

        async fn failed_logins_per_account_slow_down_stop_and_alert(app) {
            app.reconfigure(|s| {
                s.limits.login_ip = Rule { burst: 1000, per: chrono::Duration::seconds(1) };
                s.limits.login_account_daily = 12;
                s.limits.alert_after = 8;
            });
            let u = app.user(&[Role::Engineer], None).await;
            for _ in 0..5 {
                attempt(&app, &u.email, "wrong password!!").await.problem(StatusCode::UNAUTHORIZED, "unauthorized");
            }
            attempt(&app, &u.email, PASSWORD).await.problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
            // One more try per minute after that; at 8 failures an alert is queued.
            for _ in 0..7 {
                app.clock.advance(chrono::Duration::seconds(61));
                attempt(&app, &u.email, "wrong password!!").await.problem(StatusCode::UNAUTHORIZED, "unauthorized");
            }
            let alerts: Vec<String> = sqlx::query_scalar("SELECT payload FROM outbox WHERE kind = 'login_alert' ORDER BY id").fetch_all(app.db.pool()).await.unwrap();
            assert_eq!(alerts.len(), 2, "at 8 and at 12 failures");
            assert!(alerts[0].contains(&u.email) && alerts[0].contains("\"failures\":8"), "{}", alerts[0]);
            // 12 failures today: a hard stop until tomorrow, whatever the delay.
            app.clock.advance(chrono::Duration::minutes(30));
            let r = attempt(&app, &u.email, PASSWORD).await;
            r.problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
            assert!(r.headers["retry-after"].to_str().unwrap().parse::<i64>().unwrap() > 60);
            app.clock.advance(chrono::Duration::days(1));
            attempt(&app, &u.email, PASSWORD).await.assert(StatusCode::OK);
        }

        async fn unknown_users_and_wrong_passwords_answer_alike(app) {
            let u = app.user(&[Role::Engineer], None).await;
            let a = attempt(&app, &u.email, "wrong password!!").await;
            let b = attempt(&app, "nobody@example.ru", "wrong password!!").await;
            assert_eq!(a.status, b.status);
            let strip = |v: &serde_json::Value| {
                let mut v = v.clone();
                v.as_object_mut().unwrap().remove("request_id");
                v
            };
            assert_eq!(strip(&a.body), strip(&b.body));
        }

        async fn api_requests_per_user_are_limited(app) {
            app.reconfigure(|s| s.limits.api_user = Some(Rule { burst: 3, per: chrono::Duration::seconds(20) }));
            let u = app.user(&[Role::Admin], None).await;
            let other = app.user(&[Role::Admin], None).await;
            for _ in 0..3 {
                app.get("/api/v1/me", &u).await.assert(StatusCode::OK);
            }
            let r = app.get("/api/v1/me", &u).await;
            r.problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
            assert_eq!(r.headers["retry-after"], "20");
            // Another user is not affected; time refills.
            app.get("/api/v1/me", &other).await.assert(StatusCode::OK);
            app.clock.advance(chrono::Duration::seconds(20));
            app.get("/api/v1/me", &u).await.assert(StatusCode::OK);
            // Switched off (`FERUM_API_REQUESTS_PER_MINUTE=off`), nothing is limited.
            app.reconfigure(|s| s.limits.api_user = None);
            for _ in 0..10 {
                app.get("/api/v1/me", &u).await.assert(StatusCode::OK);
            }
        }
    }

    /// Two instances sharing Redis share the failure budget of an address.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn limits_are_shared_between_instances_through_redis() {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let limiter = match Limiter::connect(Some(&url)).await {
            Ok(l) => l,
            Err(e) if std::env::var("CI").is_err() => {
                eprintln!("skipping: Redis unreachable ({e})");
                return;
            }
            Err(e) => panic!("CI is set but Redis is unreachable: {e}"),
        };
        let namespace = format!("it-{}-{}:", std::process::id(), next_inn());
        let mut a = TestApp::sqlite().await;
        let mut b = TestApp::sqlite().await;
        for app in [&mut a, &mut b] {
            let (l, n) = (limiter.clone(), namespace.clone());
            app.reconfigure(move |s| {
                s.limiter = l;
                s.limits.namespace = n;
            });
        }
        for i in 0..5 {
            attempt(&a, &format!("x{i}@example.ru"), "wrong password!!")
                .await
                .assert(StatusCode::UNAUTHORIZED);
            attempt(&b, &format!("y{i}@example.ru"), "wrong password!!")
                .await
                .assert(StatusCode::UNAUTHORIZED);
        }
        attempt(&a, "z@example.ru", "wrong password!!")
            .await
            .problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        attempt(&b, "z@example.ru", "wrong password!!")
            .await
            .problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    }
}

mod personal_data {
    use crate::support::*;
    use axum::http::StatusCode;
    use ferum::crypto::DataKeys;
    use ferum::domain::access::Role;
    use ferum::store::pii;
    use serde_json::json;

    both! {
        async fn contacts_are_encrypted_at_rest_and_found_by_blind_index(app) {
            let admin = app.user(&[Role::Admin], None).await;
            let r = app.post("/api/v1/customers", &admin, json!({"name": "ООО Тайна", "inn": next_inn(), "contact_email": "Secret.Boss@Example.ru", "contact_phone": "+7 495 111-22-33"})).await;
            r.assert(StatusCode::CREATED);
            assert_eq!(r.body["contact_email"], "secret.boss@example.ru");
            let id = r.id();
            let (email, phone, idx): (String, String, String) =
                sqlx::query_as(&format!("SELECT contact_email, contact_phone, contact_email_idx FROM customers WHERE id = {id}"))
                    .fetch_one(app.db.pool())
                    .await
                    .unwrap();
            assert!(email.starts_with("enc:v1:") && !email.contains("secret"), "{email}");
            assert!(phone.starts_with("enc:v1:") && !phone.contains("495"), "{phone}");
            assert_eq!(idx.len(), 64);
            assert_eq!(app.get(&format!("/api/v1/customers/{id}"), &admin).await.body["contact_phone"], "+7 495 111-22-33");
            let found = app.get("/api/v1/customers?contact_email=SECRET.BOSS%40example.ru", &admin).await;
            assert_eq!(found.ids(), [id]);
            assert!(app.get("/api/v1/customers?contact_email=other%40example.ru", &admin).await.ids().is_empty());
            // Users' phones too.
            let u = app.post("/api/v1/users", &admin, json!({"email": "eng@example.ru", "name": "И", "phone": "+7 900 000-00-01", "roles": ["engineer"], "password": "a long enough password"})).await;
            u.assert(StatusCode::CREATED);
            assert_eq!(u.body["phone"], "+7 900 000-00-01");
            let stored: String = sqlx::query_scalar(&format!("SELECT phone FROM users WHERE id = {}", u.id())).fetch_one(app.db.pool()).await.unwrap();
            assert!(stored.starts_with("enc:v1:"), "{stored}");
        }

        async fn a_wrong_key_stops_the_service_and_changes_nothing(app) {
            let admin = app.user(&[Role::Admin], None).await;
            app.customer(&admin, "A", next_inn()).await;
            let before: Vec<(i64, String)> = sqlx::query_as("SELECT id, contact_email FROM customers ORDER BY id").fetch_all(app.db.pool()).await.unwrap();
            let err = pii::startup(&app.db, &DataKeys::generate()).await.unwrap_err().to_string();
            assert!(err.contains("does not fit this database"), "{err}");
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferum"))
                .args(["audit", "verify"])
                .env("DATABASE_URL", app.url.as_str())
                .env("FERUM_DATA_KEY", DataKeys::generate().to_config_string())
                .output()
                .unwrap();
            assert!(!out.status.success());
            assert!(String::from_utf8_lossy(&out.stderr).contains("does not fit this database"));
            let after: Vec<(i64, String)> = sqlx::query_as("SELECT id, contact_email FROM customers ORDER BY id").fetch_all(app.db.pool()).await.unwrap();
            assert_eq!(before, after);
        }

        async fn rotation_re_encrypts_under_the_new_key(app) {
            let admin = app.user(&[Role::Admin], None).await;
            let id = app.customer(&admin, "A", next_inn()).await;
            let old = DataKeys::parse(&app.data_key).unwrap();
            let new = old.rotated();
            let n = pii::reencrypt(&app.db, &new).await.unwrap();
            assert_eq!(n, 1, "one customer e-mail (the phone is empty)");
            let stored: String = sqlx::query_scalar(&format!("SELECT contact_email FROM customers WHERE id = {id}")).fetch_one(app.db.pool()).await.unwrap();
            assert!(stored.starts_with(&format!("enc:v1:{}:", new.current_id())), "{stored}");
            assert!(!new.needs_rotation(&stored));
            pii::startup(&app.db, &new).await.unwrap();
            // The old key alone no longer reads the canary.
            assert!(pii::startup(&app.db, &DataKeys::parse(&old.to_config_string().split(',').filter(|p| !p.starts_with(new.current_id())).collect::<Vec<_>>().join(",")).unwrap()).await.is_err());
        }
    }
}
