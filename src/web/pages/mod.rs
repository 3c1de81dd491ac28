//! The web pages: server-rendered HTML from templates checked at compile time, plain forms
//! with post/redirect/get, the project's own CSS and a little JavaScript, embedded and
//! cache-busted. Every page goes through the same store functions, so the access matrix holds.

use super::AppState;
use super::auth_api::{self, PasswordStep};
use super::extract::ClientIp;
use super::i18n::{Lang, Tr};
use super::session::{
    LANG_COOKIE, Language, PRE_COOKIE, SESSION_COOKIE, Viewer, cookie, csrf_for, forbidden,
    set_cookie,
};
use crate::auth::MfaPurpose;
use crate::domain::ids::{RequestId, UserId};
use crate::domain::request::{self as rules, RequestType, Status};
use crate::error::Error;
use crate::store::{Page, requests, users};
use askama::Template;
use axum::Router;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::OnceLock;

mod account;
mod admin;
mod catalog;
mod outbox;
mod signin;
use signin::*;

/// The company's time zone when none is configured.
pub const DEFAULT_TZ: chrono_tz::Tz = chrono_tz::Europe::Moscow;

/// Settings the pages need from the web configuration.
#[derive(Clone, Copy, Debug)]
pub struct PageFlags {
    /// Cookies get `Secure` when the site is served over HTTPS.
    pub https: bool,
    /// The company's time zone.
    pub tz: chrono_tz::Tz,
}

/// The fields of a posted form. A body that is not a form reads as no fields, so a forged
/// post without its token is refused by the CSRF check (403), whatever it sends.
pub struct FormFields(pub HashMap<String, String>);

impl<S: Send + Sync> axum::extract::FromRequest<S> for FormFields {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Response> {
        let (parts, body) = req.into_parts();
        let t = super::session::tr_of(&parts);
        let req = axum::extract::Request::from_parts(parts, body);
        let bytes = super::extract::body_bytes(req, state)
            .await
            .map_err(|e| page_error(t, e))?;
        let fields = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
        without_controls(fields)
            .map(FormFields)
            .map_err(|name| control_characters(t, &name))
    }
}

use crate::domain::text::has_forbidden_control;

/// The posted fields read as a typed form (fields it does not name, such as the token, are
/// left out); a form that does not fit reads as its default.
pub(crate) fn typed_form<T: serde::de::DeserializeOwned + Default>(
    f: &HashMap<String, String>,
) -> T {
    serde_urlencoded::to_string(f)
        .ok()
        .and_then(|body| serde_urlencoded::from_str(&body).ok())
        .unwrap_or_default()
}

/// The fields as they are, or the name of the first one holding a control character. A
/// `next` that does is dropped instead: it is only ever a place to go, and `/` will do.
fn without_controls(
    mut fields: HashMap<String, String>,
) -> Result<HashMap<String, String>, String> {
    if fields.get("next").is_some_and(|n| has_forbidden_control(n)) {
        fields.remove("next");
    }
    match fields
        .iter()
        .find(|(k, v)| has_forbidden_control(k) || has_forbidden_control(v))
    {
        Some((name, _)) => Err(name.clone()),
        None => Ok(fields),
    }
}

/// The 422 page for text that no field may hold (NUL and other control characters).
fn control_characters(t: Tr, field: &str) -> Response {
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    let message = format!("{} ({field})", t.t("field.invalid_characters"));
    (status, Html(error_page(t, status, &message))).into_response()
}

/// Query parameters of a page. Text with control characters cannot be searched for, stored
/// or shown: refused with the 422 page, as the API's `Query` refuses it with a problem.
pub struct Query<T>(pub T);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Query<HashMap<String, String>> {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Response> {
        let raw = parts.uri.query().unwrap_or("");
        let q = url::form_urlencoded::parse(raw.as_bytes())
            .into_owned()
            .collect();
        without_controls(q)
            .map(Query)
            .map_err(|name| control_characters(super::session::tr_of(parts), &name))
    }
}

const CSS: &str = include_str!("../../../assets/web/app.css");
const JS: &str = include_str!("../../../assets/web/app.js");

/// Asset paths carry a hash of their content, so browsers may keep them for a year.
struct Assets {
    css: String,
    js: String,
}

fn assets() -> &'static Assets {
    static A: OnceLock<Assets> = OnceLock::new();
    A.get_or_init(|| {
        let tag = |body: &str| crate::auth::secret_hash(body)[..12].to_owned();
        Assets {
            css: format!("/assets/app.{}.css", tag(CSS)),
            js: format!("/assets/app.{}.js", tag(JS)),
        }
    })
}

async fn asset(Path(name): Path<String>) -> Response {
    let a = assets();
    let (body, kind) = if format!("/assets/{name}") == a.css {
        (CSS, "text/css; charset=utf-8")
    } else if format!("/assets/{name}") == a.js {
        (JS, "text/javascript; charset=utf-8")
    } else {
        return StatusCode::NOT_FOUND.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}

/// What every page's frame needs.
pub struct Layout {
    pub t: Tr,
    pub csrf: String,
    pub user_name: Option<String>,
    /// Those who may read users see the user administration in the menu.
    pub users_link: bool,
    /// Those who may read the audit log see it in the menu.
    pub audit_link: bool,
    /// Administrators see the notifications queue in the menu.
    pub outbox_link: bool,
    /// Those who may open requests see the way to the new-request form.
    pub may_open_requests: bool,
    pub section: &'static str,
    pub path: String,
    pub other_lang: &'static str,
    pub tz: String,
    pub css: &'static str,
    pub js: &'static str,
}

impl Layout {
    fn new(
        t: Tr,
        csrf: String,
        user_name: Option<String>,
        section: &'static str,
        path: &str,
    ) -> Layout {
        let a = assets();
        Layout {
            t,
            csrf,
            user_name,
            users_link: false,
            audit_link: false,
            outbox_link: false,
            may_open_requests: false,
            section,
            path: path.to_owned(),
            other_lang: t.lang.other().code(),
            tz: t.tz.name().to_owned(),
            css: &a.css,
            js: &a.js,
        }
    }

    fn signed_in(v: &Viewer, section: &'static str, path: &str) -> Layout {
        use crate::domain::access::{Action, Resource, Role, can, may_read_audit};
        Layout {
            users_link: can(&v.ctx.actor, Resource::Users, Action::Read),
            audit_link: may_read_audit(&v.ctx.actor),
            outbox_link: v.ctx.actor.has(Role::Admin),
            may_open_requests: can(&v.ctx.actor, Resource::Requests, Action::Create),
            ..Layout::new(
                v.tr,
                v.csrf.clone(),
                Some(v.user.name.clone()),
                section,
                path,
            )
        }
    }
}

/// A page as HTML. Its words depend on the language cookie and the browser's languages.
fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => ([(header::VARY, "Cookie, Accept-Language")], Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a page");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    l: Layout,
    status: u16,
    message: String,
    request_id: String,
}

/// The HTML of an error page (404, 403, 500) with the request id.
pub fn error_page(t: Tr, status: StatusCode, message: &str) -> String {
    let page = ErrorPage {
        l: Layout::new(t, String::new(), None, "", "/"),
        status: status.as_u16(),
        message: message.to_owned(),
        request_id: super::problem::current_request_id(),
    };
    page.render().unwrap_or_else(|_| message.to_owned())
}

/// An error as a page: 404 for anything invisible, 500 (logged) for the unexpected.
fn page_error(t: Tr, e: Error) -> Response {
    match e {
        Error::NotFound => not_found(t),
        Error::Internal(err) => {
            tracing::error!(request_id = %super::problem::current_request_id(), error = ?err, "internal error");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html(error_page(
                    t,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    t.t("error.500"),
                )),
            )
                .into_response()
        }
        // Anything else a page did not place on its form: the error page, with the status
        // (and `Retry-After`) the API would answer, and the refusal in the user's words.
        other => {
            let message = problem_text(t, &other);
            let api = other.into_response();
            let status = api.status();
            let mut r = (status, Html(error_page(t, status, &message))).into_response();
            if let Some(retry) = api.headers().get(header::RETRY_AFTER) {
                r.headers_mut().insert(header::RETRY_AFTER, retry.clone());
            }
            r
        }
    }
}

