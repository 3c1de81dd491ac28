//! Sign-in, tokens, the audit trail of sign-ins, and the OpenAPI document.

use crate::support::*;
use axum::http::{Method, StatusCode};
use ferum::domain::access::Role;
use serde_json::json;

both! {
    async fn login_and_failed_login(app) {
        let u = app.user(&[Role::ProjectManager], None).await;
        let login = |email: String, password: &'static str| {
            let app = &app;
            async move { app.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"email": email, "password": password}))).await }
        };
        let ok = login(u.email.to_uppercase(), PASSWORD).await;
        ok.assert(StatusCode::OK);
        assert_eq!(ok.body["expires_in"], 86_400);
        let wrong = login(u.email.clone(), "not the password!").await;
        let unknown = login("nobody@example.ru".into(), "not the password!").await;
        wrong.problem(StatusCode::UNAUTHORIZED, "unauthorized");
        unknown.problem(StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(wrong.body["detail"], unknown.body["detail"], "no account enumeration");
        let actions: Vec<(String, Option<i64>)> = sqlx::query_as("SELECT action, user_id FROM audit_log WHERE entity = 'user' ORDER BY id")
            .fetch_all(app.db.pool())
            .await
            .unwrap();
        assert_eq!(actions, [("login".to_owned(), Some(u.id)), ("login_failed".to_owned(), Some(u.id)), ("login_failed".to_owned(), None)]);
        let secrets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE after_json LIKE '%not the password%'")
            .fetch_one(app.db.pool())
            .await
            .unwrap();
        assert_eq!(secrets, 0, "passwords never reach the audit log");
    }

    async fn tokens_are_required_valid_and_current(app) {
        let u = app.user(&[Role::Admin], None).await;
        let r = app.call(Method::GET, "/api/v1/requests", None, None).await;
        r.problem(StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(r.headers["www-authenticate"], "Bearer");
        app.call(Method::GET, "/api/v1/requests", Some("garbage"), None).await.problem(StatusCode::UNAUTHORIZED, "unauthorized");
        let forged = ferum::auth::TokenKeys::new(b"some other key some other key!!!", chrono::Duration::hours(24)).issue(ferum::domain::ids::UserId(u.id), "whatever", app.clock.now()).unwrap();
        app.call(Method::GET, "/api/v1/me", Some(&forged), None).await.problem(StatusCode::UNAUTHORIZED, "unauthorized");
        app.get("/api/v1/me", &u).await.assert(StatusCode::OK);
        // A disabled user's token stops working at once.
        let other = app.user(&[Role::Engineer], None).await;
        app.get("/api/v1/me", &other).await.assert(StatusCode::OK);
        app.patch(&format!("/api/v1/users/{}", other.id), &u, json!({"version": 1, "enabled": false})).await.assert(StatusCode::OK);
        app.get("/api/v1/me", &other).await.problem(StatusCode::UNAUTHORIZED, "unauthorized");
        let login = app.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"email": other.email, "password": PASSWORD}))).await;
        login.problem(StatusCode::UNAUTHORIZED, "unauthorized");
        // Tokens expire.
        app.clock.advance(chrono::Duration::hours(25));
        app.get("/api/v1/me", &u).await.problem(StatusCode::UNAUTHORIZED, "unauthorized");
    }

    async fn users_are_managed_by_admins(app) {
        let admin = app.user(&[Role::Admin], None).await;
        let pm = app.user(&[Role::ProjectManager], None).await;
        let c = app.customer(&admin, "A", next_inn()).await;
        let body = json!({"email": "Client@Example.ru", "name": "Клиент", "roles": ["client"], "customer_id": c, "password": "a long enough password"});
        app.post("/api/v1/users", &pm, body.clone()).await.problem(StatusCode::FORBIDDEN, "forbidden");
        let r = app.post("/api/v1/users", &admin, body.clone()).await;
        r.assert(StatusCode::CREATED);
        assert_eq!(r.body["email"], "client@example.ru");
        assert!(r.body.get("password_hash").is_none() && r.body.get("password").is_none());
        app.post("/api/v1/users", &admin, body).await.problem(StatusCode::CONFLICT, "duplicate");
        let bad = app.post("/api/v1/users", &admin, json!({"email": "x", "name": "", "roles": ["client", "engineer"], "password": "short"})).await;
        bad.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(bad.fields(), ["email", "name", "roles", "password"]);
        let bad = app.post("/api/v1/users", &admin, json!({"email": "y@example.ru", "name": "Y", "roles": ["wizard"], "password": "a long enough password"})).await;
        assert_eq!(bad.fields(), ["roles[0]"]);
        // Users see their own record; pm can list users.
        assert_eq!(app.get("/api/v1/users", &pm).await.status, StatusCode::OK);
        let eng = app.user(&[Role::Engineer], None).await;
        app.get("/api/v1/users", &eng).await.problem(StatusCode::NOT_FOUND, "not_found");
        app.get(&format!("/api/v1/users/{}", eng.id), &eng).await.assert(StatusCode::OK);
        // Admins cannot lock themselves out.
        app.patch(&format!("/api/v1/users/{}", admin.id), &admin, json!({"version": 1, "enabled": false})).await.problem(StatusCode::CONFLICT, "self_lockout");
    }

    async fn openapi_describes_every_route(app) {
        let r = app.call(Method::GET, "/api/v1/openapi.json", None, None).await;
        r.assert(StatusCode::OK);
        let paths = r.body["paths"].as_object().unwrap();
        for p in [
            "/api/v1/auth/login", "/api/v1/me", "/api/v1/users", "/api/v1/users/{id}",
            "/api/v1/customers", "/api/v1/customers/{id}", "/api/v1/objects", "/api/v1/objects/{id}",
            "/api/v1/projects", "/api/v1/projects/{id}", "/api/v1/projects/{id}/objects",
            "/api/v1/requests", "/api/v1/requests/{id}", "/api/v1/requests/{id}/status",
            "/api/v1/requests/{id}/comments", "/api/v1/requests/{id}/history",
            "/api/v1/reports", "/api/v1/reports/{id}", "/api/v1/reports/{id}/submit", "/api/v1/reports/{id}/approve",
            "/api/v1/audit",
        ] {
            assert!(paths.contains_key(p), "{p} missing from the OpenAPI document");
        }
        let schemas = r.body["components"]["schemas"].as_object().unwrap();
        for s in ["ServiceRequest", "Report", "WorkItem", "Customer", "ServiceObject", "Project", "Problem", "Status", "RequestType"] {
            assert!(schemas.contains_key(s), "schema {s} missing");
        }
        // Unknown routes answer with a problem too.
        app.call(Method::GET, "/api/v1/nope", None, None).await.problem(StatusCode::NOT_FOUND, "not_found");
    }

    async fn every_change_is_audited(app) {
        let w = app.world().await;
        let req = app.started_request(&w).await;
        let rid = req["id"].as_i64().unwrap();
        let rep = app.report(&w.engineer, rid).await;
        app.post(&format!("/api/v1/reports/{}/submit", rep["id"]), &w.engineer, json!({})).await.assert(StatusCode::OK);
        let other = app.object(&w.admin, w.customer, "Temp").await;
        app.patch(&format!("/api/v1/objects/{other}"), &w.admin, json!({"version": 1, "notes": "n"})).await.assert(StatusCode::OK);
        app.delete(&format!("/api/v1/objects/{other}"), &w.admin).await.assert(StatusCode::NO_CONTENT);
        let rows: Vec<AuditRow> =
            sqlx::query_as("SELECT action, entity, user_id, before_json, after_json FROM audit_log ORDER BY id")
                .fetch_all(app.db.pool())
                .await
                .unwrap();
        let seen: Vec<String> = rows.iter().map(|r| format!("{} {}", r.0, r.1)).collect();
        for expected in ["create customer", "create object", "create project", "create request", "transition request", "create report", "submit report", "update object", "delete object"] {
            assert!(seen.contains(&expected.to_owned()), "{expected} not audited: {seen:?}");
        }
        let update = rows.iter().find(|r| r.0 == "update" && r.1 == "object").unwrap();
        assert!(update.3.as_deref().unwrap().contains("\"notes\":\"\""));
        assert!(update.4.as_deref().unwrap().contains("\"notes\":\"n\""));
        assert_eq!(update.2, Some(w.admin.id));
        let transition = rows.iter().find(|r| r.0 == "transition").unwrap();
        assert_eq!(transition.2, Some(w.engineer.id));
        let r = app.get("/api/v1/audit?entity=object", &w.admin).await;
        r.assert(StatusCode::OK);
        assert!(r.ids().len() >= 3);
        app.get("/api/v1/audit", &w.engineer).await.problem(StatusCode::NOT_FOUND, "not_found");
    }
}

type AuditRow = (String, String, Option<i64>, Option<String>, Option<String>);
