//! The notifications queue for administrators: the outbox's rows, newest first, filtered by
//! status, and a way to send a pending or dead row to be tried again at once. To anyone
//! else the pages do not exist (404), as the store's outbox does not.

use super::*;
use crate::domain::access::Role;
use crate::store::outbox;

/// The statuses a row can have, in the order the filter offers them.
const STATUSES: [&str; 3] = ["pending", "dead", "delivered"];

/// A status the filter knows, or none (all rows) for anything else.
fn known_status(raw: Option<&String>) -> Option<&'static str> {
    let raw = raw.map(|s| s.trim())?;
    STATUSES.iter().copied().find(|s| *s == raw)
}

/// An outbox row as the page shows it.
pub struct OutboxRowView {
    pub id: i64,
    /// The raw kind, for those who search the logs.
    pub kind: String,
    pub kind_label: String,
    pub status: String,
    pub status_label: String,
    /// The worker trying it now, if any.
    pub claimed: Option<String>,
    pub attempts: i64,
    pub created: String,
    /// Only a pending row has a next attempt.
    pub next_attempt: Option<String>,
    pub delivered: Option<String>,
    pub last_error: Option<String>,
    /// Pending and dead rows may be retried now.
    pub retryable: bool,
}

impl OutboxRowView {
    fn new(t: Tr, e: outbox::Entry) -> OutboxRowView {
        let label = |prefix: &str, raw: &str| {
            t.get(&format!("{prefix}.{raw}"))
                .map_or_else(|| raw.to_owned(), str::to_owned)
        };
        let pending = e.status == "pending";
        OutboxRowView {
            id: e.id,
            kind_label: label("outbox.kind", &e.kind),
            status_label: label("outbox.status", &e.status),
            claimed: e.claimed_by.map(|w| t.t1("outbox.claimed", w)),
            attempts: e.attempts,
            created: t.when(e.created_at),
            next_attempt: pending.then(|| t.when(e.next_attempt_at)),
            delivered: e.delivered_at.map(|at| t.when(at)),
            last_error: e.last_error,
            retryable: pending || e.status == "dead",
            kind: e.kind,
            status: e.status,
        }
    }
}

/// A choice of the status filter: its value, label and whether it is chosen.
pub struct StatusChoice {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "outbox.html")]
struct OutboxPage {
    l: Layout,
    rows: Vec<OutboxRowView>,
    statuses: Vec<StatusChoice>,
    /// The status shown, empty for all; retry forms carry it back.
    status: String,
    notice: Option<&'static str>,
    /// A refused retry (a delivered row).
    error: Option<String>,
    next_href: Option<String>,
}

async fn outbox_view(
    s: &AppState,
    v: &Viewer,
    q: &HashMap<String, String>,
    notice: Option<&'static str>,
    error: Option<String>,
) -> Response {
    let t = v.tr;
    if !v.ctx.actor.has(Role::Admin) {
        return not_found(t);
    }
    let status = known_status(q.get("status"));
    let (entries, next) = match outbox::list(&s.db, &v.ctx, status, list_page(q)).await {
        Ok(x) => x,
        Err(e) => return page_error(t, e),
    };
    let status = status.unwrap_or_default();
    let statuses = std::iter::once(("", t.t("outbox.filter.all")))
        .chain(
            STATUSES
                .iter()
                .map(|s| (*s, t.t(&format!("outbox.status.{s}")))),
        )
        .map(|(value, label)| StatusChoice {
            value,
            label,
            selected: value == status,
        })
        .collect();
    render(&OutboxPage {
        l: Layout::signed_in(v, "outbox", "/admin/outbox"),
        rows: entries
            .into_iter()
            .map(|e| OutboxRowView::new(t, e))
            .collect(),
        statuses,
        status: status.to_owned(),
        notice,
        error,
        next_href: next_href("/admin/outbox", &[("status", status)], next),
    })
}

async fn outbox_page(
    State(s): State<AppState>,
    v: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let notice =
        (q.get("done").map(String::as_str) == Some("retried")).then(|| v.tr.t("outbox.retried"));
    outbox_view(&s, &v, &q, notice, None).await
}

/// The list a retry form came from: its status filter, and nothing else.
fn back_to(status: Option<&'static str>) -> String {
    match status {
        Some(s) => format!("/admin/outbox?status={s}&done=retried"),
        None => "/admin/outbox?done=retried".to_owned(),
    }
}

/// The retry form as posted: the filter of the list it came from.
#[derive(Default, serde::Deserialize)]
struct RetryForm {
    status: Option<String>,
}

impl RetryForm {
    fn of(f: &HashMap<String, String>) -> RetryForm {
        super::typed_form(f)
    }
}

/// Sends a pending or dead row to be tried at once, and back to the list with a notice. A
/// delivered row stays as it is: the list again with the refusal (409).
async fn outbox_retry(State(s): State<AppState>, Posted { v, id, f }: Posted) -> Response {
    let t = v.tr;
    let status = known_status(RetryForm::of(&f).status.as_ref());
    match outbox::retry_now(&s.db, &v.ctx, id).await {
        Ok(_) => Redirect::to(&back_to(status)).into_response(),
        Err(e @ Error::Conflict { .. }) => {
            let q: HashMap<String, String> = status
                .map(|s| ("status".to_owned(), s.to_owned()))
                .into_iter()
                .collect();
            let r = outbox_view(&s, &v, &q, None, Some(problem_text(t, &e))).await;
            with_status(r, StatusCode::CONFLICT)
        }
        Err(e) => page_error(t, e),
    }
}

/// The queue's pages, merged into the pages' router.
pub fn routes() -> Router<AppState> {
    use axum::routing::{get, post};
    Router::new()
        .route("/admin/outbox", get(outbox_page))
        .route("/admin/outbox/{id}/retry", post(outbox_retry))
}
