//! Bad input of every kind gets a 4xx problem naming the field, and writes nothing.

use crate::support::*;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use ferum::domain::access::Role;
use serde_json::json;

both! {
    async fn malformed_bodies(app) {
        let w = app.world().await;
        let before = app.count("service_requests").await;
        let raw = |body: &'static str, ctype: &'static str| {
            Request::builder()
                .method(Method::POST)
                .uri("/api/v1/requests")
                .header("authorization", format!("Bearer {}", w.admin.token))
                .header("content-type", ctype)
                .body(Body::from(body))
                .unwrap()
        };
        app.send(raw("{\"type\": ", "application/json")).await.problem(StatusCode::BAD_REQUEST, "malformed_json");
        app.send(raw("not json", "application/json")).await.problem(StatusCode::BAD_REQUEST, "malformed_json");
        app.send(raw("{}", "text/plain")).await.problem(StatusCode::BAD_REQUEST, "unsupported_media_type");
        app.send(raw("[1,2]", "application/json")).await.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let cases = [
            (json!({"type": "maintenance", "subject": 42, "object_id": w.object}), "subject"),
            (json!({"type": "sometimes", "subject": "x", "object_id": w.object}), "type"),
            (json!({"subject": "x", "object_id": w.object}), "type"),
            (json!({"type": "maintenance", "subject": "x", "object_id": w.object, "colour": "red"}), "colour"),
            (json!({"type": "maintenance", "subject": "x", "object_id": "one"}), "object_id"),
            (json!({"type": "maintenance", "subject": "x".repeat(10_000), "object_id": w.object}), "subject"),
            (json!({"type": "maintenance", "subject": "x", "description": "y".repeat(10_001), "object_id": w.object}), "description"),
            (json!({"type": "maintenance", "subject": "x", "object_id": w.object, "planned_start": "2026-02-30T10:00:00Z"}), "planned_start"),
            (json!({"type": "maintenance", "subject": "x", "object_id": w.object, "planned_start": "2026-03-05T10:00:00Z", "planned_end": "2026-03-04T10:00:00Z"}), "planned_end"),
            (json!({"type": "maintenance", "subject": "   ", "object_id": w.object}), "subject"),
            (json!({"type": "maintenance", "subject": "x", "object_id": -5}), "object_id"),
            (json!({"type": "maintenance", "subject": "a\u{0}b", "object_id": w.object}), "subject"),
        ];
        for (body, field) in cases {
            let r = app.post("/api/v1/requests", &w.admin, body.clone()).await;
            assert!(r.status.is_client_error(), "{body}: {}", r.status);
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", r.body);
            assert_eq!(r.headers["content-type"], "application/problem+json");
            assert_eq!(r.fields(), [field], "{}", r.body);
            assert!(!r.body["code"].as_str().unwrap().is_empty());
        }
        assert_eq!(app.count("service_requests").await, before, "nothing half-written");
    }

    async fn oversized_bodies_are_refused(app) {
        let admin = app.user(&[Role::Admin], None).await;
        let huge = "x".repeat(MAX_BODY + 1);
        let r = app.post("/api/v1/customers", &admin, json!({"name": huge, "inn": next_inn()})).await;
        r.problem(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
        assert_eq!(app.count("customers").await, 0);
    }

    async fn impossible_dates_and_absurd_numbers(app) {
        let admin = app.user(&[Role::Admin], None).await;
        let c = app.customer(&admin, "A", next_inn()).await;
        for (body, field) in [
            (json!({"customer_id": c, "name": "P", "start_date": "2026-13-01"}), "start_date"),
            (json!({"customer_id": c, "name": "P", "start_date": "2026-02-29"}), "start_date"),
            (json!({"customer_id": c, "name": "P", "start_date": "yesterday"}), "start_date"),
            (json!({"customer_id": c, "name": "P", "start_date": "2026-01-01", "contract_value": "-100"}), "contract_value"),
            (json!({"customer_id": c, "name": "P", "start_date": "2026-01-01", "contract_value": "1e400"}), "contract_value"),
            (json!({"customer_id": c, "name": "P", "start_date": "2026-01-01", "contract_value": "12.345"}), "contract_value"),
            (json!({"customer_id": c, "name": "P", "start_date": "2026-01-01", "status": "paused"}), "status"),
        ] {
            let r = app.post("/api/v1/projects", &admin, body.clone()).await;
            r.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
            assert_eq!(r.fields(), [field], "{body}");
        }
        assert_eq!(app.count("projects").await, 0);
        // Wrong types in a PATCH, and a bad If-Match.
        let path = format!("/api/v1/customers/{c}");
        let r = app.patch(&path, &admin, json!({"version": "one"})).await;
        assert_eq!(r.fields(), ["version"]);
        let r = app.call_with(Method::PATCH, &path, Some(&admin.token), Some(json!({"name": "x"})), &[("if-match", "banana")]).await;
        r.problem(StatusCode::BAD_REQUEST, "invalid_if_match");
        let r = app.get("/api/v1/customers/abc", &admin).await;
        assert!(r.status.is_client_error(), "{}", r.status);
    }
}
