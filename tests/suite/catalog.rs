//! Customers, objects and projects: their rules through the API.

use crate::support::*;
use axum::http::StatusCode;
use ferum::domain::access::Role;
use serde_json::json;

both! {
    async fn customer_crud_with_inn_and_version_rules(app) {
        let admin = app.user(&[Role::Admin], None).await;
        // INN check digits.
        let r = app.post("/api/v1/customers", &admin, json!({"name": "X", "inn": "7707083894"})).await;
        r.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(r.fields(), ["inn"]);
        assert_eq!(app.count("customers").await, 0);
        let inn = next_inn();
        let r = app.post("/api/v1/customers", &admin, json!({"name": " ООО Ёлка ", "inn": inn, "contact_phone": "+7 (495) 123-45-67"})).await;
        r.assert(StatusCode::CREATED);
        assert_eq!(r.body["name"], "ООО Ёлка");
        assert_eq!(r.headers["etag"], "\"1\"");
        let id = r.id();
        // Same INN again: 409 naming the field.
        let dup = app.post("/api/v1/customers", &admin, json!({"name": "Y", "inn": inn})).await;
        dup.problem(StatusCode::CONFLICT, "duplicate");
        assert_eq!(dup.fields(), ["inn"]);
        // Updates need the version; stale ones are refused.
        let path = format!("/api/v1/customers/{id}");
        app.patch(&path, &admin, json!({"name": "Z"})).await.problem(StatusCode::PRECONDITION_REQUIRED, "version_required");
        app.patch(&path, &admin, json!({"name": "Z", "version": 1})).await.assert(StatusCode::OK);
        let stale = app.patch(&path, &admin, json!({"name": "W", "version": 1})).await;
        stale.problem(StatusCode::CONFLICT, "stale_version");
        let stale = app.call_with(axum::http::Method::PATCH, &path, Some(&admin.token), Some(json!({"name": "W"})), &[("if-match", "\"1\"")]).await;
        stale.problem(StatusCode::PRECONDITION_FAILED, "stale_version");
        let ok = app.call_with(axum::http::Method::PATCH, &path, Some(&admin.token), Some(json!({"name": "W"})), &[("if-match", "\"2\"")]).await;
        ok.assert(StatusCode::OK);
        assert_eq!(ok.body["name"], "W");
        assert_eq!(ok.body["version"], 3);
        // Search is case-insensitive for Cyrillic, ё as е.
        let found = app.get("/api/v1/customers?q=елка", &admin).await;
        assert_eq!(found.ids(), Vec::<i64>::new(), "the name changed to W");
        let found = app.get("/api/v1/customers?q=w", &admin).await;
        assert_eq!(found.ids(), [id]);
        // Delete and it is gone.
        app.delete(&path, &admin).await.assert(StatusCode::NO_CONTENT);
        app.get(&path, &admin).await.problem(StatusCode::NOT_FOUND, "not_found");
    }

    async fn cyrillic_search_ignores_case(app) {
        let admin = app.user(&[Role::Admin], None).await;
        let id = app.customer(&admin, "ООО Ёлочка Пожарная", next_inn()).await;
        for q in ["ёлочка", "ЕЛОЧКА", "пожарная"] {
            assert_eq!(app.get(&format!("/api/v1/customers?q={}", urlencode(q)), &admin).await.ids(), [id], "{q}");
        }
        assert!(app.get("/api/v1/customers?q=%25", &admin).await.ids().is_empty(), "% is literal");
    }

    async fn serial_numbers_are_trimmed_unique_and_not_blank(app) {
        let admin = app.user(&[Role::Admin], None).await;
        let c = app.customer(&admin, "A", next_inn()).await;
        let r = app.post("/api/v1/objects", &admin, json!({"customer_id": c, "name": "O1", "kind": "sprinkler", "serial_number": "  SN-001  "})).await;
        r.assert(StatusCode::CREATED);
        assert_eq!(r.body["serial_number"], "SN-001");
        let dup = app.post("/api/v1/objects", &admin, json!({"customer_id": c, "name": "O2", "kind": "sprinkler", "serial_number": "SN-001"})).await;
        dup.problem(StatusCode::CONFLICT, "duplicate");
        assert_eq!(dup.fields(), ["serial_number"]);
        let blank = app.post("/api/v1/objects", &admin, json!({"customer_id": c, "name": "O3", "kind": "sprinkler", "serial_number": "   "})).await;
        blank.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(blank.fields(), ["serial_number"]);
        assert_eq!(app.count("service_objects").await, 1);
        // No serial number at all is fine, twice.
        for n in ["O4", "O5"] {
            app.post("/api/v1/objects", &admin, json!({"customer_id": c, "name": n, "kind": "other"})).await.assert(StatusCode::CREATED);
        }
    }

    async fn object_engineers_must_be_engineers(app) {
        let admin = app.user(&[Role::Admin], None).await;
        let eng = app.user(&[Role::Engineer], None).await;
        let c = app.customer(&admin, "A", next_inn()).await;
        let bad = app.post("/api/v1/objects", &admin, json!({"customer_id": c, "name": "O", "kind": "other", "engineers": [admin.id]})).await;
        bad.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(bad.fields(), ["engineers[0]"]);
        assert_eq!(app.count("service_objects").await, 0, "nothing half-written");
        let ok = app.post("/api/v1/objects", &admin, json!({"customer_id": c, "name": "O", "kind": "other", "engineers": [eng.id]})).await;
        ok.assert(StatusCode::CREATED);
        assert_eq!(ok.body["engineers"], json!([eng.id]));
        // The engineer sees the object they are assigned to.
        app.get(&format!("/api/v1/objects/{}", ok.id()), &eng).await.assert(StatusCode::OK);
    }

    async fn object_in_use_cannot_be_deleted_but_can_be_archived(app) {
        let w = app.world().await;
        app.request(&w.admin, w.object, "maintenance").await;
        let path = format!("/api/v1/objects/{}", w.object);
        app.delete(&path, &w.admin).await.problem(StatusCode::CONFLICT, "in_use");
        let r = app.patch(&path, &w.admin, json!({"archived": true, "version": 1})).await;
        r.assert(StatusCode::OK);
        assert_eq!(r.body["archived"], true);
        // An archived object takes no new requests.
        let n = app.post("/api/v1/requests", &w.admin, json!({"type": "maintenance", "subject": "x", "object_id": w.object})).await;
        n.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(n.fields(), ["object_id"]);
        // An unused object can be deleted.
        let other = app.object(&w.admin, w.customer, "Другой").await;
        app.delete(&format!("/api/v1/objects/{other}"), &w.admin).await.assert(StatusCode::NO_CONTENT);
        // A customer with objects cannot be deleted.
        app.delete(&format!("/api/v1/customers/{}", w.customer), &w.admin).await.problem(StatusCode::CONFLICT, "in_use");
    }

    async fn project_objects_once_and_same_customer(app) {
        let admin = app.user(&[Role::Admin], None).await;
        let c1 = app.customer(&admin, "A", next_inn()).await;
        let c2 = app.customer(&admin, "B", next_inn()).await;
        let o1 = app.object(&admin, c1, "O1").await;
        let o2 = app.object(&admin, c2, "O2").await;
        // Another customer's object is refused, and nothing is written.
        let r = app.post("/api/v1/projects", &admin, json!({"customer_id": c1, "name": "P", "start_date": "2026-01-01", "objects": [{"object_id": o2}]})).await;
        r.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(r.fields(), ["objects[0].object_id"]);
        assert_eq!(app.count("projects").await, 0);
        // The same object twice is refused.
        let r = app.post("/api/v1/projects", &admin, json!({"customer_id": c1, "name": "P", "start_date": "2026-01-01", "objects": [{"object_id": o1}, {"object_id": o1}]})).await;
        r.problem(StatusCode::CONFLICT, "duplicate");
        assert_eq!(app.count("projects").await, 0);
        // End before start is refused.
        let r = app.post("/api/v1/projects", &admin, json!({"customer_id": c1, "name": "P", "start_date": "2026-02-01", "end_date": "2026-01-31"})).await;
        r.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(r.fields(), ["end_date"]);
        let p = app.post("/api/v1/projects", &admin, json!({"customer_id": c1, "name": "P", "start_date": "2026-01-01", "contract_value": "1250000.5", "objects": [{"object_id": o1, "scope": "АПС"}]})).await;
        p.assert(StatusCode::CREATED);
        assert_eq!(p.body["objects"], json!([{"object_id": o1, "scope": "АПС"}]));
        assert_eq!(p.body["contract_value"], "1250000.50");
        let pid = p.id();
        let path = format!("/api/v1/projects/{pid}/objects");
        app.post(&path, &admin, json!({"object_id": o1})).await.problem(StatusCode::CONFLICT, "duplicate");
        let r = app.post(&path, &admin, json!({"object_id": o2})).await;
        r.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(r.fields(), ["object_id"]);
        let o3 = app.object(&admin, c1, "O3").await;
        app.post(&path, &admin, json!({"object_id": o3, "scope": "СОУЭ"})).await.assert(StatusCode::OK);
        assert_eq!(app.get(&path, &admin).await.body.as_array().unwrap().len(), 2);
        // The objects of one project, as a filter of the object list.
        app.object(&admin, c1, "O4 outside the project").await;
        let mut listed = app.get(&format!("/api/v1/objects?project={pid}"), &admin).await.ids();
        listed.sort_unstable();
        assert_eq!(listed, vec![o1, o3]);
        app.call(axum::http::Method::DELETE, &format!("{path}?object_id={o3}"), Some(&admin.token), None).await.assert(StatusCode::OK);
        assert_eq!(app.get(&path, &admin).await.body, json!([{"object_id": o1, "scope": "АПС"}]));
    }

    async fn roles_without_create_rights_are_refused(app) {
        let admin = app.user(&[Role::Admin], None).await;
        let director = app.user(&[Role::Director], None).await;
        let om = app.user(&[Role::OfficeManager], None).await;
        let pm = app.user(&[Role::ProjectManager], None).await;
        let r = app.post("/api/v1/customers", &director, json!({"name": "X", "inn": next_inn()})).await;
        r.problem(StatusCode::FORBIDDEN, "forbidden");
        app.post("/api/v1/customers", &om, json!({"name": "X", "inn": next_inn()})).await.assert(StatusCode::CREATED);
        let c = app.customer(&admin, "A", next_inn()).await;
        // Project managers may not delete customers; admins may.
        app.delete(&format!("/api/v1/customers/{c}"), &pm).await.problem(StatusCode::FORBIDDEN, "forbidden");
        // Office managers may not create projects.
        let r = app.post("/api/v1/projects", &om, json!({"customer_id": c, "name": "P", "start_date": "2026-01-01"})).await;
        r.problem(StatusCode::FORBIDDEN, "forbidden");
        app.post("/api/v1/projects", &pm, json!({"customer_id": c, "name": "P", "start_date": "2026-01-01", "manager_id": pm.id})).await.assert(StatusCode::CREATED);
        // The manager must be a manager.
        let eng = app.user(&[Role::Engineer], None).await;
        let r = app.post("/api/v1/projects", &pm, json!({"customer_id": c, "name": "P", "start_date": "2026-01-01", "manager_id": eng.id})).await;
        assert_eq!(r.fields(), ["manager_id"]);
    }

    async fn pagination_walks_every_record_once(app) {
        let admin = app.user(&[Role::Admin], None).await;
        let mut made = Vec::new();
        for i in 0..7 {
            made.push(app.customer(&admin, &format!("C{i}"), next_inn()).await);
        }
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/customers?limit=3&cursor={c}"),
                None => "/api/v1/customers?limit=3".into(),
            };
            let r = app.get(&path, &admin).await;
            r.assert(StatusCode::OK);
            seen.extend(r.ids());
            match r.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        made.reverse();
        assert_eq!(seen, made, "newest first, each once");
        for bad in ["limit=0", "limit=201", "limit=abc", "cursor=xyz"] {
            let r = app.get(&format!("/api/v1/customers?{bad}"), &admin).await;
            r.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        }
        assert_eq!(app.get("/api/v1/customers?limit=200", &admin).await.ids().len(), 7);
    }
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