fn not_found(t: Tr) -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(error_page(t, StatusCode::NOT_FOUND, t.t("error.404"))),
    )
        .into_response()
}

/// The record id in a page's path: a positive number, else the 404 page. Put it after the
/// `Viewer`, so that signing in comes first.
pub struct RecordId(pub i64);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RecordId {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Response> {
        // By name, so that routes with more than one parameter have it too.
        let id = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .ok()
            .and_then(|p| {
                p.iter()
                    .find(|(k, _)| *k == "id")
                    .and_then(|(_, v)| v.parse::<i64>().ok())
            })
            .filter(|id| *id > 0);
        id.map(RecordId)
            .ok_or_else(|| not_found(super::session::tr_of(parts)))
    }
}

/// The fallback for paths outside the API: the 404 page.
pub async fn fallback(Language(t): Language) -> Response {
    not_found(t)
}

/// A local path to go to after signing in; anything else becomes `/` (`domain::text`).
fn safe_next(next: Option<&String>) -> String {
    crate::domain::text::local_path(next.map(String::as_str))
}

/// Whether a posted form token is this browser's: its session's, or before sign-in the
/// double-submit cookie's.
fn form_token_ok(s: &AppState, headers: &HeaderMap, token: &str) -> bool {
    let eq = |a: &str| crate::domain::totp::constant_time_eq(a.as_bytes(), token.as_bytes());
    if let Some((_, family)) =
        cookie(headers, SESSION_COOKIE).and_then(|c| s.keys.verify_web(c, s.clock.now()))
        && eq(&csrf_for(&family))
    {
        return true;
    }
    cookie(headers, PRE_COOKIE).is_some_and(|pre| s.keys.verify_pre(pre, s.clock.now()) && eq(pre))
}

/// The double-submit value of this browser, and a cookie to set when it has none yet. The
/// value is issued and signed by the server (`TokenKeys::issue_pre`), so a cookie a client
/// made up, or one planted by a neighbouring site, never passes the check.
fn pre_token(
    s: &AppState,
    headers: &HeaderMap,
    flags: PageFlags,
) -> (String, Option<header::HeaderValue>) {
    let now = s.clock.now();
    match cookie(headers, PRE_COOKIE).filter(|v| s.keys.verify_pre(v, now)) {
        Some(v) => (v.to_owned(), None),
        None => match s.keys.issue_pre(now) {
            Ok(v) => {
                let c = set_cookie(PRE_COOKIE, &v, None, flags.https);
                (v, Some(c))
            }
            Err(e) => {
                // Signing cannot fail with an HMAC key; should it, the form is refused later.
                tracing::error!(error = %e, "cannot sign a sign-in form token");
                (String::new(), None)
            }
        },
    }
}

fn with_cookie(mut r: Response, c: Option<header::HeaderValue>) -> Response {
    if let Some(c) = c {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

// ------------------------------------------------------------------ requests

/// A request as a row of a list.
#[derive(Clone)]
pub struct RowView {
    pub id: i64,
    pub number: String,
    pub subject: String,
    pub type_label: &'static str,
    pub emergency: bool,
    pub status: &'static str,
    pub status_label: &'static str,
    pub deadline: String,
    pub deadline_iso: String,
    pub overdue: bool,
    /// Time left to the deadline, or how late it is, while the request is being worked.
    pub left: Option<String>,
}

fn when(t: Tr, at: DateTime<Utc>) -> String {
    t.when(at)
}

fn status_label(t: Tr, s: Status) -> &'static str {
    t.t(&format!("status.{}", s.as_str()))
}

fn type_label(t: Tr, k: RequestType) -> &'static str {
    t.t(&format!("type.{}", k.as_str()))
}

/// The deadline that matters now: to assign, while no engineer is assigned; else to close.
fn current_deadline(r: &requests::ServiceRequest) -> DateTime<Utc> {
    if r.status == Status::Open && r.assigned_to.is_none() {
        r.assign_by
    } else {
        r.close_by
    }
}

