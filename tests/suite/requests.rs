//! Service requests: links, SLA, the workflow and who may move it.

use crate::support::*;
use axum::http::StatusCode;
use ferum::domain::access::Role;
use serde_json::json;

both! {
    async fn object_fills_project_and_customer(app) {
        let w = app.world().await;
        let r = app.request(&w.admin, w.object, "maintenance").await;
        assert_eq!(r["customer_id"], w.customer);
        assert_eq!(r["project_id"], w.project);
        assert_eq!(r["status"], "open");
        assert_eq!(r["status_label"], "Открыта");
        assert_eq!(r["source"], "api");
        assert!(r["number"].as_str().unwrap().starts_with("SR-2026-0000"));
        // A project fills the customer.
        let r = app.post("/api/v1/requests", &w.admin, json!({"type": "maintenance", "subject": "x", "project_id": w.project})).await;
        r.assert(StatusCode::CREATED);
        assert_eq!(r.body["customer_id"], w.customer);
        assert_eq!(r.body["object_id"], serde_json::Value::Null);
        // A planned project does not claim the object: only the active one does.
        let planned = app.project(&w.admin, w.customer, &[], "planned").await;
        let o2 = app.object(&w.admin, w.customer, "O2").await;
        app.post(&format!("/api/v1/projects/{planned}/objects"), &w.admin, json!({"object_id": o2})).await.assert(StatusCode::OK);
        let r = app.request(&w.admin, o2, "maintenance").await;
        assert_eq!(r["project_id"], serde_json::Value::Null);
    }

    async fn inconsistent_links_are_refused(app) {
        let w = app.world().await;
        let other = app.customer(&w.admin, "B", next_inn()).await;
        let foreign = app.object(&w.admin, other, "Чужой").await;
        let before = app.count("service_requests").await;
        // Object of another customer than the one named.
        let r = app.post("/api/v1/requests", &w.admin, json!({"type": "maintenance", "subject": "x", "customer_id": w.customer, "object_id": foreign})).await;
        r.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        // Object not in the project.
        let r = app.post("/api/v1/requests", &w.admin, json!({"type": "maintenance", "subject": "x", "project_id": w.project, "object_id": foreign})).await;
        r.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        // Project of another customer.
        let r = app.post("/api/v1/requests", &w.admin, json!({"type": "maintenance", "subject": "x", "customer_id": other, "project_id": w.project})).await;
        assert_eq!(r.fields(), ["project_id"]);
        // Nothing at all.
        let r = app.post("/api/v1/requests", &w.admin, json!({"type": "maintenance", "subject": "x"})).await;
        assert_eq!(r.fields(), ["customer_id"]);
        // Unknown ids.
        let r = app.post("/api/v1/requests", &w.admin, json!({"type": "maintenance", "subject": "x", "object_id": 999_999})).await;
        assert_eq!(r.fields(), ["object_id"]);
        assert_eq!(app.count("service_requests").await, before);
        // Changing the object later re-derives and re-checks.
        let req = app.request(&w.admin, w.object, "maintenance").await;
        let path = format!("/api/v1/requests/{}", req["id"]);
        let r = app.patch(&path, &w.admin, json!({"version": 1, "object_id": foreign})).await;
        r.assert(StatusCode::OK);
        assert_eq!(r.body["customer_id"], other);
        assert_eq!(r.body["project_id"], serde_json::Value::Null);
        let r = app.patch(&path, &w.admin, json!({"version": 2, "project_id": w.project})).await;
        r.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }

    async fn sla_deadlines_follow_the_type(app) {
        let w = app.world().await;
        let t0 = start_time();
        let m = app.request(&w.admin, w.object, "maintenance").await;
        assert_eq!(m["assign_by"], (t0 + chrono::Duration::minutes(180)).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
        assert_eq!(m["close_by"], (t0 + chrono::Duration::hours(72)).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
        let e = app.request(&w.admin, w.object, "emergency").await;
        assert_eq!(e["assign_by"], "2026-03-02T09:15:00Z");
        assert_eq!(e["close_by"], "2026-03-02T11:00:00Z");
        assert_eq!(e["overdue"], false);
        // Changing the type recomputes the deadlines from creation.
        let r = app.patch(&format!("/api/v1/requests/{}", m["id"]), &w.admin, json!({"version": 1, "type": "emergency"})).await;
        assert_eq!(r.body["close_by"], "2026-03-02T11:00:00Z");
    }

    async fn overdue_is_reported_and_filterable(app) {
        let w = app.world().await;
        let emergency = app.request(&w.admin, w.object, "emergency").await["id"].as_i64().unwrap();
        let maintenance = app.request(&w.admin, w.object, "maintenance").await["id"].as_i64().unwrap();
        assert!(app.get("/api/v1/requests?overdue=true", &w.admin).await.ids().is_empty());
        // 16 minutes later the unassigned emergency is overdue; the maintenance is not.
        app.clock.advance(chrono::Duration::minutes(16));
        assert_eq!(app.get("/api/v1/requests?overdue=true", &w.admin).await.ids(), [emergency]);
        assert_eq!(app.get("/api/v1/requests?overdue=false", &w.admin).await.ids(), [maintenance]);
        let r = app.get(&format!("/api/v1/requests/{emergency}"), &w.admin).await;
        assert_eq!(r.body["overdue"], true);
        // Assigning ends the assignment breach; the close deadline still applies later.
        app.patch(&format!("/api/v1/requests/{emergency}"), &w.admin, json!({"version": 1, "assigned_to": w.engineer.id})).await.assert(StatusCode::OK);
        assert!(app.get("/api/v1/requests?overdue=true", &w.admin).await.ids().is_empty());
        app.clock.advance(chrono::Duration::hours(2));
        assert_eq!(app.get("/api/v1/requests?overdue=true", &w.admin).await.ids(), [emergency]);
        // Cancelled requests are never overdue.
        app.put(&format!("/api/v1/requests/{emergency}/status"), &w.admin, json!({"status": "cancelled"})).await.assert(StatusCode::OK);
        assert!(app.get("/api/v1/requests?overdue=true", &w.admin).await.ids().is_empty());
    }

    async fn full_workflow_with_times_history_and_duration(app) {
        let w = app.world().await;
        let req = app.post("/api/v1/requests", &w.admin, json!({"type": "maintenance", "subject": "ТО", "object_id": w.object})).await;
        let id = req.id();
        let status = |s: &str| json!({"status": s});
        let path = format!("/api/v1/requests/{id}/status");
        // Not allowed: open -> closed, with the allowed moves named.
        let r = app.put(&path, &w.admin, status("closed")).await;
        r.problem(StatusCode::CONFLICT, "transition_not_allowed");
        assert_eq!(r.body["allowed"], json!(["in_progress", "cancelled"]));
        assert!(r.body["detail"].as_str().unwrap().contains("in_progress, cancelled"));
        // Start needs an engineer.
        app.put(&path, &w.admin, status("in_progress")).await.problem(StatusCode::CONFLICT, "engineer_required");
        app.patch(&format!("/api/v1/requests/{id}"), &w.admin, json!({"version": 1, "assigned_to": w.engineer.id})).await.assert(StatusCode::OK);
        app.clock.advance(chrono::Duration::minutes(30));
        let r = app.put(&path, &w.engineer, json!({"status": "in_progress", "comment": "выехал"})).await;
        r.assert(StatusCode::OK);
        assert_eq!(r.body["actual_start"], "2026-03-02T09:30:00Z");
        // Completing needs a submitted report.
        app.put(&path, &w.engineer, status("completed")).await.problem(StatusCode::CONFLICT, "report_required");
        let report = app.report(&w.engineer, id).await;
        app.put(&path, &w.engineer, status("completed")).await.problem(StatusCode::CONFLICT, "report_required");
        app.clock.advance(chrono::Duration::minutes(90));
        let s = app.post(&format!("/api/v1/reports/{}/submit", report["id"]), &w.engineer, json!({})).await;
        s.assert(StatusCode::OK);
        // Submitting completed the request, setting its end, completion and duration.
        let r = app.get(&format!("/api/v1/requests/{id}"), &w.admin).await;
        assert_eq!(r.body["status"], "completed");
        assert_eq!(r.body["actual_end"], "2026-03-02T11:00:00Z");
        assert_eq!(r.body["completed_at"], "2026-03-02T11:00:00Z");
        assert_eq!(r.body["duration_hours"], "1.50");
        assert_eq!(r.body["report_id"], report["id"]);
        // Engineers cannot close; the head of service can; project managers can reopen.
        app.put(&path, &w.engineer, status("closed")).await.problem(StatusCode::CONFLICT, "transition_not_allowed");
        let head = app.user(&[Role::DepartmentHead], None).await;
        app.put(&path, &head, status("closed")).await.assert(StatusCode::OK);
        let om = app.user(&[Role::OfficeManager], None).await;
        app.put(&path, &om, status("completed")).await.problem(StatusCode::CONFLICT, "transition_not_allowed");
        let pm = app.user(&[Role::ProjectManager], None).await;
        app.put(&path, &pm, status("completed")).await.assert(StatusCode::OK);
        // Return to work clears completion; completing again (the report is submitted) sets it anew.
        let r = app.put(&path, &pm, status("in_progress")).await;
        assert_eq!(r.body["completed_at"], serde_json::Value::Null);
        assert_eq!(r.body["actual_end"], serde_json::Value::Null);
        assert_eq!(r.body["duration_hours"], serde_json::Value::Null);
        app.clock.advance(chrono::Duration::minutes(30));
        let r = app.put(&path, &w.engineer, status("completed")).await;
        r.assert(StatusCode::OK);
        assert_eq!(r.body["duration_hours"], "2.00");
        // The history holds every move with who, from, to and the comment.
        let h = app.get(&format!("/api/v1/requests/{id}/history"), &w.admin).await;
        let moves: Vec<(String, String)> = h.body.as_array().unwrap().iter()
            .map(|e| (e["from_status"].as_str().unwrap_or("-").to_owned(), e["to_status"].as_str().unwrap().to_owned()))
            .collect();
        let expected = [("-", "open"), ("open", "in_progress"), ("in_progress", "completed"), ("completed", "closed"), ("closed", "completed"), ("completed", "in_progress"), ("in_progress", "completed")];
        assert_eq!(moves, expected.map(|(a, b)| (a.to_owned(), b.to_owned())));
        assert_eq!(h.body[1]["comment"], "выехал");
        assert_eq!(h.body[1]["user_id"], w.engineer.id);
        // Cancelled and closed requests cannot be edited.
        app.put(&path, &head, status("closed")).await.assert(StatusCode::OK);
        let cur = app.get(&format!("/api/v1/requests/{id}"), &w.admin).await.body["version"].clone();
        app.patch(&format!("/api/v1/requests/{id}"), &w.admin, json!({"version": cur, "subject": "x"})).await.problem(StatusCode::CONFLICT, "request_closed");
    }

    async fn engineers_work_only_their_own_requests(app) {
        let w = app.world().await;
        let other = app.user(&[Role::Engineer], None).await;
        let req = app.post("/api/v1/requests", &w.admin, json!({"type": "maintenance", "subject": "x", "object_id": w.object, "assigned_to": w.engineer.id})).await;
        let id = req.id();
        // The other engineer does not even see it.
        app.get(&format!("/api/v1/requests/{id}"), &other).await.problem(StatusCode::NOT_FOUND, "not_found");
        app.put(&format!("/api/v1/requests/{id}/status"), &other, json!({"status": "in_progress"})).await.problem(StatusCode::NOT_FOUND, "not_found");
        assert!(app.get("/api/v1/requests", &other).await.ids().is_empty());
        assert_eq!(app.get("/api/v1/requests", &w.engineer).await.ids(), [id]);
        // Engineers cannot open requests, nor reassign them.
        app.post("/api/v1/requests", &w.engineer, json!({"type": "maintenance", "subject": "x", "object_id": w.object})).await.problem(StatusCode::FORBIDDEN, "forbidden");
        let r = app.patch(&format!("/api/v1/requests/{id}"), &w.engineer, json!({"version": 1, "assigned_to": other.id})).await;
        r.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(r.fields(), ["assigned_to"]);
        let r = app.patch(&format!("/api/v1/requests/{id}"), &w.engineer, json!({"version": 1, "description": "нужна лестница"})).await;
        r.assert(StatusCode::OK);
        // A request in work keeps an engineer.
        app.put(&format!("/api/v1/requests/{id}/status"), &w.engineer, json!({"status": "in_progress"})).await.assert(StatusCode::OK);
        app.patch(&format!("/api/v1/requests/{id}"), &w.admin, json!({"version": 3, "assigned_to": null})).await.problem(StatusCode::CONFLICT, "engineer_required");
        // Only engineers can be assigned.
        let r = app.patch(&format!("/api/v1/requests/{id}"), &w.admin, json!({"version": 3, "assigned_to": w.admin.id})).await;
        assert_eq!(r.fields(), ["assigned_to"]);
    }

    async fn who_may_cancel(app) {
        let w = app.world().await;
        let client = app.user(&[Role::Client], Some(w.customer)).await;
        let director = app.user(&[Role::Director], None).await;
        let om = app.user(&[Role::OfficeManager], None).await;
        let mine = app.request(&client, w.object, "maintenance").await["id"].as_i64().unwrap();
        app.put(&format!("/api/v1/requests/{mine}/status"), &director, json!({"status": "cancelled"})).await.problem(StatusCode::FORBIDDEN, "forbidden");
        app.put(&format!("/api/v1/requests/{mine}/status"), &client, json!({"status": "cancelled"})).await.assert(StatusCode::OK);
        // A client cannot cancel once work has started.
        let started = app.started_request(&w).await;
        let r = app.put(&format!("/api/v1/requests/{}/status", started["id"]), &client, json!({"status": "cancelled"})).await;
        r.problem(StatusCode::CONFLICT, "transition_not_allowed");
        let other = app.request(&w.admin, w.object, "maintenance").await["id"].as_i64().unwrap();
        app.put(&format!("/api/v1/requests/{other}/status"), &om, json!({"status": "cancelled"})).await.assert(StatusCode::OK);
        // Cancelled is final.
        let r = app.put(&format!("/api/v1/requests/{other}/status"), &w.admin, json!({"status": "open"})).await;
        r.problem(StatusCode::CONFLICT, "transition_not_allowed");
        assert_eq!(r.body["allowed"], json!([]));
    }

    async fn clients_open_requests_only_for_themselves(app) {
        let w = app.world().await;
        let client = app.user(&[Role::Client], Some(w.customer)).await;
        let r = app.request(&client, w.object, "emergency").await;
        assert_eq!(r["source"], "portal");
        assert_eq!(r["customer_id"], w.customer);
        // Staff-only fields are refused.
        let r = app.post("/api/v1/requests", &client, json!({"type": "maintenance", "subject": "x", "object_id": w.object, "assigned_to": w.engineer.id, "source": "phone"})).await;
        r.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(r.fields(), ["assigned_to", "source"]);
        // Status and SLA fields are not input at all.
        let r = app.post("/api/v1/requests", &client, json!({"type": "maintenance", "subject": "x", "object_id": w.object, "status": "closed"})).await;
        assert_eq!(r.fields(), ["status"]);
        let r = app.post("/api/v1/requests", &client, json!({"type": "maintenance", "subject": "x", "object_id": w.object, "close_by": "2030-01-01T00:00:00Z"})).await;
        assert_eq!(r.fields(), ["close_by"]);
        // Clients cannot update requests at all.
        let id = app.request(&client, w.object, "maintenance").await["id"].as_i64().unwrap();
        app.patch(&format!("/api/v1/requests/{id}"), &client, json!({"version": 1, "subject": "y"})).await.problem(StatusCode::FORBIDDEN, "forbidden");
    }

    async fn comments_and_filters(app) {
        let w = app.world().await;
        let a = app.request(&w.admin, w.object, "maintenance").await["id"].as_i64().unwrap();
        let b = app.request(&w.admin, w.object, "emergency").await["id"].as_i64().unwrap();
        let path = format!("/api/v1/requests/{a}/comments");
        let c = app.post(&path, &w.admin, json!({"body": "Позвонить завхозу"})).await;
        c.assert(StatusCode::CREATED);
        assert_eq!(c.body["author_id"], w.admin.id);
        app.post(&path, &w.admin, json!({"body": "  "})).await.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(app.get(&path, &w.admin).await.body.as_array().unwrap().len(), 1);
        assert_eq!(app.get("/api/v1/requests?type=emergency", &w.admin).await.ids(), [b]);
        assert_eq!(app.get("/api/v1/requests?status=open,in_progress", &w.admin).await.ids(), [b, a]);
        assert!(app.get("/api/v1/requests?status=closed", &w.admin).await.ids().is_empty());
        assert_eq!(app.get(&format!("/api/v1/requests?customer={}&project={}&object={}", w.customer, w.project, w.object), &w.admin).await.ids(), [b, a]);
        assert_eq!(app.get("/api/v1/requests?q=SR-2026-00002", &w.admin).await.ids(), [b]);
        assert_eq!(app.get("/api/v1/requests?q=ДАТЧИК", &w.admin).await.ids(), [b, a]);
        app.get("/api/v1/requests?status=bogus", &w.admin).await.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        app.get("/api/v1/requests?overdue=maybe", &w.admin).await.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        app.get(&format!("/api/v1/requests?assigned_to={}", w.engineer.id), &w.admin).await.assert(StatusCode::OK);
    }

    async fn deleting_requests(app) {
        let w = app.world().await;
        let pm = app.user(&[Role::ProjectManager], None).await;
        let plain = app.request(&w.admin, w.object, "maintenance").await["id"].as_i64().unwrap();
        app.post(&format!("/api/v1/requests/{plain}/comments"), &w.admin, json!({"body": "x"})).await.assert(StatusCode::CREATED);
        app.delete(&format!("/api/v1/requests/{plain}"), &pm).await.problem(StatusCode::FORBIDDEN, "forbidden");
        app.delete(&format!("/api/v1/requests/{plain}"), &w.admin).await.assert(StatusCode::NO_CONTENT);
        app.get(&format!("/api/v1/requests/{plain}"), &w.admin).await.assert(StatusCode::NOT_FOUND);
        // A request with a report cannot be deleted.
        let started = app.started_request(&w).await;
        let id = started["id"].as_i64().unwrap();
        app.report(&w.engineer, id).await;
        app.delete(&format!("/api/v1/requests/{id}"), &w.admin).await.problem(StatusCode::CONFLICT, "in_use");
        // Nor can an object or project it refers to.
        app.delete(&format!("/api/v1/projects/{}", w.project), &w.admin).await.problem(StatusCode::CONFLICT, "in_use");
    }
}
