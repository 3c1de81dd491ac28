//! Administration: users (create; name, phone, roles and customer; disable and enable; reset
//! the second factor) and the audit-log viewer. Reading follows the access matrix; the store
//! refuses what a role may not change.

use super::*;
use crate::domain::access::{Action, AuditScope, Resource, Role, audit_scope, can, may_read_audit};
use crate::domain::ids::CustomerId;
use crate::store::audit;

/// A user as a row of the administration list.
pub struct UserRowView {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub roles: String,
    pub customer: String,
    pub enabled: bool,
    pub version: i64,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    l: Layout,
    users: Vec<UserRowView>,
    roles: Vec<(&'static str, &'static str)>,
    customers: Vec<(i64, String)>,
    may_edit: bool,
    notice: Option<&'static str>,
    error: Option<String>,
    form: FormState,
}

#[derive(Template)]
#[template(path = "user.html")]
struct UserPage {
    l: Layout,
    id: i64,
    email: String,
    enabled: bool,
    version: i64,
    roles: Vec<(&'static str, &'static str)>,
    customers: Vec<(i64, String)>,
    may_edit: bool,
    notice: Option<&'static str>,
    /// A refusal that belongs to no field (a stale version, say).
    error: Option<String>,
    form: FormState,
}

fn role_choices(t: Tr) -> Vec<(&'static str, &'static str)> {
    Role::ALL
        .iter()
        .map(|r| (r.as_str(), t.t(&format!("role.{}", r.as_str()))))
        .collect()
}

fn notice_of(t: Tr, q: &HashMap<String, String>) -> Option<&'static str> {
    match q.get("done").map(String::as_str) {
        Some("created") => Some(t.t("users.created")),
        Some("changed") => Some(t.t("users.changed")),
        Some("mfa") => Some(t.t("users.mfa_reset")),
        _ => None,
    }
}

async fn users_view(
    s: &AppState,
    v: &Viewer,
    notice: Option<&'static str>,
    error: Option<String>,
    form: FormState,
) -> Response {
    let t = v.tr;
    let first = Page {
        limit: Page::MAX,
        after: None,
    };
    let list = match users::list(&s.db, &v.ctx, None, None, first).await {
        Ok((list, _)) => list,
        Err(e) => return page_error(t, e),
    };
    let customers = match customer_choices(s, v).await {
        Ok(c) => c,
        Err(e) => return page_error(t, e),
    };
    let customer_name = |id: Option<CustomerId>| {
        id.and_then(|id| customers.iter().find(|c| c.0 == id.0))
            .map_or_else(String::new, |c| c.1.clone())
    };
    let failed = form.has_errors() || error.is_some();
    let page = UsersPage {
        l: Layout::signed_in(v, "users", "/admin/users"),
        users: list
            .iter()
            .map(|u| UserRowView {
                id: u.id.0,
                name: u.name.clone(),
                email: u.email.clone(),
                roles: u
                    .roles
                    .iter()
                    .map(|r| t.t(&format!("role.{}", r.as_str())))
                    .collect::<Vec<_>>()
                    .join(", "),
                customer: customer_name(u.customer_id),
                enabled: u.enabled,
                version: u.version,
            })
            .collect(),
        roles: role_choices(t),
        customers,
        may_edit: can(&v.ctx.actor, Resource::Users, Action::Update),
        notice,
        error,
        form,
    };
    with_status(render(&page), failed_status(failed))
}

async fn users_page(
    State(s): State<AppState>,
    v: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    users_view(&s, &v, notice_of(v.tr, &q), None, FormState::default()).await
}

/// 422 when the form was refused, else 200.
fn failed_status(failed: bool) -> StatusCode {
    if failed {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    }
}

fn posted_roles(f: &HashMap<String, String>) -> Vec<Role> {
    Role::ALL
        .iter()
        .copied()
        .filter(|r| f.contains_key(&format!("role_{}", r.as_str())))
        .collect()
}

/// The customer chosen in a user form: none, or a customer id.
fn posted_customer(f: &HashMap<String, String>) -> Result<Option<CustomerId>, Error> {
    match f.get("customer_id").map_or("", |c| c.trim()) {
        "" | "0" => Ok(None),
        c => c
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .map(|id| Some(CustomerId(id)))
            .ok_or_else(|| Error::field("customer_id", "invalid", "not a customer id")),
    }
}

