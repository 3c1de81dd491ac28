//! Limits of outside input: money and quantities that would overflow are refused with a 422
//! naming the field (never a wrapped number or a 500).

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
