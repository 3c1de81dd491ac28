//! Limits of outside input: money and quantities that would overflow, and dates far outside
//! any sane range, are refused with a 422 naming the field (never a wrapped number or a 500).

use crate::support::*;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// `n` lines of a million units at a billion roubles each: every line is past the maximum
/// amount, and their sum is past `i64` (93 lines wrapped to a negative total, 184 to 100.00).
fn huge_lines(n: usize) -> Value {
    let line =
        json!({"description": "Работы", "quantity": "1000000", "unit_price": "1000000000.00"});
    Value::Array(vec![line; n])
}

fn amounts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("items[{i}].amount")).collect()
}

/// The one code of a one-field refusal.
#[track_caller]
fn refused(r: &Resp, field: &str, code: &str) {
    r.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(r.fields(), [field], "{}", r.body);
    assert_eq!(r.body["errors"][0]["code"], code, "{}", r.body);
}

const OUT_OF_RANGE: [&str; 2] = ["+10000-01-01", "1999-12-31"];
const MOMENTS_OUT_OF_RANGE: [&str; 4] = [
    "+10000-01-01T00:00:00Z",
    "1999-12-31T23:59:59Z",
    "2200-01-01T00:00:00Z",
    // 2000-01-01 in Moscow is still 1999 in UTC.
    "2000-01-01T02:00:00+03:00",
];