/// The Telegram chat typed on a user's form: unchanged when the form has no such field,
/// unlinked when it is left empty, else the chat id (checked by the store).
fn posted_chat_id(f: &HashMap<String, String>) -> Option<Option<String>> {
    f.get("telegram_chat_id")
        .map(|c| Some(c.trim().to_owned()).filter(|c| !c.is_empty()))
}

/// Field errors with the chat id's own words: what a chat id looks like.
fn chat_id_errors(t: Tr, errors: Vec<(String, &'static str)>) -> Vec<(String, &'static str)> {
    errors
        .into_iter()
        .map(|(field, msg)| match field.as_str() {
            "telegram_chat_id" => (field, t.t("users.telegram_chat_id.invalid")),
            _ => (field, msg),
        })
        .collect()
}

async fn user_create(State(s): State<AppState>, Submitted { v, f }: Submitted) -> Response {
    let t = v.tr;
    let customer_id = match posted_customer(&f) {
        Ok(c) => c,
        Err(e) => {
            let (errors, _) = form_problems(t, &e);
            return users_view(
                &s,
                &v,
                None,
                None,
                FormState {
                    errors,
                    ..FormState::posted(&f)
                },
            )
            .await;
        }
    };
    let input = users::NewUser {
        email: f.get("email").cloned().unwrap_or_default(),
        name: f.get("name").cloned().unwrap_or_default(),
        phone: f.get("phone").cloned().unwrap_or_default(),
        roles: posted_roles(&f),
        customer_id,
        password: f.get("password").cloned().unwrap_or_default(),
    };
    match users::create(&s.db, &v.ctx, input).await {
        Ok(u) => Redirect::to(&format!("/admin/users/{}?done=created", u.id.0)).into_response(),
        Err(e @ (Error::NotFound | Error::Internal(_))) => page_error(t, e),
        Err(e) => {
            let (errors, other) = form_problems(t, &e);
            let mut r = users_view(
                &s,
                &v,
                None,
                other,
                FormState {
                    errors,
                    ..FormState::posted(&f)
                },
            )
            .await;
            *r.status_mut() = refusal_status(&e);
            r
        }
    }
}

/// One user's page: the edit form for administrators, read-only for other readers.
async fn user_view(
    s: &AppState,
    v: &Viewer,
    id: UserId,
    notice: Option<&'static str>,
    error: Option<String>,
    posted: Option<FormState>,
) -> Response {
    let t = v.tr;
    let u = match users::get(&s.db, &v.ctx, id).await {
        Ok(u) => u,
        Err(e) => return page_error(t, e),
    };
    let customers = match customer_choices(s, v).await {
        Ok(c) => c,
        Err(e) => return page_error(t, e),
    };
    let form = posted.unwrap_or_else(|| {
        let mut form = FormState::default();
        form.set("name", u.name.clone());
        form.set("phone", u.phone.clone());
        form.set(
            "customer_id",
            u.customer_id.map_or_else(String::new, |c| c.0.to_string()),
        );
        for r in &u.roles {
            form.set(&format!("role_{}", r.as_str()), "1");
        }
        form.set(
            "telegram_chat_id",
            u.telegram_chat_id.clone().unwrap_or_default(),
        );
        form
    });
    let failed = form.has_errors() || error.is_some();
    let page = UserPage {
        l: Layout::signed_in(v, "users", &format!("/admin/users/{}", id.0)),
        id: id.0,
        email: u.email,
        enabled: u.enabled,
        version: u.version,
        roles: role_choices(t),
        customers,
        may_edit: can(&v.ctx.actor, Resource::Users, Action::Update),
        notice,
        error,
        form,
    };
    with_status(render(&page), failed_status(failed))
}

async fn user_page(
    State(s): State<AppState>,
    v: Viewer,
    RecordId(id): RecordId,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    user_view(&s, &v, UserId(id), notice_of(v.tr, &q), None, None).await
}

async fn user_change(State(s): State<AppState>, Posted { v, id, f }: Posted) -> Response {
    let t = v.tr;
    let id = UserId(id);
    let version = f
        .get("version")
        .and_then(|x| x.parse::<i64>().ok())
        .unwrap_or(0);
    let update = |patch| {
        users::update(
            &s.db,
            &v.ctx,
            id,
            crate::store::Expected::Body(version),
            patch,
        )
    };
    let result = match f.get("action").map(String::as_str) {
        Some("reset_mfa") => users::reset_second_factor(&s.db, &v.ctx, id)
            .await
            .map(|()| "mfa"),
        Some(a @ ("enable" | "disable")) => update(users::UserPatch {
            enabled: Some(a == "enable"),
            ..Default::default()
        })
        .await
        .map(|_| "changed"),
        Some("save") => {
            let customer_id = match posted_customer(&f) {
                Ok(c) => c,
                Err(e) => {
                    let (errors, _) = form_problems(t, &e);
                    let form = FormState {
                        errors,
                        ..FormState::posted(&f)
                    };
                    return user_view(&s, &v, id, None, None, Some(form)).await;
                }
            };
            let patch = users::UserPatch {
                name: f.get("name").cloned(),
                phone: f.get("phone").cloned(),
                roles: Some(posted_roles(&f)),
                customer_id: Some(customer_id),
                telegram_chat_id: posted_chat_id(&f),
                ..Default::default()
            };
            match update(patch).await {
                Ok(_) => Ok("changed"),
                Err(e @ (Error::NotFound | Error::Internal(_))) => Err(e),
                Err(e) => {
                    let (errors, other) = form_problems(t, &e);
                    let errors = chat_id_errors(t, errors);
                    let form = FormState {
                        errors,
                        ..FormState::posted(&f)
                    };
                    let mut r = user_view(&s, &v, id, None, other, Some(form)).await;
                    *r.status_mut() = refusal_status(&e);
                    return r;
                }
            }
        }
        // A forged or broken form: said plainly, before anything is loaded, so the answer
        // is the same whether or not the user exists.
        _ => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            let page = error_page(t, status, t.t("error.unknown_action"));
            return (status, Html(page)).into_response();
        }
    };
    match result {
        Ok(done) => Redirect::to(&format!("/admin/users/{}?done={done}", id.0)).into_response(),
        Err(e @ (Error::NotFound | Error::Internal(_))) => page_error(t, e),
        Err(e) => {
            let mut r = user_view(&s, &v, id, None, Some(problem_text(t, &e)), None).await;
            *r.status_mut() = refusal_status(&e);
            r
        }
    }
}

