//! Service reports: server-computed totals, submission, freezing, approval.

use crate::support::*;
use axum::http::StatusCode;
use ferum::domain::access::Role;
use serde_json::json;

both! {
    async fn totals_are_computed_by_the_server(app) {
        let w = app.world().await;
        let req = app.started_request(&w).await;
        let items = json!([
            {"description": "Осмотр", "quantity": "1", "unit": "усл", "unit_price": "1250.00"},
            {"description": "Датчик ИП-212", "quantity": "3", "unit": "шт", "unit_price": "0.10"},
            {"description": "Кабель", "quantity": "12.5", "unit": "м", "unit_price": "33.33"}
        ]);
        let r = app.post("/api/v1/reports", &w.engineer, json!({"request_id": req["id"], "work_date": "2026-03-02", "items": items, "engineer_bonus": "500"})).await;
        r.assert(StatusCode::CREATED);
        assert!(r.body["number"].as_str().unwrap().starts_with("ACT-2026-"));
        assert_eq!(r.body["status"], "draft");
        assert_eq!(r.body["engineer_id"], w.engineer.id);
        assert_eq!(r.body["items"][0]["amount"], "1250.00");
        assert_eq!(r.body["items"][1]["amount"], "0.30");
        assert_eq!(r.body["items"][2]["amount"], "416.63");
        assert_eq!(r.body["items"][2]["quantity"], "12.5");
        assert_eq!(r.body["total"], "1666.93");
        assert_eq!(r.body["engineer_bonus"], "500.00");
        // A client-sent amount or total is not accepted.
        let bad = app.post("/api/v1/reports", &w.engineer, json!({"request_id": req["id"], "work_date": "2026-03-02", "items": [{"description": "x", "quantity": "1", "unit_price": "1", "amount": "999"}]})).await;
        bad.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(bad.fields(), ["items[0].amount"]);
        // Editing the lines recomputes the total.
        let id = r.id();
        let e = app.patch(&format!("/api/v1/reports/{id}"), &w.engineer, json!({"version": 1, "items": [{"description": "Осмотр", "quantity": "2", "unit_price": "1000"}]})).await;
        e.assert(StatusCode::OK);
        assert_eq!(e.body["total"], "2000.00");
        assert_eq!(e.body["items"].as_array().unwrap().len(), 1);
        // One report per request.
        let dup = app.post("/api/v1/reports", &w.admin, json!({"request_id": req["id"], "work_date": "2026-03-02"})).await;
        dup.problem(StatusCode::CONFLICT, "duplicate");
    }

    async fn bad_lines_are_all_named_and_nothing_is_written(app) {
        let w = app.world().await;
        let req = app.started_request(&w).await;
        let r = app.post("/api/v1/reports", &w.engineer, json!({"request_id": req["id"], "work_date": "2026-03-02", "items": [
            {"description": "", "quantity": "0", "unit_price": "-5"},
            {"description": "ok", "quantity": "-1", "unit_price": "1e9"},
            {"description": "ok", "quantity": "99999999999", "unit_price": "100000000000000"}
        ]})).await;
        r.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(r.fields(), [
            "items[0].description", "items[0].quantity", "items[0].unit_price",
            "items[1].quantity", "items[1].unit_price",
            "items[2].quantity", "items[2].unit_price"
        ]);
        assert_eq!(app.count("service_reports").await, 0);
        assert_eq!(app.count("report_items").await, 0);
        // Numbers as JSON numbers are refused: money travels as exact strings.
        let r = app.post("/api/v1/reports", &w.engineer, json!({"request_id": req["id"], "work_date": "2026-03-02", "items": [{"description": "x", "quantity": 1, "unit_price": "1"}]})).await;
        assert_eq!(r.fields(), ["items[0].quantity"]);
    }

    async fn submission_freezes_and_completes(app) {
        let w = app.world().await;
        // A report on a request not yet started cannot be submitted.
        let open = app.post("/api/v1/requests", &w.admin, json!({"type": "maintenance", "subject": "x", "object_id": w.object, "assigned_to": w.engineer.id})).await;
        let early = app.report(&w.engineer, open.id()).await;
        app.post(&format!("/api/v1/reports/{}/submit", early["id"]), &w.engineer, json!({})).await.problem(StatusCode::CONFLICT, "request_not_in_progress");
        let req = app.started_request(&w).await;
        let rid = req["id"].as_i64().unwrap();
        // An empty report cannot be submitted.
        let empty = app.post("/api/v1/reports", &w.engineer, json!({"request_id": rid, "work_date": "2026-03-02"})).await;
        let id = empty.id();
        app.post(&format!("/api/v1/reports/{id}/submit"), &w.engineer, json!({})).await.problem(StatusCode::CONFLICT, "report_empty");
        app.patch(&format!("/api/v1/reports/{id}"), &w.engineer, json!({"version": 1, "items": [{"description": "Работы", "quantity": "1", "unit_price": "100"}]})).await.assert(StatusCode::OK);
        let s = app.post(&format!("/api/v1/reports/{id}/submit"), &w.engineer, json!({})).await;
        s.assert(StatusCode::OK);
        assert_eq!(s.body["status"], "submitted");
        assert_eq!(app.get(&format!("/api/v1/requests/{rid}"), &w.admin).await.body["status"], "completed");
        // Frozen: lines, bonus and deletion.
        let v = s.body["version"].clone();
        let r = app.patch(&format!("/api/v1/reports/{id}"), &w.engineer, json!({"version": v, "items": [{"description": "Больше", "quantity": "10", "unit_price": "100"}]})).await;
        r.problem(StatusCode::CONFLICT, "report_frozen");
        app.patch(&format!("/api/v1/reports/{id}"), &w.admin, json!({"version": v, "engineer_bonus": "9999"})).await.problem(StatusCode::CONFLICT, "report_frozen");
        app.delete(&format!("/api/v1/reports/{id}"), &w.admin).await.problem(StatusCode::CONFLICT, "report_frozen");
        app.post(&format!("/api/v1/reports/{id}/submit"), &w.engineer, json!({})).await.problem(StatusCode::CONFLICT, "report_not_draft");
        assert_eq!(app.get(&format!("/api/v1/reports/{id}"), &w.admin).await.body["total"], "100.00");
        // Approval: the head of service, not the engineer or a project manager.
        let pm = app.user(&[Role::ProjectManager], None).await;
        app.post(&format!("/api/v1/reports/{id}/approve"), &w.engineer, json!({})).await.problem(StatusCode::FORBIDDEN, "forbidden");
        app.post(&format!("/api/v1/reports/{id}/approve"), &pm, json!({})).await.problem(StatusCode::FORBIDDEN, "forbidden");
        let head = app.user(&[Role::DepartmentHead], None).await;
        let a = app.post(&format!("/api/v1/reports/{id}/approve"), &head, json!({})).await;
        a.assert(StatusCode::OK);
        assert_eq!(a.body["status"], "approved");
        assert_eq!(a.body["approved_by"], head.id);
        app.post(&format!("/api/v1/reports/{id}/approve"), &head, json!({})).await.problem(StatusCode::CONFLICT, "report_not_submitted");
    }

    async fn who_sees_and_writes_reports(app) {
        let w = app.world().await;
        let client = app.user(&[Role::Client], Some(w.customer)).await;
        let other_engineer = app.user(&[Role::Engineer], None).await;
        let req = app.started_request(&w).await;
        let rid = req["id"].as_i64().unwrap();
        // Another engineer cannot report on someone else's request.
        let r = app.post("/api/v1/reports", &other_engineer, json!({"request_id": rid, "work_date": "2026-03-02"})).await;
        assert_eq!(r.fields(), ["request_id"]);
        // An engineer reports as themselves.
        let r = app.post("/api/v1/reports", &w.engineer, json!({"request_id": rid, "work_date": "2026-03-02", "engineer_id": other_engineer.id})).await;
        assert_eq!(r.fields(), ["engineer_id"]);
        let rep = app.report(&w.engineer, rid).await;
        let id = rep["id"].as_i64().unwrap();
        // Office managers and clients do not create reports.
        let om = app.user(&[Role::OfficeManager], None).await;
        app.post("/api/v1/reports", &om, json!({"request_id": rid, "work_date": "2026-03-02"})).await.problem(StatusCode::FORBIDDEN, "forbidden");
        // The client does not see a draft, but sees the submitted act.
        app.get(&format!("/api/v1/reports/{id}"), &client).await.problem(StatusCode::NOT_FOUND, "not_found");
        assert!(app.get("/api/v1/reports", &client).await.ids().is_empty());
        app.post(&format!("/api/v1/reports/{id}/submit"), &w.engineer, json!({})).await.assert(StatusCode::OK);
        app.get(&format!("/api/v1/reports/{id}"), &client).await.assert(StatusCode::OK);
        assert_eq!(app.get("/api/v1/reports", &client).await.ids(), [id]);
        app.get(&format!("/api/v1/reports/{id}"), &other_engineer).await.problem(StatusCode::NOT_FOUND, "not_found");
        assert_eq!(app.get(&format!("/api/v1/reports?request={rid}&status=submitted"), &w.admin).await.ids(), [id]);
        assert_eq!(app.get("/api/v1/reports?q=ACT-2026", &w.admin).await.ids(), [id]);
        assert!(app.get("/api/v1/reports?q=ACT-1999", &w.admin).await.ids().is_empty());
    }

    async fn draft_reports_can_be_deleted(app) {
        let w = app.world().await;
        let req = app.started_request(&w).await;
        let rep = app.report(&w.engineer, req["id"].as_i64().unwrap()).await;
        app.delete(&format!("/api/v1/reports/{}", rep["id"]), &w.engineer).await.problem(StatusCode::FORBIDDEN, "forbidden");
        app.delete(&format!("/api/v1/reports/{}", rep["id"]), &w.admin).await.assert(StatusCode::NO_CONTENT);
        assert_eq!(app.count("report_items").await, 0);
    }
}