both! {
    async fn many_huge_report_lines_are_refused_not_wrapped(app) {
        let w = app.world().await;
        let req = app.started_request(&w).await;
        let create = |items: Value| json!({"request_id": req["id"], "work_date": "2026-03-02", "items": items});
        // The sum of these lines used to wrap around i64 and the report was accepted (or, in a
        // debug build, the server panicked).
        for n in [93, 184] {
            let r = app.post("/api/v1/reports", &w.engineer, create(huge_lines(n))).await;
            r.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
            assert_eq!(r.fields(), amounts(n));
            assert_eq!(r.body["errors"][0]["code"], "too_large");
        }
        assert_eq!(app.count("service_reports").await, 0);
        assert_eq!(app.count("report_items").await, 0);
        // Replacing the lines of a draft is held to the same limits.
        let rep = app.report(&w.engineer, req["id"].as_i64().unwrap()).await;
        let path = format!("/api/v1/reports/{}", rep["id"]);
        for n in [93, 184] {
            let r = app.patch(&path, &w.engineer, json!({"version": 1, "items": huge_lines(n)})).await;
            r.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
            assert_eq!(r.fields(), amounts(n));
        }
        let r = app.get(&path, &w.engineer).await;
        assert_eq!(r.body["version"], 1);
        assert_eq!(r.body["total"], rep["total"]);
        assert_eq!(app.count("report_items").await, 1);
    }

    async fn report_amounts_and_totals_past_the_maximum_are_named(app) {
        let w = app.world().await;
        let req = app.started_request(&w).await;
        let create = |items: Value| json!({"request_id": req["id"], "work_date": "2026-03-02", "items": items});
        // One line past the maximum amount.
        let r = app.post("/api/v1/reports", &w.engineer, create(huge_lines(1))).await;
        refused(&r, "items[0].amount", "too_large");
        // Lines each within the maximum whose sum is past it: the total is named.
        let big = json!({"description": "Монтаж", "quantity": "1", "unit_price": "600000000.00"});
        let r = app.post("/api/v1/reports", &w.engineer, create(json!([big, big]))).await;
        refused(&r, "total", "too_large");
        // A unit price or quantity past its own maximum is named as such.
        let r = app.post("/api/v1/reports", &w.engineer, create(json!([{"description": "x", "quantity": "1000000.001", "unit_price": "1000000000.01"}]))).await;
        assert_eq!(r.fields(), ["items[0].quantity", "items[0].unit_price"], "{}", r.body);
        assert_eq!(app.count("service_reports").await, 0);
        assert_eq!(app.count("report_items").await, 0);
        // Exactly the maximum is accepted, as a line and as a total.
        let max = json!({"description": "Всё", "quantity": "1000000", "unit_price": "1000.00"});
        let r = app.post("/api/v1/reports", &w.engineer, create(json!([max]))).await;
        r.assert(StatusCode::CREATED);
        assert_eq!(r.body["items"][0]["amount"], "1000000000.00");
        assert_eq!(r.body["total"], "1000000000.00");
        // One kopeck more in the total is not.
        let path = format!("/api/v1/reports/{}", r.id());
        let kopeck = json!({"description": "Ещё", "quantity": "1", "unit_price": "0.01"});
        let r = app.patch(&path, &w.engineer, json!({"version": 1, "items": [max, kopeck]})).await;
        refused(&r, "total", "too_large");
        let r = app.patch(&path, &w.engineer, json!({"version": 1, "items": [big, big]})).await;
        refused(&r, "total", "too_large");
        let r = app.patch(&path, &w.engineer, json!({"version": 1, "items": huge_lines(1)})).await;
        refused(&r, "items[0].amount", "too_large");
        // Nothing of the refused updates was written.
        let r = app.get(&path, &w.engineer).await;
        assert_eq!(r.body["version"], 1);
        assert_eq!(r.body["total"], "1000000000.00");
        assert_eq!(app.count("report_items").await, 1);
    }

    async fn request_times_outside_the_sane_range_are_refused(app) {
        let w = app.world().await;
        let new = |field: &str, v: &str| {
            let mut b = json!({"type": "maintenance", "subject": "Проверка", "object_id": w.object});
            b[field] = json!(v);
            b
        };
        let before = app.count("service_requests").await;
        for field in ["reported_at", "planned_start", "planned_end"] {
            for v in MOMENTS_OUT_OF_RANGE {
                let r = app.post("/api/v1/requests", &w.admin, new(field, v)).await;
                refused(&r, field, "out_of_range");
            }
        }
        assert_eq!(app.count("service_requests").await, before);
        for field in ["reported_at", "planned_start", "planned_end"] {
            for v in ["2000-01-01T00:00:00Z", "2199-12-31T23:59:59.999999Z", "2199-12-31T23:59:59Z"] {
                let r = app.post("/api/v1/requests", &w.admin, new(field, v)).await;
                r.assert(StatusCode::CREATED);
            }
        }
        let r = app.post("/api/v1/requests", &w.admin, new("planned_end", "2199-12-31T23:59:59Z")).await;
        r.assert(StatusCode::CREATED);
        assert_eq!(r.body["planned_end"], "2199-12-31T23:59:59Z");
        // Changes are held to the same range.
        let path = format!("/api/v1/requests/{}", r.id());
        for field in ["reported_at", "planned_start", "planned_end"] {
            for v in MOMENTS_OUT_OF_RANGE {
                let mut b = json!({"version": 1});
                b[field] = json!(v);
                let r = app.patch(&path, &w.admin, b).await;
                refused(&r, field, "out_of_range");
            }
        }
        let r = app.patch(&path, &w.admin, json!({"version": 1, "reported_at": "2000-01-01T00:00:00Z", "planned_start": "2000-01-01T00:00:00Z", "planned_end": "2199-12-31T23:59:59Z"})).await;
        r.assert(StatusCode::OK);
        assert_eq!(r.body["reported_at"], "2000-01-01T00:00:00Z");
        // Engineers changing planned times of their own request too.
        let mine = app.started_request(&w).await;
        let path = format!("/api/v1/requests/{}", mine["id"]);
        let r = app.patch(&path, &w.engineer, json!({"version": mine["version"], "planned_end": "+10000-01-01T00:00:00Z"})).await;
        refused(&r, "planned_end", "out_of_range");
        // Every out-of-range field is named at once.
        let r = app.post("/api/v1/requests", &w.admin, json!({"type": "maintenance", "subject": "x", "object_id": w.object, "reported_at": "1999-01-01T00:00:00Z", "planned_start": "+10000-01-01T00:00:00Z", "planned_end": "+10000-01-01T00:00:00Z"})).await;
        r.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(r.fields(), ["reported_at", "planned_start", "planned_end"]);
    }

    async fn report_work_dates_outside_the_sane_range_are_refused(app) {
        let w = app.world().await;
        let req = app.started_request(&w).await;
        for d in OUT_OF_RANGE {
            let r = app.post("/api/v1/reports", &w.engineer, json!({"request_id": req["id"], "work_date": d})).await;
            refused(&r, "work_date", "out_of_range");
        }
        assert_eq!(app.count("service_reports").await, 0);
        let r = app.post("/api/v1/reports", &w.engineer, json!({"request_id": req["id"], "work_date": "2199-12-31"})).await;
        r.assert(StatusCode::CREATED);
        assert_eq!(r.body["work_date"], "2199-12-31");
        let path = format!("/api/v1/reports/{}", r.id());
        for d in OUT_OF_RANGE {
            let r = app.patch(&path, &w.engineer, json!({"version": 1, "work_date": d})).await;
            refused(&r, "work_date", "out_of_range");
        }
        let r = app.patch(&path, &w.engineer, json!({"version": 1, "work_date": "2000-01-01"})).await;
        r.assert(StatusCode::OK);
        assert_eq!(r.body["work_date"], "2000-01-01");
    }

    async fn project_dates_outside_the_sane_range_are_refused(app) {
        let w = app.world().await;
        let before = app.count("projects").await;
        for d in OUT_OF_RANGE {
            let r = app.post("/api/v1/projects", &w.admin, json!({"customer_id": w.customer, "name": "P", "start_date": d})).await;
            refused(&r, "start_date", "out_of_range");
            let r = app.post("/api/v1/projects", &w.admin, json!({"customer_id": w.customer, "name": "P", "start_date": "2000-01-01", "end_date": d})).await;
            refused(&r, "end_date", "out_of_range");
        }
        assert_eq!(app.count("projects").await, before);
        let r = app.post("/api/v1/projects", &w.admin, json!({"customer_id": w.customer, "name": "P", "start_date": "2000-01-01", "end_date": "2199-12-31"})).await;
        r.assert(StatusCode::CREATED);
        assert_eq!(r.body["end_date"], "2199-12-31");
        let path = format!("/api/v1/projects/{}", r.id());
        for d in OUT_OF_RANGE {
            for field in ["start_date", "end_date"] {
                let mut b = json!({"version": 1});
                b[field] = json!(d);
                let r = app.patch(&path, &w.admin, b).await;
                refused(&r, field, "out_of_range");
            }
        }
        let r = app.patch(&path, &w.admin, json!({"version": 1, "start_date": "2199-12-31"})).await;
        r.assert(StatusCode::OK);
        assert_eq!(r.body["start_date"], "2199-12-31");
    }

    async fn contract_values_and_bonuses_past_the_maximum_are_refused(app) {
        let w = app.world().await;
        let r = app.post("/api/v1/projects", &w.admin, json!({"customer_id": w.customer, "name": "P", "start_date": "2026-01-01", "contract_value": "1000000000.01"})).await;
        refused(&r, "contract_value", "too_large");
        let r = app.post("/api/v1/projects", &w.admin, json!({"customer_id": w.customer, "name": "P", "start_date": "2026-01-01", "contract_value": "1000000000.00"})).await;
        r.assert(StatusCode::CREATED);
        let req = app.started_request(&w).await;
        let r = app.post("/api/v1/reports", &w.engineer, json!({"request_id": req["id"], "work_date": "2026-03-02", "engineer_bonus": "99999999999999999999"})).await;
        refused(&r, "engineer_bonus", "too_large");
    }
}