// ------------------------------------------------------------------ audit log

/// An audit entry as the viewer shows it.
pub struct AuditRow {
    pub at: String,
    pub who: String,
    pub who_id: Option<i64>,
    pub ip: String,
    pub action: String,
    pub entity: String,
    /// Where the record's page is, for records that have one.
    pub href: Option<String>,
    pub entity_id: String,
    pub before: String,
    pub after: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    l: Layout,
    rows: Vec<AuditRow>,
    entities: Vec<&'static str>,
    entity: String,
    entity_id: String,
    /// Only what this user did, when chosen by a click on their name.
    user_id: String,
    user_name: Option<String>,
    /// Days, as date inputs hold them.
    from: String,
    to: String,
    may_verify: bool,
    chain: Option<String>,
    next_href: Option<String>,
}

const AUDIT_ENTITIES: [&str; 6] = ["user", "customer", "object", "project", "request", "report"];

fn record_href(entity: &str, id: Option<i64>) -> Option<String> {
    let id = id?;
    let base = match entity {
        "user" => "/admin/users",
        "customer" => "/customers",
        "object" => "/objects",
        "project" => "/projects",
        "request" => "/requests",
        "report" => "/reports",
        _ => return None,
    };
    Some(format!("{base}/{id}"))
}

/// Who made an entry: the user's name, or where a change without a user came from.
fn audit_actor(t: Tr, user: Option<i64>, ip: &str, names: &HashMap<i64, String>) -> String {
    match user {
        Some(id) => names.get(&id).cloned().unwrap_or_else(|| format!("#{id}")),
        None if ip == audit::SOURCE_CLI => t.t("audit.who.cli").to_owned(),
        None if ip == audit::SOURCE_SYSTEM => t.t("audit.who.system").to_owned(),
        None => "—".to_owned(),
    }
}