fn row_view(t: Tr, now: DateTime<Utc>, r: &requests::ServiceRequest) -> RowView {
    let deadline = current_deadline(r);
    let left = matches!(r.status, Status::Open | Status::InProgress).then(|| {
        let minutes = (deadline - now).num_minutes();
        if minutes >= 0 {
            t.t1("time.left", t.span(minutes))
        } else {
            t.t1("time.late", t.span(-minutes))
        }
    });
    RowView {
        id: r.id.0,
        number: r.number.clone(),
        subject: r.subject.clone(),
        type_label: type_label(t, r.r#type),
        emergency: r.r#type == RequestType::Emergency,
        status: r.status.as_str(),
        status_label: status_label(t, r.status),
        deadline: when(t, deadline),
        deadline_iso: t.when_iso(deadline),
        overdue: r.overdue,
        left,
    }
}

#[derive(Template)]
#[template(path = "requests.html")]
struct RequestsPage {
    l: Layout,
    rows: Vec<RowView>,
    q: String,
    status: String,
    kind: String,
    overdue: bool,
    types: Vec<(&'static str, &'static str)>,
    statuses: Vec<(&'static str, &'static str)>,
    next_cursor: Option<String>,
    next_href: String,
}

async fn request_list(
    State(s): State<AppState>,
    v: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let t = v.tr;
    let text = q.get("q").cloned().unwrap_or_default();
    let status = q
        .get("status")
        .filter(|st| Status::parse(st).is_some())
        .cloned()
        .unwrap_or_default();
    let page = list_page(&q);
    let kind = q
        .get("type")
        .filter(|k| RequestType::parse(k).is_some())
        .cloned()
        .unwrap_or_default();
    let overdue = q.get("overdue").is_some_and(|o| o == "1");
    let filter = requests::Filter {
        status: (!status.is_empty()).then(|| status.clone()),
        r#type: (!kind.is_empty()).then(|| kind.clone()),
        overdue: overdue.then_some(true),
        q: (!text.trim().is_empty()).then(|| text.clone()),
        ..Default::default()
    };
    let (list, next) = match requests::list(&s.db, &v.ctx, &filter, page).await {
        Ok(x) => x,
        Err(e) => return page_error(t, e),
    };
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("q", &text)
        .append_pair("status", &status)
        .append_pair("type", &kind)
        .append_pair("overdue", if overdue { "1" } else { "" })
        .finish();
    render(&RequestsPage {
        l: Layout::signed_in(&v, "requests", "/requests"),
        rows: list.iter().map(|r| row_view(t, v.ctx.now, r)).collect(),
        q: text,
        status,
        kind,
        overdue,
        types: RequestType::ALL
            .iter()
            .map(|k| (k.as_str(), type_label(t, *k)))
            .collect(),
        statuses: Status::ALL
            .iter()
            .map(|st| (st.as_str(), status_label(t, *st)))
            .collect(),
        next_cursor: next,
        next_href: format!("/requests?{query}&cursor="),
    })
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    l: Layout,
    name: String,
    counts: Vec<(&'static str, &'static str, i64)>,
    rows: Vec<RowView>,
    mine: Option<MyRequests>,
    chart: Chart,
}

/// Requests opened and completed per week, as bars of an SVG drawn on the server.
pub struct Chart {
    pub width: u32,
    pub height: u32,
    /// x, y, width, height, class ("opened"/"done"), tooltip.
    pub bars: Vec<(u32, u32, u32, u32, &'static str, String)>,
    /// x of the label, the label (the week's Monday, dd.mm).
    pub labels: Vec<(u32, String)>,
    /// The figures in words, for screen readers.
    pub summary: String,
}

const CHART_WEEKS: usize = 8;

fn weekly_chart(
    t: Tr,
    now: DateTime<Utc>,
    activity: &[(DateTime<Utc>, Option<DateTime<Utc>>)],
) -> Chart {
    use chrono::Datelike;
    let today = now.with_timezone(&t.tz).date_naive();
    let monday = today - chrono::Duration::days(i64::from(today.weekday().num_days_from_monday()));
    let first = monday - chrono::Duration::weeks(CHART_WEEKS as i64 - 1);
    let day = |at: &DateTime<Utc>| at.with_timezone(&t.tz).date_naive();
    let opened: Vec<_> = activity.iter().map(|(c, _)| day(c)).collect();
    let done: Vec<_> = activity
        .iter()
        .filter_map(|(_, d)| d.as_ref().map(day))
        .collect();
    let weeks = rules::per_week(first, CHART_WEEKS, &opened, &done);
    let (width, height, base) = (40 * CHART_WEEKS as u32, 140, 120);
    let max = weeks.iter().map(|w| w.1.max(w.2)).max().unwrap_or(0).max(1);
    let scale = |n: u32| n * 100 / max;
    let mut bars = Vec::new();
    let mut labels = Vec::new();
    let mut summary = Vec::new();
    for (i, (monday, o, d)) in weeks.iter().enumerate() {
        let x = 40 * i as u32 + 6;
        let label = monday.format("%d.%m").to_string();
        bars.push((
            x,
            base - scale(*o),
            13,
            scale(*o),
            "opened",
            format!("{label}: {} {o}", t.t("chart.opened")),
        ));
        bars.push((
            x + 14,
            base - scale(*d),
            13,
            scale(*d),
            "done",
            format!("{label}: {} {d}", t.t("chart.done")),
        ));
        labels.push((x + 13, label.clone()));
        summary.push(format!(
            "{label} — {} {o}, {} {d}",
            t.t("chart.opened"),
            t.t("chart.done")
        ));
    }
    Chart {
        width,
        height,
        bars,
        labels,
        summary: summary.join("; "),
    }
}

async fn dashboard(State(s): State<AppState>, v: Viewer) -> Response {
    let t = v.tr;
    let counts = match requests::count_by_status(&s.db, &v.ctx).await {
        Ok(c) => c,
        Err(e) => return page_error(t, e),
    };
    let first = Page {
        limit: 20,
        after: None,
    };
    let mut rows = Vec::new();
    for filter in [
        requests::Filter {
            overdue: Some(true),
            ..Default::default()
        },
        requests::Filter {
            r#type: Some("emergency".into()),
            status: Some("open,in_progress".into()),
            ..Default::default()
        },
    ] {
        match requests::list(&s.db, &v.ctx, &filter, first).await {
            Ok((list, _)) => {
                for r in list {
                    if !rows.iter().any(|x: &requests::ServiceRequest| x.id == r.id) {
                        rows.push(r);
                    }
                }
            }
            Err(e) => return page_error(t, e),
        }
    }
    // Emergencies first, then the nearest deadline.
    rows.sort_by_key(|r| (r.r#type != RequestType::Emergency, current_deadline(r)));
    // The user's own work: an engineer's requests, a client's open ones, a dispatcher's
    // queue of requests waiting for an engineer.
    use crate::domain::access::{Action, Resource, Role, can};
    let actor = &v.ctx.actor;
    let active = Some("open,in_progress".to_owned());
    let mine = if actor.has(Role::Engineer) {
        Some((
            "dashboard.mine.engineer",
            requests::Filter {
                status: active,
                assigned_to: Some(actor.user_id.0),
                ..Default::default()
            },
        ))
    } else if actor.has(Role::Client) {
        Some((
            "dashboard.mine.client",
            requests::Filter {
                status: active,
                ..Default::default()
            },
        ))
    } else if can(actor, Resource::Requests, Action::Update) {
        Some((
            "dashboard.mine.queue",
            requests::Filter {
                status: Some("open".to_owned()),
                unassigned: Some(true),
                ..Default::default()
            },
        ))
    } else {
        None
    };
    let mine = match mine {
        Some((title, filter)) => match requests::list(&s.db, &v.ctx, &filter, first).await {
            Ok((mut list, more)) => {
                list.sort_by_key(|r| (r.r#type != RequestType::Emergency, current_deadline(r)));
                Some(MyRequests {
                    title: t.t(title),
                    rows: list.iter().map(|r| row_view(t, v.ctx.now, r)).collect(),
                    more: more.is_some(),
                })
            }
            Err(e) => return page_error(t, e),
        },
        None => None,
    };
    let since = v.ctx.now - chrono::Duration::weeks(CHART_WEEKS as i64 + 1);
    let activity = match requests::activity_since(&s.db, &v.ctx, since).await {
        Ok(a) => a,
        Err(e) => return page_error(t, e),
    };
    let chart = weekly_chart(t, v.ctx.now, &activity);
    render(&DashboardPage {
        l: Layout::signed_in(&v, "dashboard", "/"),
        name: v.user.name.clone(),
        counts: counts
            .into_iter()
            .map(|(st, n)| (st.as_str(), status_label(t, st), n))
            .collect(),
        rows: rows.iter().map(|r| row_view(t, v.ctx.now, r)).collect(),
        mine,
        chart,
    })
}

/// The dashboard's list of the user's own work.
pub struct MyRequests {
    pub title: &'static str,
    pub rows: Vec<RowView>,
    /// More than the dashboard shows.
    pub more: bool,
}

#[derive(Template)]
#[template(path = "request.html")]
struct RequestPage {
    l: Layout,
    r: RowView,
    description: String,
    error: Option<String>,
    /// The comment typed with a refused move or comment, and what was wrong with it.
    form: FormState,
    engineer: String,
    /// Empty when there is none, or this viewer may not see it.
    engineer_phone: String,
    created: String,
    assign_by: String,
    close_by: String,
    moves: Vec<(&'static str, &'static str)>,
    /// The act: `Some(id)` when there is one; `may_start_report` when this user may write it.
    report_id: Option<i64>,
    may_start_report: bool,
    /// Engineers to choose from, when this user may assign and the request is still open.
    engineers: Vec<(i64, String)>,
    assigned: i64,
    version: i64,
    history: Vec<(String, String, &'static str, String)>,
    comments: Vec<(String, String, String)>,
}

impl RequestPage {
    /// The phone as a `tel:` link wants it: the leading plus and the digits.
    fn engineer_tel(&self) -> String {
        self.engineer_phone
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect()
    }
}

async fn request_page_for(
    s: &AppState,
    v: &Viewer,
    id: i64,
    error: Option<String>,
    form: FormState,
) -> Response {
    let t = v.tr;
    let r = match requests::get(&s.db, &v.ctx, RequestId(id)).await {
        Ok(r) => r,
        Err(e) => return page_error(t, e),
    };
    let history = match requests::history_of(&s.db, &v.ctx, RequestId(id)).await {
        Ok(h) => h,
        Err(e) => return page_error(t, e),
    };
    let comments = match requests::comments(&s.db, &v.ctx, RequestId(id)).await {
        Ok(c) => c,
        Err(e) => return page_error(t, e),
    };
    use crate::domain::access::{Action, Resource, Role, can};
    let is_client = v.ctx.actor.roles.contains(&Role::Client);
    // The engineer's phone is staff data; clients see it only where the company allows.
    let phone_shown = !is_client || s.security.clients_see_engineer_phone;
    let (engineer, engineer_phone) = match r.assigned_to {
        Some(u) => match users::find(&s.db, u).await {
            Ok(Some(row)) if phone_shown => {
                let phone = match s.db.keys().and_then(|k| row.view(k)) {
                    Ok(user) => user.phone,
                    Err(e) => return page_error(t, e),
                };
                (row.name, phone)
            }
            Ok(Some(row)) => (row.name, String::new()),
            Ok(None) => (t.t("request.engineer.none").to_owned(), String::new()),
            Err(e) => return page_error(t, e),
        },
        None => (t.t("request.engineer.none").to_owned(), String::new()),
    };
    let is_assignee = r.assigned_to == Some(v.ctx.actor.user_id);
    let may_assign = r.status == Status::Open
        && !is_client
        && can(&v.ctx.actor, Resource::Requests, Action::Update);
    let engineers = if may_assign {
        match users::engineers(&s.db).await {
            Ok(list) => list,
            Err(e) => return page_error(t, e),
        }
    } else {
        Vec::new()
    };
    let moves = rules::moves_for(&v.ctx.actor, r.status, is_assignee)
        .into_iter()
        .map(|m| (m.as_str(), t.t(&format!("move.{}", m.as_str()))))
        .collect();
    render(&RequestPage {
        form,
        description: r.description.clone(),
        report_id: r.report_id.map(|x| x.0),
        may_start_report: r.report_id.is_none()
            && matches!(r.status, Status::Open | Status::InProgress)
            && can(&v.ctx.actor, Resource::Reports, Action::Create),
        engineers,
        assigned: r.assigned_to.map_or(0, |u| u.0),
        version: r.version,
        l: Layout::signed_in(v, "requests", &format!("/requests/{id}")),
        error,
        engineer,
        engineer_phone,
        created: when(t, r.created_at),
        assign_by: when(t, r.assign_by),
        close_by: when(t, r.close_by),
        moves,
        history: history
            .iter()
            .map(|h| {
                (
                    t.when_iso(h.created_at),
                    when(t, h.created_at),
                    status_label(t, h.to_status),
                    h.comment.clone(),
                )
            })
            .collect(),
        comments: comments
            .iter()
            .map(|c| {
                (
                    t.when_iso(c.created_at),
                    when(t, c.created_at),
                    c.body.clone(),
                )
            })
            .collect(),
        r: row_view(t, v.ctx.now, &r),
    })
}

async fn request_page(State(s): State<AppState>, v: Viewer, RecordId(id): RecordId) -> Response {
    request_page_for(&s, &v, id, None, FormState::default()).await
}

async fn request_move(State(s): State<AppState>, Posted { v, id, f }: Posted) -> Response {
    let Some(status) = f.get("status").and_then(|st| Status::parse(st)) else {
        let refused = Error::field("status", "unknown_value", "not a status");
        return after_change(&s, &v, id, &f, Err(refused)).await;
    };
    let change = requests::StatusChange {
        status,
        comment: f.get("comment").cloned().unwrap_or_default(),
    };
    let result = requests::set_status(&s.db, &v.ctx, RequestId(id), change).await;
    after_change(&s, &v, id, &f, result.map(|_| ())).await
}

/// A site as a choice in a form: its name, and its address when it has one.
fn site_label(o: &crate::store::objects::ServiceObject) -> String {
    if o.address.is_empty() {
        o.name.clone()
    } else {
        format!("{} — {}", o.name, o.address)
    }
}

/// A site in the new-request form, with what choosing it fills in.
pub struct ObjectChoice {
    pub id: i64,
    pub label: String,
    pub customer_id: i64,
    /// The active project containing the site, which a request on it belongs to.
    pub project: String,
}

#[derive(Template)]
#[template(path = "request_new.html")]
struct NewRequestPage {
    l: Layout,
    /// The customers to choose from; empty for a client, who has only their own.
    customers: Vec<(i64, String)>,
    customer_id: String,
    objects: Vec<ObjectChoice>,
    /// More sites exist than the list holds: choosing the customer first narrows it.
    truncated: bool,
    types: Vec<(&'static str, &'static str)>,
    kind: RequestType,
    /// What was typed and what was wrong with it, by field.
    form: FormState,
    /// A refusal that belongs to no field.
    alert: Option<String>,
}

impl NewRequestPage {
    /// The project the chosen site fills in, as the page first shows it.
    fn chosen_project(&self) -> &str {
        self.objects
            .iter()
            .find(|o| o.id.to_string() == self.form.val("object_id").trim())
            .map_or("", |o| o.project.as_str())
    }
}

/// The form to open a request on one of the sites this user may see. Staff choose the
/// customer first, which narrows the sites; the site fills in the project.
async fn new_request_page(
    s: &AppState,
    v: &Viewer,
    form: FormState,
    alert: Option<String>,
) -> Response {
    use crate::store::{objects, projects};
    let t = v.tr;
    let all = || max_page(None);
    let customer = form
        .val("customer_id")
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|c| *c > 0);
    let is_client = v
        .ctx
        .actor
        .roles
        .contains(&crate::domain::access::Role::Client);
    let customers = if is_client {
        Vec::new()
    } else {
        match customer_choices(s, v).await {
            Ok(c) => c,
            Err(e) => return page_error(t, e),
        }
    };
    let filter = objects::Filter {
        archived: Some(false),
        customer,
        ..Default::default()
    };
    let (list, more) = match objects::list(&s.db, &v.ctx, &filter, all()).await {
        Ok(x) => x,
        Err(e) => return page_error(t, e),
    };
    // The active project of each site, from one list of active projects.
    let active = projects::Filter {
        status: Some("active".to_owned()),
        customer,
        ..Default::default()
    };
    let project_of: HashMap<i64, String> = match projects::list(&s.db, &v.ctx, &active, all()).await
    {
        Ok((list, _)) => list
            .into_iter()
            .flat_map(|p| {
                let name = p.name;
                p.objects
                    .into_iter()
                    .map(move |o| (o.object_id.0, name.clone()))
            })
            .collect(),
        Err(e) => return page_error(t, e),
    };
    let mut objects: Vec<ObjectChoice> = list
        .into_iter()
        .map(|o| ObjectChoice {
            id: o.id.0,
            label: site_label(&o),
            customer_id: o.customer_id.0,
            project: project_of.get(&o.id.0).cloned().unwrap_or_default(),
        })
        .collect();
    objects.sort_by(|a, b| a.label.cmp(&b.label));
    let page = NewRequestPage {
        l: Layout::signed_in(v, "requests", "/requests/new"),
        customers,
        customer_id: customer.map_or_else(String::new, |c| c.to_string()),
        objects,
        truncated: more.is_some(),
        types: RequestType::ALL
            .iter()
            .map(|k| (k.as_str(), type_label(t, *k)))
            .collect(),
        kind: RequestType::parse(form.val("type")).unwrap_or(RequestType::Maintenance),
        form,
        alert,
    };
    render(&page)
}

async fn new_request_form(
    State(s): State<AppState>,
    v: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    new_request_page(&s, &v, FormState::posted(&q), None).await
}

async fn create_request(State(s): State<AppState>, Submitted { v, f }: Submitted) -> Response {
    let t = v.tr;
    let object = f
        .get("object_id")
        .and_then(|o| o.trim().parse::<i64>().ok());
    let Some(object) = object else {
        let form = FormState {
            errors: vec![("object_id".into(), t.t("field.required"))],
            ..FormState::posted(&f)
        };
        let page = new_request_page(&s, &v, form, None).await;
        return with_status(page, StatusCode::UNPROCESSABLE_ENTITY);
    };
    let input = requests::NewRequest {
        r#type: f
            .get("type")
            .and_then(|k| RequestType::parse(k))
            .unwrap_or(RequestType::Maintenance),
        subject: f.get("subject").cloned().unwrap_or_default(),
        description: f.get("description").cloned().unwrap_or_default(),
        // A customer chosen on the form must be the site's; the store refuses a mismatch.
        customer_id: f
            .get("customer_id")
            .and_then(|c| c.trim().parse::<i64>().ok())
            .filter(|c| *c > 0)
            .map(crate::domain::ids::CustomerId),
        project_id: None,
        object_id: Some(crate::domain::ids::ObjectId(object)),
        assigned_to: None,
        // Staff typing into the desk; clients' requests are marked as from the portal.
        source: (!v
            .ctx
            .actor
            .roles
            .contains(&crate::domain::access::Role::Client))
        .then_some(crate::domain::request::Source::Web),
        reported_at: None,
        planned_start: None,
        planned_end: None,
    };
    match requests::create(&s.db, &v.ctx, &s.sla, input).await {
        Ok(r) => Redirect::to(&format!("/requests/{}", r.id.0)).into_response(),
        Err(e @ (Error::NotFound | Error::Internal(_))) => page_error(t, e),
        // Kept on the form with what was typed: a broken rule next to its field, anything
        // else (a role that may not open requests, say) above it.
        Err(e) => {
            let (errors, alert) = form_problems(t, &e);
            let form = FormState {
                errors,
                ..FormState::posted(&f)
            };
            let page = new_request_page(&s, &v, form, alert).await;
            with_status(page, refusal_status(&e))
        }
    }
}

/// As many rows as a page may hold, after the cursor: for choices and related records.
fn max_page(after: Option<i64>) -> Page {
    Page {
        limit: Page::MAX,
        after,
    }
}

/// The page with the status of the refusal it shows (a page that failed to render keeps its
/// 500).
fn with_status(r: Response, status: StatusCode) -> Response {
    let mut r = r;
    if r.status() == StatusCode::OK {
        *r.status_mut() = status;
    }
    r
}

/// The customers this user may see, by name: the choices of filters and forms.
async fn customer_choices(s: &AppState, v: &Viewer) -> Result<Vec<(i64, String)>, Error> {
    use crate::store::customers;
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let (list, next) = customers::list(
            &s.db,
            &v.ctx,
            &customers::Filter::default(),
            max_page(after),
        )
        .await?;
        out.extend(list.into_iter().map(|c| (c.id.0, c.name)));
        match next.and_then(|n| n.parse::<i64>().ok()) {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    out.sort_by_key(|c| crate::domain::values::fold(&c.1));
    Ok(out)
}

/// A form as typed (or, before any edit, as stored) and what was wrong with it.
#[derive(Default)]
pub struct FormState {
    values: HashMap<String, String>,
    errors: Vec<(String, &'static str)>,
}

impl FormState {
    /// The posted fields, without the form token.
    fn posted(f: &HashMap<String, String>) -> FormState {
        let mut values = f.clone();
        values.remove("_csrf");
        FormState {
            values,
            errors: Vec::new(),
        }
    }

    fn set(&mut self, key: &str, value: impl Into<String>) {
        self.values.insert(key.to_owned(), value.into());
    }

    /// The typed value of a field; empty when none.
    pub fn val(&self, key: &str) -> &str {
        self.values.get(key).map_or("", String::as_str)
    }

    /// Whether a checkbox was ticked.
    pub fn has(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    /// Whether the checkbox `{prefix}{key}` was ticked (`role_` and `engineer`, say).
    pub fn ticked(&self, prefix: &str, key: &str) -> bool {
        self.values.contains_key(&format!("{prefix}{key}"))
    }

    /// What is wrong with a field, if anything.
    pub fn err(&self, field: &str) -> Option<&'static str> {
        self.errors.iter().find(|(f, _)| f == field).map(|e| e.1)
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }
}

/// The page of a list from its `cursor` parameter; a bad cursor starts over.
fn list_page(q: &HashMap<String, String>) -> Page {
    crate::web::extract::page(Some(Page::DEFAULT), q.get("cursor").map(String::as_str)).unwrap_or(
        Page {
            limit: Page::DEFAULT,
            after: None,
        },
    )
}

/// The link to a list's next page, keeping its filters.
fn next_href(path: &str, pairs: &[(&str, &str)], cursor: Option<String>) -> Option<String> {
    let cursor = cursor?;
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            query.append_pair(k, v);
        }
    }
    query.append_pair("cursor", &cursor);
    Some(format!("{path}?{}", query.finish()))
}

/// Field errors as a form shows them: (field, message) with the catalog's words.
fn field_errors(t: Tr, fields: &[crate::error::FieldError]) -> Vec<(String, &'static str)> {
    fields
        .iter()
        .map(|fe| {
            let msg = t
                .get(&format!("field.{}", fe.code))
                .unwrap_or_else(|| t.t("field.invalid"));
            (fe.field.clone(), msg)
        })
        .collect()
}

/// A refusal in one line, in the user's language: each field and what is wrong with it, a
/// conflict by its code (with the moves still allowed, for a refused move), a stale version.
fn problem_text(t: Tr, e: &Error) -> String {
    match e {
        Error::Validation(fields) => field_errors(t, fields)
            .into_iter()
            .map(|(field, msg)| format!("{field}: {msg}"))
            .collect::<Vec<_>>()
            .join(" "),
        Error::Conflict {
            code,
            message,
            allowed,
            ..
        } => {
            let text = t
                .get(&format!("conflict.{code}"))
                .map_or_else(|| message.clone(), str::to_owned);
            match allowed {
                Some(moves) if moves.is_empty() => format!("{text} {}", t.t("conflict.no_moves")),
                Some(moves) => {
                    let names: Vec<&str> = moves
                        .iter()
                        .filter_map(|m| Status::parse(m))
                        .map(|st| status_label(t, st))
                        .collect();
                    format!("{text} {}: {}.", t.t("conflict.allowed"), names.join(", "))
                }
                None => text,
            }
        }
        Error::Stale { .. } => t.t("form.stale").to_owned(),
        other => other.to_string(),
    }
}

/// The status of a page that shows a refusal: 422 for broken rules, 403 for a move this
/// user may not make, 409 for a conflict with the data (a stale version among them).
fn refusal_status(e: &Error) -> StatusCode {
    match e {
        Error::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        _ => StatusCode::CONFLICT,
    }
}

/// A refusal placed on a form: messages by field (a rule broken, or a conflict such as a
/// taken e-mail that names its field), and what belongs to no field.
fn form_problems(t: Tr, e: &Error) -> (Vec<(String, &'static str)>, Option<String>) {
    match e {
        Error::Validation(fields) => (field_errors(t, fields), None),
        Error::Conflict {
            code,
            fields,
            allowed: None,
            ..
        } if !fields.is_empty() => match t.get(&format!("conflict.{code}")) {
            Some(msg) => (fields.iter().map(|f| (f.clone(), msg)).collect(), None),
            None => (Vec::new(), Some(problem_text(t, e))),
        },
        other => (Vec::new(), Some(problem_text(t, other))),
    }
}

/// A form posted by a signed-in browser, its token checked: who, and the fields. Turned away
/// before the handler runs: a signed-out browser goes to sign in, a missing or foreign token
/// gets the 403 page.
pub struct Submitted {
    pub v: Viewer,
    pub f: HashMap<String, String>,
}

impl axum::extract::FromRequest<AppState> for Submitted {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self, Response> {
        use axum::extract::FromRequestParts;
        let (mut parts, body) = req.into_parts();
        let v = Viewer::from_request_parts(&mut parts, state).await?;
        let req = axum::extract::Request::from_parts(parts, body);
        let FormFields(f) = FormFields::from_request(req, state).await?;
        if !v.csrf_ok(f.get("_csrf").map_or("", String::as_str)) {
            return Err(forbidden(v.tr));
        }
        Ok(Submitted { v, f })
    }
}

/// A form posted to a record's path (`/…/{id}/…`): a [`Submitted`] form and the record's
/// id; an id that is no record id gets the 404 page (after sign-in and the token).
pub struct Posted {
    pub v: Viewer,
    pub id: i64,
    pub f: HashMap<String, String>,
}

impl axum::extract::FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self, Response> {
        use axum::extract::FromRequestParts;
        let (mut parts, body) = req.into_parts();
        let id = RecordId::from_request_parts(&mut parts, state).await;
        let req = axum::extract::Request::from_parts(parts, body);
        let Submitted { v, f } = Submitted::from_request(req, state).await?;
        let RecordId(id) = id?;
        Ok(Posted { v, id, f })
    }
}

/// Assigns (or unassigns) the engineer of an open request.
async fn request_assign(State(s): State<AppState>, Posted { v, id, f }: Posted) -> Response {
    // "0" (or nothing) unassigns; anything else must be a user id.
    let engineer = match f.get("assigned_to").map(|e| e.trim()).unwrap_or("0") {
        "" | "0" => None,
        e => match e.parse::<i64>() {
            Ok(id) if id > 0 => Some(UserId(id)),
            _ => {
                let refused = Error::field("assigned_to", "invalid", "not a user id");
                return after_change(&s, &v, id, &f, Err(refused)).await;
            }
        },
    };
    let version = f
        .get("version")
        .and_then(|x| x.parse::<i64>().ok())
        .unwrap_or(0);
    let patch = requests::RequestPatch {
        assigned_to: Some(engineer),
        ..Default::default()
    };
    let result = requests::update(
        &s.db,
        &v.ctx,
        &s.sla,
        RequestId(id),
        crate::store::Expected::Body(version),
        patch,
    )
    .await;
    after_change(&s, &v, id, &f, result.map(|_| ())).await
}

/// Adds a comment to a request.
async fn request_comment(State(s): State<AppState>, Posted { v, id, f }: Posted) -> Response {
    let c = requests::NewComment {
        body: f.get("body").cloned().unwrap_or_default(),
    };
    let result = requests::add_comment(&s.db, &v.ctx, RequestId(id), c).await;
    after_change(&s, &v, id, &f, result.map(|_| ())).await
}

/// Post/redirect/get after a change to a request, or the page with what went wrong.
async fn after_change(
    s: &AppState,
    v: &Viewer,
    id: i64,
    f: &HashMap<String, String>,
    result: Result<(), Error>,
) -> Response {
    match result {
        Ok(()) => Redirect::to(&format!("/requests/{id}")).into_response(),
        Err(Error::NotFound) => not_found(v.tr),
        Err(Error::Internal(e)) => page_error(v.tr, Error::Internal(e)),
        Err(e) => {
            let status = refusal_status(&e);
            let message = problem_text(v.tr, &e);
            // What was typed stays (a comment, say), and a field's problem stands next to it.
            let form = FormState {
                errors: form_problems(v.tr, &e).0,
                ..FormState::posted(f)
            };
            let mut r = request_page_for(s, v, id, Some(message), form).await;
            *r.status_mut() = status;
            r
        }
    }
}

#[derive(Template)]
#[template(path = "board.html")]
struct BoardPage {
    l: Layout,
    columns: Vec<(&'static str, &'static str, Vec<RowView>)>,
}

/// Open work as a board: a column per active status, emergencies and nearest deadlines first.
async fn board(State(s): State<AppState>, v: Viewer) -> Response {
    let t = v.tr;
    let mut columns = Vec::new();
    for st in [Status::Open, Status::InProgress, Status::Completed] {
        let filter = requests::Filter {
            status: Some(st.as_str().to_owned()),
            ..Default::default()
        };
        let first = Page {
            limit: Page::MAX,
            after: None,
        };
        let mut list = match requests::list(&s.db, &v.ctx, &filter, first).await {
            Ok((list, _)) => list,
            Err(e) => return page_error(t, e),
        };
        list.sort_by_key(|r| {
            (
                r.r#type != RequestType::Emergency,
                !r.overdue,
                current_deadline(r),
            )
        });
        columns.push((
            st.as_str(),
            status_label(t, st),
            list.iter().map(|r| row_view(t, v.ctx.now, r)).collect(),
        ));
    }
    render(&BoardPage {
        l: Layout::signed_in(&v, "requests", "/requests/board"),
        columns,
    })
}

// ------------------------------------------------------------------ acts

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage {
    l: Layout,
    id: i64,
    number: String,
    request_id: i64,
    request_number: String,
    status_label: &'static str,
    editable: bool,
    version: i64,
    work_date: String,
    work_date_label: String,
    rows: Vec<ShownRow>,
    total: String,
    errors: EditorErrors,
}

/// What is wrong with a posted act: a summary naming rows and columns, and the message of
/// each form field (`quantity_2`, `work_date`) to show next to it.
#[derive(Default)]
struct EditorErrors {
    summary: Vec<String>,
    fields: Vec<(String, &'static str)>,
}

impl EditorErrors {
    fn general(message: String) -> EditorErrors {
        EditorErrors {
            summary: vec![message],
            fields: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.summary.is_empty() && self.fields.is_empty()
    }

    fn error_for(&self, field: &str) -> Option<&'static str> {
        self.fields.iter().find(|(f, _)| f == field).map(|e| e.1)
    }
}

fn money_text(t: Tr, decimal: &str) -> String {
    crate::domain::values::Money::parse("amount", decimal)
        .map(|m| m.display(t.lang == Lang::Ru))
        .unwrap_or_else(|_| decimal.to_owned())
}

/// One row of the act editor as typed: description, quantity, unit, price.
type PostedRow = (String, String, String, String);

/// A row as the editor shows it: the typed fields, the amount and the row's field errors.
#[derive(Default)]
struct ShownRow {
    description: String,
    quantity: String,
    unit: String,
    price: String,
    amount: String,
    /// Messages for description, quantity, unit and price.
    errors: [Option<&'static str>; 4],
}

/// The editor's columns as its form fields name them (`quantity_2`), in order.
const EDITOR_COLUMNS: [&str; 4] = ["description", "quantity", "unit", "price"];

/// The store's refusal of an act, placed on the form: `items[i].unit_price` of the i-th kept
/// row becomes the message of `price_N` for that row N, and the summary names row and column.
fn editor_errors(t: Tr, fields: &[crate::error::FieldError], kept: &[usize]) -> EditorErrors {
    let mut out = EditorErrors::default();
    for (field, msg) in field_errors(t, fields) {
        let place = field.strip_prefix("items[").and_then(|rest| {
            let (i, name) = rest.split_once("].")?;
            let row = *kept.get(i.parse::<usize>().ok()?)?;
            let column = match name {
                "unit_price" => 3,
                other => EDITOR_COLUMNS.iter().position(|c| *c == other)?,
            };
            Some((row, column))
        });
        match place {
            Some((row, column)) => {
                let label = match column {
                    0 => t.t("report.item.description"),
                    1 => t.t("report.item.quantity"),
                    2 => t.t("report.item.unit"),
                    _ => t.t("report.item.price"),
                };
                out.summary
                    .push(format!("{}, {}: {msg}", t.t1("report.row", row + 1), label));
                out.fields
                    .push((format!("{}_{row}", EDITOR_COLUMNS[column]), msg));
            }
            None if field == "work_date" => {
                out.summary
                    .push(format!("{}: {msg}", t.t("report.work_date")));
                out.fields.push((field, msg));
            }
            None if field == "items" => out.summary.push(format!("{}: {msg}", t.t("report.items"))),
            None => out.summary.push(format!("{field}: {msg}")),
        }
    }
    out
}

/// Rows of the act editor as posted: `description_N`, `quantity_N`, `unit_N`, `price_N`.
fn posted_rows(f: &HashMap<String, String>) -> Vec<PostedRow> {
    let mut indices: Vec<usize> = f
        .keys()
        .filter_map(|k| k.strip_prefix("description_")?.parse().ok())
        .collect();
    indices.sort_unstable();
    indices
        .into_iter()
        .map(|i| {
            let v = |name: &str| f.get(&format!("{name}_{i}")).cloned().unwrap_or_default();
            (v("description"), v("quantity"), v("unit"), v("price"))
        })
        .collect()
}

/// Amounts of typed rows and their total, exact; `—` where a row (and so the total) does
/// not parse yet.
fn amounts(t: Tr, rows: Vec<PostedRow>) -> (Vec<ShownRow>, String) {
    use crate::domain::values::{Money, Quantity, line_amount};
    let russian = t.lang == Lang::Ru;
    let mut total = Some(Money(0));
    let rows = rows
        .into_iter()
        .map(|(d, q, u, p)| {
            let amount = match (
                Quantity::parse("quantity", &q.trim().replace(',', ".")),
                Money::parse("price", &p.trim().replace(',', ".")),
            ) {
                (Ok(q), Ok(p)) => line_amount(q, p),
                _ => None,
            };
            total = match (total, amount) {
                (Some(sum), Some(a)) => sum.checked_add(a),
                _ => None,
            };
            ShownRow {
                description: d,
                quantity: q,
                unit: u,
                price: p,
                amount: amount.map_or_else(|| "—".to_owned(), |a| a.display(russian)),
                errors: [None; 4],
            }
        })
        .collect();
    (
        rows,
        total.map_or_else(|| "—".to_owned(), |m| m.display(russian)),
    )
}

async fn report_view(
    s: &AppState,
    v: &Viewer,
    id: i64,
    edited: Option<(Vec<PostedRow>, String)>,
    errors: EditorErrors,
) -> Response {
    use crate::domain::access::{Action, Resource, can};
    use crate::domain::report::ReportStatus;
    let t = v.tr;
    let r = match crate::store::reports::get(&s.db, &v.ctx, crate::domain::ids::ReportId(id)).await
    {
        Ok(r) => r,
        Err(e) => return page_error(t, e),
    };
    let request = match requests::get(&s.db, &v.ctx, r.request_id).await {
        Ok(x) => x,
        Err(e) => return page_error(t, e),
    };
    let editable =
        r.status == ReportStatus::Draft && can(&v.ctx.actor, Resource::Reports, Action::Update);
    let mut total = money_text(t, &r.total);
    let (rows, work_date) = match edited {
        // Redrawn rows show their own amounts and total, as far as they parse.
        Some((rows, date)) => {
            let (rows, sum) = amounts(t, rows);
            total = sum;
            (rows, date)
        }
        None => {
            let mut rows: Vec<_> = r
                .items
                .iter()
                .map(|i| {
                    // Editable numbers as the user's language writes them (1250,50 in Russian).
                    let typed = |n: &str| {
                        if t.lang == Lang::Ru {
                            n.replace('.', ",")
                        } else {
                            n.to_owned()
                        }
                    };
                    let price = if editable {
                        typed(&i.unit_price)
                    } else {
                        money_text(t, &i.unit_price)
                    };
                    ShownRow {
                        description: i.description.clone(),
                        quantity: typed(&i.quantity),
                        unit: i.unit.clone(),
                        price,
                        amount: money_text(t, &i.amount),
                        errors: [None; 4],
                    }
                })
                .collect();
            if editable && rows.is_empty() {
                rows.push(Default::default());
            }
            (rows, r.work_date.to_string())
        }
    };
    let mut rows = rows;
    for (n, row) in rows.iter_mut().enumerate() {
        for (k, column) in EDITOR_COLUMNS.iter().enumerate() {
            row.errors[k] = errors.error_for(&format!("{column}_{n}"));
        }
    }
    let page = ReportPage {
        l: Layout::signed_in(v, "requests", &format!("/reports/{id}")),
        id,
        number: r.number.clone(),
        request_id: request.id.0,
        request_number: request.number.clone(),
        status_label: t.t(&format!("report.status.{}", r.status.as_str())),
        editable,
        version: r.version,
        work_date_label: r.work_date.format("%d.%m.%Y").to_string(),
        work_date,
        rows,
        total,
        errors,
    };
    let status = if page.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (status, render(&page)).into_response()
}

async fn report_page(State(s): State<AppState>, v: Viewer, RecordId(id): RecordId) -> Response {
    report_view(&s, &v, id, None, EditorErrors::default()).await
}

/// Starts the act of a request (or opens the one it has).
async fn report_start(State(s): State<AppState>, Posted { v, id, f }: Posted) -> Response {
    let t = v.tr;
    let request = match requests::get(&s.db, &v.ctx, RequestId(id)).await {
        Ok(r) => r,
        Err(e) => return page_error(t, e),
    };
    if let Some(existing) = request.report_id {
        return Redirect::to(&format!("/reports/{}", existing.0)).into_response();
    }
    let input = crate::store::reports::NewReport {
        request_id: RequestId(id),
        work_date: v.ctx.now.with_timezone(&t.tz).date_naive(),
        engineer_id: None,
        items: Vec::new(),
        engineer_bonus: None,
        notes: String::new(),
    };
    let result = crate::store::reports::create(&s.db, &v.ctx, input).await;
    match result {
        Ok(r) => Redirect::to(&format!("/reports/{}", r.id.0)).into_response(),
        Err(e) => after_change(&s, &v, id, &f, Err(e)).await,
    }
}

/// Saves, extends, trims or submits the act from its editor.
async fn report_edit(State(s): State<AppState>, Posted { v, id, f }: Posted) -> Response {
    use crate::domain::ids::ReportId;
    use crate::store::reports;
    let t = v.tr;
    let mut rows = posted_rows(&f);
    let work_date = f.get("work_date").cloned().unwrap_or_default();
    let action = f.get("action").map_or("save", String::as_str);
    // Adding or removing a row only redraws the form: nothing is saved yet.
    if action == "add" {
        rows.push(Default::default());
        return report_view(&s, &v, id, Some((rows, work_date)), EditorErrors::default()).await;
    }
    if let Some(n) = action
        .strip_prefix("remove_")
        .and_then(|n| n.parse::<usize>().ok())
    {
        if n < rows.len() {
            rows.remove(n);
        }
        return report_view(&s, &v, id, Some((rows, work_date)), EditorErrors::default()).await;
    }
    // Blank rows are left out; `kept` maps an item back to its row of the form.
    let kept: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, (d, q, u, p))| {
            !(d.trim().is_empty()
                && q.trim().is_empty()
                && u.trim().is_empty()
                && p.trim().is_empty())
        })
        .map(|(n, _)| n)
        .collect();
    let items: Vec<reports::NewWorkItem> = kept
        .iter()
        .map(|n| &rows[*n])
        .map(|(d, q, u, p)| reports::NewWorkItem {
            description: d.clone(),
            quantity: q.trim().replace(',', "."),
            unit: u.clone(),
            unit_price: p
                .trim()
                .replace(',', ".")
                .replace([' ', '\u{a0}', '\u{202f}'], ""),
        })
        .collect();
    let date = match chrono::NaiveDate::parse_from_str(work_date.trim(), "%Y-%m-%d") {
        Ok(d) => d,
        Err(_) => {
            let errors = EditorErrors {
                summary: vec![format!(
                    "{}: {}",
                    t.t("report.work_date"),
                    t.t("field.invalid")
                )],
                fields: vec![("work_date".to_owned(), t.t("field.invalid"))],
            };
            return report_view(&s, &v, id, Some((rows, work_date)), errors).await;
        }
    };
    let version = f
        .get("version")
        .and_then(|x| x.parse::<i64>().ok())
        .unwrap_or(0);
    let patch = reports::ReportPatch {
        version: None,
        work_date: Some(date),
        items: Some(items),
        engineer_bonus: None,
        notes: None,
    };
    let saved = reports::update(
        &s.db,
        &v.ctx,
        ReportId(id),
        crate::store::Expected::Body(version),
        patch,
    )
    .await;
    let result = match saved {
        Ok(r) if action == "submit" => reports::submit(&s.db, &v.ctx, ReportId(id))
            .await
            .map(|_| r),
        other => other,
    };
    match result {
        Ok(r) if action == "submit" => {
            Redirect::to(&format!("/requests/{}", r.request_id.0)).into_response()
        }
        Ok(_) => Redirect::to(&format!("/reports/{id}")).into_response(),
        Err(Error::NotFound) => not_found(t),
        Err(Error::Internal(e)) => page_error(t, Error::Internal(e)),
        Err(Error::Validation(fields)) => {
            let errors = editor_errors(t, &fields, &kept);
            report_view(&s, &v, id, Some((rows, work_date)), errors).await
        }
        Err(e) => {
            let errors = EditorErrors::general(problem_text(t, &e));
            report_view(&s, &v, id, Some((rows, work_date)), errors).await
        }
    }
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    l: Layout,
    done: bool,
    /// Nothing typed is kept (these are passwords); only what was wrong, by field.
    form: FormState,
}

async fn password_form(v: Viewer, Query(q): Query<HashMap<String, String>>) -> Response {
    render(&PasswordPage {
        l: Layout::signed_in(&v, "", "/password"),
        done: q.contains_key("done"),
        form: FormState::default(),
    })
}

async fn password_change(State(s): State<AppState>, Submitted { v, f }: Submitted) -> Response {
    let t = v.tr;
    let field = |k: &str| f.get(k).map_or("", String::as_str);
    match users::change_own_password(
        &s.db,
        &v.ctx,
        field("current_password"),
        field("new_password"),
    )
    .await
    {
        Ok(()) => Redirect::to("/password?done").into_response(),
        Err(Error::Validation(fields)) => {
            // The rules of a new password name it `password`; on this form it is the new one.
            let errors = field_errors(t, &fields)
                .into_iter()
                .map(|(name, msg)| match name.as_str() {
                    "password" => ("new_password".to_owned(), msg),
                    _ => (name, msg),
                })
                .collect();
            let page = PasswordPage {
                l: Layout::signed_in(&v, "", "/password"),
                done: false,
                form: FormState {
                    values: HashMap::new(),
                    errors,
                },
            };
            (StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response()
        }
        Err(e) => page_error(t, e),
    }
}

#[derive(Template)]
#[template(path = "reports.html")]
struct ReportsPage {
    l: Layout,
    /// id, number, work date, status, total.
    rows: Vec<(i64, String, String, &'static str, String)>,
    next_cursor: Option<String>,
}

/// The acts this user may see, newest first (a client's portal shows their own).
async fn report_list(
    State(s): State<AppState>,
    v: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let t = v.tr;
    let page = list_page(&q);
    let filter = crate::store::reports::Filter::default();
    let (list, next_cursor) = match crate::store::reports::list(&s.db, &v.ctx, &filter, page).await
    {
        Ok(x) => x,
        Err(e) => return page_error(t, e),
    };
    render(&ReportsPage {
        l: Layout::signed_in(&v, "reports", "/reports"),
        rows: list
            .iter()
            .map(|r| {
                (
                    r.id.0,
                    r.number.clone(),
                    r.work_date.format("%d.%m.%Y").to_string(),
                    t.t(&format!("report.status.{}", r.status.as_str())),
                    money_text(t, &r.total),
                )
            })
            .collect(),
        next_cursor,
    })
}

/// The pages, to merge into the application's router.
pub fn routes() -> Router<AppState> {
    use axum::routing::{get, post};
    Router::new()
        .route("/", get(dashboard))
        .route("/login", get(login_form).post(login))
        .route("/login/2fa", post(login_code))
        .route("/login/enrol", post(login_enrol))
        .route("/login/recovery", get(recovery_page))
        .route("/logout", post(logout))
        .route("/password", get(password_form).post(password_change))
        .route("/lang", post(switch_lang))
        .route("/requests", get(request_list))
        .route("/requests/new", get(new_request_form).post(create_request))
        .route("/requests/board", get(board))
        .route("/requests/{id}", get(request_page))
        .route("/requests/{id}/status", post(request_move))
        .route("/requests/{id}/assign", post(request_assign))
        .route("/requests/{id}/comments", post(request_comment))
        .route("/requests/{id}/report", post(report_start))
        .route("/reports", get(report_list))
        .route("/reports/{id}", get(report_page).post(report_edit))
        .route("/assets/{name}", get(asset))
        .merge(admin::routes())
        .merge(catalog::routes())
        .merge(outbox::routes())
        .merge(account::routes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Form decoding: any body decodes or reads as no fields, never panics; what passes
        // holds no control character, and a `next` with one is dropped, not refused.
        #[test]
        fn posted_forms_never_panic_and_never_pass_control_characters(
            body in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            let fields: HashMap<String, String> =
                serde_urlencoded::from_bytes(&body).unwrap_or_default();
            let had_next = fields.contains_key("next");
            match without_controls(fields) {
                Ok(kept) => {
                    for (k, v) in &kept {
                        prop_assert!(!has_forbidden_control(k) && !has_forbidden_control(v));
                    }
                    if had_next && !kept.contains_key("next") {
                        prop_assert_eq!(safe_next(kept.get("next")), "/");
                    }
                }
                Err(name) => prop_assert!(name != "next"),
            }
        }
    }
}
