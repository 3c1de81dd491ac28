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