/// A snapshot as the viewer shows it: personal values (kept only as fingerprints) say
/// that they are hidden, and whether they changed.
fn audit_snapshot_text(t: Tr, v: Option<serde_json::Value>, changed: &[String]) -> String {
    let Some(mut v) = v else {
        return String::new();
    };
    if let serde_json::Value::Object(map) = &mut v {
        for (field, value) in map.iter_mut() {
            if value
                .as_str()
                .is_some_and(crate::crypto::is_audit_fingerprint)
            {
                let key = if changed.contains(field) {
                    "audit.hidden_changed"
                } else {
                    "audit.hidden"
                };
                *value = serde_json::Value::String(format!("‹{}›", t.t(key)));
            }
        }
    }
    v.to_string()
}

/// The audit log, newest first, optionally for one record; `verify` walks the hash chain.
async fn audit_page(
    State(s): State<AppState>,
    v: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let t = v.tr;
    if !may_read_audit(&v.ctx.actor) {
        return not_found(t);
    }
    let text = |k: &str| q.get(k).map_or("", |v| v.trim()).to_owned();
    let (entity, entity_id, user_id, from, to) = (
        text("entity"),
        text("entity_id"),
        text("user_id"),
        text("from"),
        text("to"),
    );
    let day = |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
    let filter = audit::Filter {
        entity: (!entity.is_empty()).then(|| entity.clone()),
        entity_id: entity_id.parse().ok(),
        user_id: user_id.parse().ok(),
        // Days of the company's calendar, both included.
        from: day(&from).map(|d| crate::domain::time::day_start(t.tz, d)),
        to: day(&to)
            .and_then(|d| d.succ_opt())
            .map(|d| crate::domain::time::day_start(t.tz, d)),
    };
    let scope = audit_scope(&v.ctx.actor);
    let (entries, next) = match audit::list(&s.db, scope, &filter, list_page(&q)).await {
        Ok(x) => x,
        Err(e) => return page_error(t, e),
    };
    // Names of the people in this page of the log.
    let mut who: Vec<i64> = entries.iter().filter_map(|e| e.user_id).collect();
    who.sort_unstable();
    who.dedup();
    let names = match users::names(&s.db, &who).await {
        Ok(n) => n,
        Err(e) => return page_error(t, e),
    };
    // Walking the whole chain is for those who read the whole log.
    let may_verify = scope == AuditScope::All;
    let chain = if may_verify && q.contains_key("verify") {
        match audit::verify(&s.db).await {
            Ok(Ok(n)) => Some(t.t1("audit.intact", n)),
            Ok(Err(b)) => Some(t.t1("audit.broken", b)),
            Err(e) => return page_error(t, e),
        }
    } else {
        None
    };
    let rows = entries
        .into_iter()
        .map(|e| AuditRow {
            at: t.when(e.at),
            who: audit_actor(t, e.user_id, &e.ip, &names),
            who_id: e.user_id,
            ip: e.ip,
            href: record_href(&e.entity, e.entity_id),
            entity_id: e.entity_id.map_or_else(String::new, |i| i.to_string()),
            action: e.action,
            entity: e.entity,
            before: audit_snapshot_text(t, e.before, &e.personal_changed),
            after: audit_snapshot_text(t, e.after, &e.personal_changed),
        })
        .collect();
    let user_name = filter
        .user_id
        .map(|id| names.get(&id).cloned().unwrap_or_else(|| format!("#{id}")));
    let next_href = next_href(
        "/admin/audit",
        &[
            ("entity", &entity),
            ("entity_id", &entity_id),
            ("user_id", &user_id),
            ("from", &from),
            ("to", &to),
        ],
        next,
    );
    render(&AuditPage {
        l: Layout::signed_in(&v, "audit", "/admin/audit"),
        rows,
        entities: AUDIT_ENTITIES.to_vec(),
        entity,
        entity_id,
        user_id,
        user_name,
        from,
        to,
        may_verify,
        chain,
        next_href,
    })
}

/// The administration pages, merged into the pages' router.
pub fn routes() -> Router<AppState> {
    use axum::routing::get;
    Router::new()
        .route("/admin/users", get(users_page).post(user_create))
        .route("/admin/users/{id}", get(user_page).post(user_change))
        .route("/admin/audit", get(audit_page))
}
