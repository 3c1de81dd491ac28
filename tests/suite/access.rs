//! The access matrix, proved against the database: invisible records are 404 everywhere.

use crate::support::*;
use axum::http::{Method, StatusCode};
use ferum::domain::access::Role;
use serde_json::json;

both! {
    async fn two_clients_never_see_each_other(app) {
        let admin = app.user(&[Role::Admin], None).await;
        let engineer = app.user(&[Role::Engineer], None).await;
        let ca = app.customer(&admin, "Альфа", next_inn()).await;
        let cb = app.customer(&admin, "Бета", next_inn()).await;
        let oa = app.object(&admin, ca, "Объект А").await;
        let ob = app.object(&admin, cb, "Объект Б").await;
        let pa = app.project(&admin, ca, &[oa], "active").await;
        let pb = app.project(&admin, cb, &[ob], "active").await;
        let a = app.user(&[Role::Client], Some(ca)).await;
        let b = app.user(&[Role::Client], Some(cb)).await;
        let ra = app.request(&a, oa, "maintenance").await["id"].as_i64().unwrap();
        let rb = app.request(&b, ob, "maintenance").await["id"].as_i64().unwrap();
        // A report on B's request, submitted so B could see it.
        app.patch(&format!("/api/v1/requests/{rb}"), &admin, json!({"version": 1, "assigned_to": engineer.id})).await.assert(StatusCode::OK);
        app.put(&format!("/api/v1/requests/{rb}/status"), &engineer, json!({"status": "in_progress"})).await.assert(StatusCode::OK);
        let repb = app.report(&engineer, rb).await["id"].as_i64().unwrap();
        app.post(&format!("/api/v1/reports/{repb}/submit"), &engineer, json!({})).await.assert(StatusCode::OK);
        let snapshot = audit_free_snapshot(&app).await;

        // Lists, counts and search leave B's records out.
        assert_eq!(app.get("/api/v1/customers", &a).await.ids(), [ca]);
        assert_eq!(app.get("/api/v1/objects", &a).await.ids(), [oa]);
        assert_eq!(app.get("/api/v1/projects", &a).await.ids(), [pa]);
        assert_eq!(app.get("/api/v1/requests", &a).await.ids(), [ra]);
        assert!(app.get("/api/v1/reports", &a).await.ids().is_empty());
        assert!(app.get("/api/v1/requests?q=SR", &a).await.ids() == [ra]);
        assert!(app.get(&format!("/api/v1/requests?customer={cb}"), &a).await.ids().is_empty());
        assert!(app.get("/api/v1/customers?q=бета", &a).await.ids().is_empty());
        assert!(app.get("/api/v1/users", &a).await.status == StatusCode::NOT_FOUND);

        // Every id-taking endpoint answers 404 for B's ids, whatever the method.
        let not_found: Vec<(Method, String, Option<serde_json::Value>)> = vec![
            (Method::GET, format!("/api/v1/customers/{cb}"), None),
            (Method::PATCH, format!("/api/v1/customers/{cb}"), Some(json!({"version": 1, "name": "x"}))),
            (Method::DELETE, format!("/api/v1/customers/{cb}"), None),
            (Method::GET, format!("/api/v1/objects/{ob}"), None),
            (Method::PATCH, format!("/api/v1/objects/{ob}"), Some(json!({"version": 1, "name": "x"}))),
            (Method::DELETE, format!("/api/v1/objects/{ob}"), None),
            (Method::GET, format!("/api/v1/projects/{pb}"), None),
            (Method::PATCH, format!("/api/v1/projects/{pb}"), Some(json!({"version": 1, "name": "x"}))),
            (Method::DELETE, format!("/api/v1/projects/{pb}"), None),
            (Method::GET, format!("/api/v1/projects/{pb}/objects"), None),
            (Method::POST, format!("/api/v1/projects/{pb}/objects"), Some(json!({"object_id": ob}))),
            (Method::DELETE, format!("/api/v1/projects/{pb}/objects?object_id={ob}"), None),
            (Method::GET, format!("/api/v1/requests/{rb}"), None),
            (Method::PATCH, format!("/api/v1/requests/{rb}"), Some(json!({"version": 1, "subject": "x"}))),
            (Method::DELETE, format!("/api/v1/requests/{rb}"), None),
            (Method::PUT, format!("/api/v1/requests/{rb}/status"), Some(json!({"status": "cancelled"}))),
            (Method::GET, format!("/api/v1/requests/{rb}/comments"), None),
            (Method::POST, format!("/api/v1/requests/{rb}/comments"), Some(json!({"body": "hi"}))),
            (Method::GET, format!("/api/v1/requests/{rb}/history"), None),
            (Method::GET, format!("/api/v1/reports/{repb}"), None),
            (Method::PATCH, format!("/api/v1/reports/{repb}"), Some(json!({"version": 1, "notes": "x"}))),
            (Method::DELETE, format!("/api/v1/reports/{repb}"), None),
            (Method::POST, format!("/api/v1/reports/{repb}/submit"), Some(json!({}))),
            (Method::POST, format!("/api/v1/reports/{repb}/approve"), Some(json!({}))),
        ];
        for (m, path, body) in not_found {
            let r = app.call(m.clone(), &path, Some(&a.token), body).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{m} {path}: {}", r.body);
            assert_eq!(r.code(), "not_found");
        }
        // Creating with B's ids is refused without revealing them.
        let r = app.post("/api/v1/requests", &a, json!({"type": "maintenance", "subject": "x", "object_id": ob})).await;
        assert_eq!((r.status, r.fields()), (StatusCode::UNPROCESSABLE_ENTITY, vec!["object_id".to_owned()]));
        let r = app.post("/api/v1/requests", &a, json!({"type": "maintenance", "subject": "x", "customer_id": cb})).await;
        assert_eq!(r.fields(), ["customer_id"]);
        let r = app.post("/api/v1/requests", &a, json!({"type": "maintenance", "subject": "x", "project_id": pb})).await;
        assert_eq!(r.fields(), ["project_id"]);
        assert_eq!(audit_free_snapshot(&app).await, snapshot, "B's data is unchanged");

        // And the other way round, B sees its own report but nothing of A.
        assert_eq!(app.get("/api/v1/reports", &b).await.ids(), [repb]);
        app.get(&format!("/api/v1/requests/{ra}"), &b).await.problem(StatusCode::NOT_FOUND, "not_found");
        app.put(&format!("/api/v1/requests/{ra}/status"), &b, json!({"status": "cancelled"})).await.problem(StatusCode::NOT_FOUND, "not_found");
        app.post(&format!("/api/v1/requests/{ra}/comments"), &b, json!({"body": "x"})).await.problem(StatusCode::NOT_FOUND, "not_found");
    }

    async fn engineers_see_only_what_their_requests_touch(app) {
        let w = app.world().await;
        let other_customer = app.customer(&w.admin, "Другой", next_inn()).await;
        app.object(&w.admin, other_customer, "Чужой").await;
        assert!(app.get("/api/v1/customers", &w.engineer).await.ids().is_empty());
        assert!(app.get("/api/v1/objects", &w.engineer).await.ids().is_empty());
        let r = app.post("/api/v1/requests", &w.admin, json!({"type": "maintenance", "subject": "x", "object_id": w.object, "assigned_to": w.engineer.id})).await;
        r.assert(StatusCode::CREATED);
        assert_eq!(app.get("/api/v1/customers", &w.engineer).await.ids(), [w.customer]);
        assert_eq!(app.get("/api/v1/objects", &w.engineer).await.ids(), [w.object]);
        assert_eq!(app.get("/api/v1/projects", &w.engineer).await.ids(), [w.project]);
        app.get(&format!("/api/v1/customers/{other_customer}"), &w.engineer).await.problem(StatusCode::NOT_FOUND, "not_found");
        // Read-only access for engineers to customers.
        app.patch(&format!("/api/v1/customers/{}", w.customer), &w.engineer, json!({"version": 1, "name": "x"})).await.problem(StatusCode::FORBIDDEN, "forbidden");
    }

    async fn every_role_signs_in_and_reads_what_the_matrix_allows(app) {
        let w = app.world().await;
        app.request(&w.admin, w.object, "maintenance").await;
        for role in Role::ALL {
            let customer = (role == Role::Client).then_some(w.customer);
            let u = app.user(&[role], customer).await;
            let token = app.sign_in(&u.email).await;
            let me = app.call(Method::GET, "/api/v1/me", Some(&token), None).await;
            assert_eq!(me.body["roles"], json!([role.as_str()]));
            let requests = app.call(Method::GET, "/api/v1/requests", Some(&token), None).await;
            requests.assert(StatusCode::OK);
            let n = requests.ids().len();
            let expected = match role {
                Role::Engineer => 0,
                _ => 1,
            };
            assert_eq!(n, expected, "{role:?} sees {n} requests");
            let users = app.call(Method::GET, "/api/v1/users", Some(&token), None).await;
            let sees_users = matches!(role, Role::Admin | Role::Director | Role::DepartmentHead | Role::ProjectManager | Role::OfficeManager);
            assert_eq!(users.status == StatusCode::OK, sees_users, "{role:?} users: {}", users.status);
        }
    }
}

/// Every business table's rows, to prove a refused request changed nothing.
async fn audit_free_snapshot(app: &TestApp) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (table, cols) in [
        ("customers", "id, name, version"),
        ("service_objects", "id, name, version"),
        ("projects", "id, name, version"),
        ("project_objects", "project_id, object_id"),
        ("service_requests", "id, subject, status, version"),
        ("request_comments", "id, body"),
        ("service_reports", "id, status, notes, version"),
    ] {
        let rows: Vec<(String,)> = sqlx::query_as(&format!(
            "SELECT CAST(({}) AS TEXT) FROM {table} ORDER BY 1",
            cols.replace(", ", " || '|' || ")
        ))
        .fetch_all(app.db.pool())
        .await
        .unwrap();
        out.extend(rows.into_iter().map(|r| (table.to_owned(), r.0)));
    }
    out
}
