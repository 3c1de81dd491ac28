//! Human numbers stay unique and gapless under concurrent creation.

use crate::support::*;
use axum::http::StatusCode;
use serde_json::json;

both! {
    async fn numbers_are_unique_under_concurrent_creation(app) {
        let w = app.world().await;
        let app = std::sync::Arc::new(app);
        let mut tasks = Vec::new();
        for i in 0..40 {
            let app = app.clone();
            let admin = w.admin.clone();
            let object = w.object;
            tasks.push(tokio::spawn(async move {
                let r = app.post("/api/v1/requests", &admin, json!({"type": "maintenance", "subject": format!("R{i}"), "object_id": object})).await;
                assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
                r.body["number"].as_str().unwrap().to_owned()
            }));
        }
        let mut numbers = Vec::new();
        for t in tasks {
            numbers.push(t.await.unwrap());
        }
        numbers.sort();
        let expected: Vec<String> = (1..=40).map(|n| format!("SR-2026-{n:05}")).collect();
        assert_eq!(numbers, expected);
    }

    async fn concurrent_updates_never_overwrite_silently(app) {
        let w = app.world().await;
        let id = app.request(&w.admin, w.object, "maintenance").await["id"].as_i64().unwrap();
        let app = std::sync::Arc::new(app);
        let mut tasks = Vec::new();
        for i in 0..10 {
            let app = app.clone();
            let admin = w.admin.clone();
            tasks.push(tokio::spawn(async move {
                app.patch(&format!("/api/v1/requests/{id}"), &admin, json!({"version": 1, "subject": format!("S{i}")})).await.status
            }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                StatusCode::OK => ok += 1,
                StatusCode::CONFLICT => {}
                other => panic!("unexpected {other}"),
            }
        }
        assert_eq!(ok, 1, "exactly one writer wins version 1");
        assert_eq!(app.get(&format!("/api/v1/requests/{id}"), &w.admin).await.body["version"], 2);
    }
}
