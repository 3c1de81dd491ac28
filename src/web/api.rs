//! The JSON API handlers: authenticate, parse, call one store function, answer.

use super::AppState;
use super::extract::{Auth, IdPath, IfMatch, Json, Query, page};
use super::problem::Problem;
use crate::domain::ids::{CustomerId, ObjectId, ProjectId, ReportId, RequestId, UserId};
use crate::error::{Error, Result};
use crate::store::{audit, customers, objects, projects, reports, requests, users};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "Ferum API", description = "Service management for fire-safety maintenance companies."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(Problem))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(super::auth_api::login))
        .routes(routes!(super::auth_api::two_factor))
        .routes(routes!(super::auth_api::setup))
        .routes(routes!(super::auth_api::confirm))
        .routes(routes!(super::auth_api::disable))
        .routes(routes!(super::auth_api::refresh))
        .routes(routes!(super::auth_api::logout))
        .routes(routes!(me))
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user))
        .routes(routes!(list_customers, create_customer))
        .routes(routes!(get_customer, update_customer, delete_customer))
        .routes(routes!(list_objects, create_object))
        .routes(routes!(get_object, update_object, delete_object))
        .routes(routes!(list_projects, create_project))
        .routes(routes!(get_project, update_project, delete_project))
        .routes(routes!(
            project_objects,
            add_project_object,
            remove_project_object
        ))
        .routes(routes!(list_requests, create_request))
        .routes(routes!(get_request, update_request, delete_request))
        .routes(routes!(set_request_status))
        .routes(routes!(list_comments, add_comment))
        .routes(routes!(request_history))
        .routes(routes!(list_reports, create_report))
        .routes(routes!(get_report, update_report, delete_report))
        .routes(routes!(submit_report))
        .routes(routes!(approve_report))
        .routes(routes!(list_audit))
        .routes(routes!(list_outbox))
        .routes(routes!(retry_outbox))
}

macro_rules! list_type {
    ($name:ident, $item:ty) => {
        /// One page of results, newest first.
        #[derive(Serialize, utoipa::ToSchema)]
        pub struct $name {
            pub items: Vec<$item>,
            /// Pass as `cursor` to get the next page; `null` on the last page.
            pub next_cursor: Option<String>,
        }
        impl From<(Vec<$item>, Option<String>)> for $name {
            fn from((items, next_cursor): (Vec<$item>, Option<String>)) -> Self {
                Self { items, next_cursor }
            }
        }
    };
}

list_type!(UserList, users::User);
list_type!(CustomerList, customers::Customer);
list_type!(ObjectList, objects::ServiceObject);
list_type!(ProjectList, projects::Project);
list_type!(RequestList, requests::ServiceRequest);
list_type!(ReportList, reports::Report);
list_type!(AuditList, audit::Entry);

/// A record with its version as the `ETag`.
fn with_etag<T: Serialize>(version: i64, body: T) -> Response {
    let mut res = axum::Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

fn created<T: Serialize>(version: i64, body: T) -> Response {
    let mut res = with_etag(version, body);
    *res.status_mut() = StatusCode::CREATED;
    res
}

// ---------------------------------------------------------------- auth

/// The signed-in user.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", responses((status = 200, body = users::User), (status = 401, body = Problem)))]
async fn me(State(s): State<AppState>, Auth(ctx): Auth) -> Result<Response> {
    let u = users::get(&s.db, &ctx, ctx.actor.user_id).await?;
    Ok(with_etag(u.version, u))
}

// ---------------------------------------------------------------- users

#[derive(Deserialize, utoipa::IntoParams)]
pub struct UserFilter {
    pub q: Option<String>,
    pub role: Option<crate::domain::access::Role>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Lists users (staff with user read access).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(UserFilter), responses((status = 200, body = UserList), (status = 404, body = Problem)))]
async fn list_users(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Query(f): Query<UserFilter>,
) -> Result<axum::Json<UserList>> {
    let p = page(f.limit, f.cursor.as_deref())?;
    Ok(axum::Json(
        users::list(&s.db, &ctx, f.q.as_deref(), f.role, p)
            .await?
            .into(),
    ))
}

/// Creates a user (administrators).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = users::NewUser,
    responses((status = 201, body = users::User), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_user(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Json(input): Json<users::NewUser>,
) -> Result<Response> {
    let u = users::create(&s.db, &ctx, input).await?;
    Ok(created(u.version, u))
}

/// One user.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = i64, Path)), responses((status = 200, body = users::User), (status = 404, body = Problem)))]
async fn get_user(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
) -> Result<Response> {
    let u = users::get(&s.db, &ctx, UserId(id)).await?;
    Ok(with_etag(u.version, u))
}

/// Changes a user (administrators).
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = i64, Path)), request_body = users::UserPatch,
    responses((status = 200, body = users::User), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)))]
async fn update_user(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
    im: IfMatch,
    Json(p): Json<users::UserPatch>,
) -> Result<Response> {
    let exp = im.expected(p.version)?;
    let u = users::update(&s.db, &ctx, UserId(id), exp, p).await?;
    Ok(with_etag(u.version, u))
}

// ---------------------------------------------------------------- customers

#[derive(Deserialize, utoipa::IntoParams)]
pub struct CustomerQuery {
    /// Free-text search.
    pub q: Option<String>,
    /// Exact contact e-mail.
    pub contact_email: Option<String>,
    /// Exact contact phone.
    pub contact_phone: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Lists the customers the user may see.
#[utoipa::path(get, path = "/api/v1/customers", tag = "customers", params(CustomerQuery), responses((status = 200, body = CustomerList)))]
async fn list_customers(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Query(f): Query<CustomerQuery>,
) -> Result<axum::Json<CustomerList>> {
    let p = page(f.limit, f.cursor.as_deref())?;
    let filter = customers::Filter {
        q: f.q,
        contact_email: f.contact_email,
        contact_phone: f.contact_phone,
    };
    Ok(axum::Json(
        customers::list(&s.db, &ctx, &filter, p).await?.into(),
    ))
}

/// Creates a customer.
#[utoipa::path(post, path = "/api/v1/customers", tag = "customers", request_body = customers::NewCustomer,
    responses((status = 201, body = customers::Customer), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_customer(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Json(input): Json<customers::NewCustomer>,
) -> Result<Response> {
    let c = customers::create(&s.db, &ctx, input).await?;
    Ok(created(c.version, c))
}

/// One customer.
#[utoipa::path(get, path = "/api/v1/customers/{id}", tag = "customers", params(("id" = i64, Path)), responses((status = 200, body = customers::Customer), (status = 404, body = Problem)))]
async fn get_customer(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
) -> Result<Response> {
    let c = customers::get(&s.db, &ctx, CustomerId(id)).await?;
    Ok(with_etag(c.version, c))
}

/// Changes a customer; send `version` or `If-Match`.
#[utoipa::path(patch, path = "/api/v1/customers/{id}", tag = "customers", params(("id" = i64, Path)), request_body = customers::CustomerPatch,
    responses((status = 200, body = customers::Customer), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem), (status = 428, body = Problem)))]
async fn update_customer(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
    im: IfMatch,
    Json(p): Json<customers::CustomerPatch>,
) -> Result<Response> {
    let exp = im.expected(p.version)?;
    let c = customers::update(&s.db, &ctx, CustomerId(id), exp, p).await?;
    Ok(with_etag(c.version, c))
}

/// Deletes a customer that nothing refers to.
#[utoipa::path(delete, path = "/api/v1/customers/{id}", tag = "customers", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn delete_customer(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
) -> Result<StatusCode> {
    customers::delete(&s.db, &ctx, CustomerId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- objects

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ObjectQuery {
    pub q: Option<String>,
    pub customer: Option<i64>,
    pub kind: Option<String>,
    pub archived: Option<bool>,
    /// Only the objects of this project.
    pub project: Option<i64>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Lists the service objects the user may see.
#[utoipa::path(get, path = "/api/v1/objects", tag = "objects", params(ObjectQuery), responses((status = 200, body = ObjectList)))]
async fn list_objects(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Query(f): Query<ObjectQuery>,
) -> Result<axum::Json<ObjectList>> {
    let p = page(f.limit, f.cursor.as_deref())?;
    let filter = objects::Filter {
        q: f.q,
        customer: f.customer,
        kind: f.kind,
        archived: f.archived,
        project: f.project,
    };
    Ok(axum::Json(
        objects::list(&s.db, &ctx, &filter, p).await?.into(),
    ))
}

/// Creates a service object.
#[utoipa::path(post, path = "/api/v1/objects", tag = "objects", request_body = objects::NewObject,
    responses((status = 201, body = objects::ServiceObject), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_object(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Json(input): Json<objects::NewObject>,
) -> Result<Response> {
    let o = objects::create(&s.db, &ctx, input).await?;
    Ok(created(o.version, o))
}

/// One service object.
#[utoipa::path(get, path = "/api/v1/objects/{id}", tag = "objects", params(("id" = i64, Path)), responses((status = 200, body = objects::ServiceObject), (status = 404, body = Problem)))]
async fn get_object(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
) -> Result<Response> {
    let o = objects::get(&s.db, &ctx, ObjectId(id)).await?;
    Ok(with_etag(o.version, o))
}

/// Changes a service object.
#[utoipa::path(patch, path = "/api/v1/objects/{id}", tag = "objects", params(("id" = i64, Path)), request_body = objects::ObjectPatch,
    responses((status = 200, body = objects::ServiceObject), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)))]
async fn update_object(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
    im: IfMatch,
    Json(p): Json<objects::ObjectPatch>,
) -> Result<Response> {
    let exp = im.expected(p.version)?;
    let o = objects::update(&s.db, &ctx, ObjectId(id), exp, p).await?;
    Ok(with_etag(o.version, o))
}

/// Deletes a service object no request refers to (archive it otherwise).
#[utoipa::path(delete, path = "/api/v1/objects/{id}", tag = "objects", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn delete_object(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
) -> Result<StatusCode> {
    objects::delete(&s.db, &ctx, ObjectId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- projects

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ProjectQuery {
    pub q: Option<String>,
    pub customer: Option<i64>,
    pub status: Option<String>,
    pub object: Option<i64>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Lists the projects the user may see.
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects", params(ProjectQuery), responses((status = 200, body = ProjectList)))]
async fn list_projects(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Query(f): Query<ProjectQuery>,
) -> Result<axum::Json<ProjectList>> {
    let p = page(f.limit, f.cursor.as_deref())?;
    let filter = projects::Filter {
        q: f.q,
        customer: f.customer,
        status: f.status,
        object: f.object,
    };
    Ok(axum::Json(
        projects::list(&s.db, &ctx, &filter, p).await?.into(),
    ))
}

/// Creates a project with its objects.
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects", request_body = projects::NewProject,
    responses((status = 201, body = projects::Project), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_project(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Json(input): Json<projects::NewProject>,
) -> Result<Response> {
    let p = projects::create(&s.db, &ctx, input).await?;
    Ok(created(p.version, p))
}

/// One project.
#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = "projects", params(("id" = i64, Path)), responses((status = 200, body = projects::Project), (status = 404, body = Problem)))]
async fn get_project(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
) -> Result<Response> {
    let p = projects::get(&s.db, &ctx, ProjectId(id)).await?;
    Ok(with_etag(p.version, p))
}

/// Changes a project.
#[utoipa::path(patch, path = "/api/v1/projects/{id}", tag = "projects", params(("id" = i64, Path)), request_body = projects::ProjectPatch,
    responses((status = 200, body = projects::Project), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem)))]
async fn update_project(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
    im: IfMatch,
    Json(p): Json<projects::ProjectPatch>,
) -> Result<Response> {
    let exp = im.expected(p.version)?;
    let p = projects::update(&s.db, &ctx, ProjectId(id), exp, p).await?;
    Ok(with_etag(p.version, p))
}

/// Deletes a project no request refers to.
#[utoipa::path(delete, path = "/api/v1/projects/{id}", tag = "projects", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn delete_project(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
) -> Result<StatusCode> {
    projects::delete(&s.db, &ctx, ProjectId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct RemoveObjectQuery {
    /// The object to take out of the project.
    pub object_id: i64,
}

/// The objects of a project.
#[utoipa::path(get, path = "/api/v1/projects/{id}/objects", tag = "projects", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<projects::ProjectObject>), (status = 404, body = Problem)))]
async fn project_objects(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
) -> Result<axum::Json<Vec<projects::ProjectObject>>> {
    Ok(axum::Json(
        projects::objects(&s.db, &ctx, ProjectId(id)).await?,
    ))
}

/// Adds an object (of the project's customer) to a project.
#[utoipa::path(post, path = "/api/v1/projects/{id}/objects", tag = "projects", params(("id" = i64, Path)), request_body = projects::ProjectObject,
    responses((status = 200, body = projects::Project), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn add_project_object(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
    Json(link): Json<projects::ProjectObject>,
) -> Result<Response> {
    let p = projects::add(&s.db, &ctx, ProjectId(id), link).await?;
    Ok(with_etag(p.version, p))
}

/// Takes an object out of a project.
#[utoipa::path(delete, path = "/api/v1/projects/{id}/objects", tag = "projects", params(("id" = i64, Path), RemoveObjectQuery),
    responses((status = 200, body = projects::Project), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn remove_project_object(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
    Query(q): Query<RemoveObjectQuery>,
) -> Result<Response> {
    let p = projects::remove(&s.db, &ctx, ProjectId(id), ObjectId(q.object_id)).await?;
    Ok(with_etag(p.version, p))
}

// ---------------------------------------------------------------- requests

#[derive(Deserialize, utoipa::IntoParams)]
pub struct RequestQuery {
    /// One status or several separated by commas.
    pub status: Option<String>,
    pub r#type: Option<String>,
    pub project: Option<i64>,
    pub customer: Option<i64>,
    pub object: Option<i64>,
    pub assigned_to: Option<i64>,
    /// Only requests without (`true`) or with (`false`) an engineer.
    pub unassigned: Option<bool>,
    pub overdue: Option<bool>,
    pub q: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Lists the service requests the user may see.
#[utoipa::path(get, path = "/api/v1/requests", tag = "requests", params(RequestQuery), responses((status = 200, body = RequestList), (status = 422, body = Problem)))]
async fn list_requests(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Query(f): Query<RequestQuery>,
) -> Result<axum::Json<RequestList>> {
    let p = page(f.limit, f.cursor.as_deref())?;
    let filter = requests::Filter {
        status: f.status,
        r#type: f.r#type,
        project: f.project,
        customer: f.customer,
        object: f.object,
        assigned_to: f.assigned_to,
        unassigned: f.unassigned,
        overdue: f.overdue,
        q: f.q,
    };
    Ok(axum::Json(
        requests::list(&s.db, &ctx, &filter, p).await?.into(),
    ))
}

/// Opens a service request; the object fills the project and the customer.
#[utoipa::path(post, path = "/api/v1/requests", tag = "requests", request_body = requests::NewRequest,
    responses((status = 201, body = requests::ServiceRequest), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn create_request(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Json(input): Json<requests::NewRequest>,
) -> Result<Response> {
    let r = requests::create(&s.db, &ctx, &s.sla, input).await?;
    Ok(created(r.version, r))
}

/// One service request.
#[utoipa::path(get, path = "/api/v1/requests/{id}", tag = "requests", params(("id" = i64, Path)), responses((status = 200, body = requests::ServiceRequest), (status = 404, body = Problem)))]
async fn get_request(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
) -> Result<Response> {
    let r = requests::get(&s.db, &ctx, RequestId(id)).await?;
    Ok(with_etag(r.version, r))
}

/// Changes a service request (not its status: see `/status`).
#[utoipa::path(patch, path = "/api/v1/requests/{id}", tag = "requests", params(("id" = i64, Path)), request_body = requests::RequestPatch,
    responses((status = 200, body = requests::ServiceRequest), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)))]
async fn update_request(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
    im: IfMatch,
    Json(p): Json<requests::RequestPatch>,
) -> Result<Response> {
    let exp = im.expected(p.version)?;
    let r = requests::update(&s.db, &ctx, &s.sla, RequestId(id), exp, p).await?;
    Ok(with_etag(r.version, r))
}

/// Deletes a service request no report refers to (administrators).
#[utoipa::path(delete, path = "/api/v1/requests/{id}", tag = "requests", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn delete_request(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
) -> Result<StatusCode> {
    requests::delete(&s.db, &ctx, RequestId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Moves a request through the workflow. A refused move answers 409 with the allowed moves.
#[utoipa::path(put, path = "/api/v1/requests/{id}/status", tag = "requests", params(("id" = i64, Path)), request_body = requests::StatusChange,
    responses((status = 200, body = requests::ServiceRequest), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn set_request_status(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
    Json(c): Json<requests::StatusChange>,
) -> Result<Response> {
    let r = requests::set_status(&s.db, &ctx, RequestId(id), c).await?;
    Ok(with_etag(r.version, r))
}

/// Comments on a request, oldest first.
#[utoipa::path(get, path = "/api/v1/requests/{id}/comments", tag = "requests", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<requests::Comment>), (status = 404, body = Problem)))]
async fn list_comments(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
) -> Result<axum::Json<Vec<requests::Comment>>> {
    Ok(axum::Json(
        requests::comments(&s.db, &ctx, RequestId(id)).await?,
    ))
}

/// Adds a comment to a request.
#[utoipa::path(post, path = "/api/v1/requests/{id}/comments", tag = "requests", params(("id" = i64, Path)), request_body = requests::NewComment,
    responses((status = 201, body = requests::Comment), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn add_comment(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
    Json(c): Json<requests::NewComment>,
) -> Result<Response> {
    let c = requests::add_comment(&s.db, &ctx, RequestId(id), c).await?;
    Ok((StatusCode::CREATED, axum::Json(c)).into_response())
}

/// Status history of a request, oldest first.
#[utoipa::path(get, path = "/api/v1/requests/{id}/history", tag = "requests", params(("id" = i64, Path)),
    responses((status = 200, body = Vec<requests::HistoryEntry>), (status = 404, body = Problem)))]
async fn request_history(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
) -> Result<axum::Json<Vec<requests::HistoryEntry>>> {
    Ok(axum::Json(
        requests::history_of(&s.db, &ctx, RequestId(id)).await?,
    ))
}

// ---------------------------------------------------------------- reports

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ReportQuery {
    pub status: Option<String>,
    pub request: Option<i64>,
    pub engineer: Option<i64>,
    pub customer: Option<i64>,
    pub q: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Lists the service reports the user may see.
#[utoipa::path(get, path = "/api/v1/reports", tag = "reports", params(ReportQuery), responses((status = 200, body = ReportList)))]
async fn list_reports(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Query(f): Query<ReportQuery>,
) -> Result<axum::Json<ReportList>> {
    let p = page(f.limit, f.cursor.as_deref())?;
    let filter = reports::Filter {
        status: f.status,
        request: f.request,
        engineer: f.engineer,
        customer: f.customer,
        q: f.q,
    };
    Ok(axum::Json(
        reports::list(&s.db, &ctx, &filter, p).await?.into(),
    ))
}

/// Creates a draft service report for a request.
#[utoipa::path(post, path = "/api/v1/reports", tag = "reports", request_body = reports::NewReport,
    responses((status = 201, body = reports::Report), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_report(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Json(input): Json<reports::NewReport>,
) -> Result<Response> {
    let r = reports::create(&s.db, &ctx, input).await?;
    Ok(created(r.version, r))
}

/// One service report.
#[utoipa::path(get, path = "/api/v1/reports/{id}", tag = "reports", params(("id" = i64, Path)), responses((status = 200, body = reports::Report), (status = 404, body = Problem)))]
async fn get_report(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
) -> Result<Response> {
    let r = reports::get(&s.db, &ctx, ReportId(id)).await?;
    Ok(with_etag(r.version, r))
}

/// Changes a draft report; `items` replaces every line.
#[utoipa::path(patch, path = "/api/v1/reports/{id}", tag = "reports", params(("id" = i64, Path)), request_body = reports::ReportPatch,
    responses((status = 200, body = reports::Report), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)))]
async fn update_report(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
    im: IfMatch,
    Json(p): Json<reports::ReportPatch>,
) -> Result<Response> {
    let exp = im.expected(p.version)?;
    let r = reports::update(&s.db, &ctx, ReportId(id), exp, p).await?;
    Ok(with_etag(r.version, r))
}

/// Deletes a draft report.
#[utoipa::path(delete, path = "/api/v1/reports/{id}", tag = "reports", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn delete_report(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
) -> Result<StatusCode> {
    reports::delete(&s.db, &ctx, ReportId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Submits a draft: its lines freeze and its request becomes `completed`.
#[utoipa::path(post, path = "/api/v1/reports/{id}/submit", tag = "reports", params(("id" = i64, Path)),
    responses((status = 200, body = reports::Report), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn submit_report(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
) -> Result<Response> {
    let r = reports::submit(&s.db, &ctx, ReportId(id)).await?;
    Ok(with_etag(r.version, r))
}

/// Approves a submitted report (head of service).
#[utoipa::path(post, path = "/api/v1/reports/{id}/approve", tag = "reports", params(("id" = i64, Path)),
    responses((status = 200, body = reports::Report), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn approve_report(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
) -> Result<Response> {
    let r = reports::approve(&s.db, &ctx, ReportId(id)).await?;
    Ok(with_etag(r.version, r))
}

// ---------------------------------------------------------------- audit

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    pub entity: Option<String>,
    pub entity_id: Option<i64>,
    /// Only what this user did.
    pub user_id: Option<i64>,
    /// Entries at or after this moment (RFC 3339).
    pub from: Option<String>,
    /// Entries before this moment (RFC 3339).
    pub to: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The audit log, newest first: all of it for administrators and the director, their part
/// for the accountant, the head of service and project managers.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery), responses((status = 200, body = AuditList), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn list_audit(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Query(f): Query<AuditQuery>,
) -> Result<axum::Json<AuditList>> {
    if !crate::domain::access::may_read_audit(&ctx.actor) {
        return Err(Error::NotFound);
    }
    let scope = crate::domain::access::audit_scope(&ctx.actor);
    let p = page(f.limit, f.cursor.as_deref())?;
    let moment = |field: &str, v: &Option<String>| -> Result<Option<DateTime<Utc>>> {
        v.as_deref()
            .map(|t| {
                DateTime::parse_from_rfc3339(t.trim())
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| {
                        Error::field(
                            field,
                            "invalid",
                            "an RFC 3339 moment, e.g. 2026-03-01T00:00:00Z",
                        )
                    })
            })
            .transpose()
    };
    let filter = audit::Filter {
        entity: f.entity.clone(),
        entity_id: f.entity_id,
        user_id: f.user_id,
        from: moment("from", &f.from)?,
        to: moment("to", &f.to)?,
    };
    Ok(axum::Json(
        audit::list(&s.db, scope, &filter, p).await?.into(),
    ))
}

// ---------------------------------------------------------------- outbox

/// A state of an outbox row.
#[derive(Deserialize, Clone, Copy, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    Pending,
    Delivered,
    Dead,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct OutboxQuery {
    /// Only rows in this state.
    #[param(inline)]
    pub status: Option<OutboxStatus>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

list_type!(OutboxList, crate::store::outbox::Entry);

/// Events and the messages made of them, newest first, with their attempts and last error
/// (administrators).
#[utoipa::path(get, path = "/api/v1/outbox", tag = "outbox", params(OutboxQuery), responses((status = 200, body = OutboxList), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn list_outbox(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    Query(f): Query<OutboxQuery>,
) -> Result<axum::Json<OutboxList>> {
    let p = page(f.limit, f.cursor.as_deref())?;
    let status = f.status.map(|st| match st {
        OutboxStatus::Pending => "pending",
        OutboxStatus::Delivered => "delivered",
        OutboxStatus::Dead => "dead",
    });
    Ok(axum::Json(
        crate::store::outbox::list(&s.db, &ctx, status, p)
            .await?
            .into(),
    ))
}

/// Tries a pending or dead row again at once, its attempts counted afresh (administrators).
#[utoipa::path(post, path = "/api/v1/outbox/{id}/retry", tag = "outbox", params(("id" = i64, Path)),
    responses((status = 200, body = crate::store::outbox::Entry), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn retry_outbox(
    State(s): State<AppState>,
    Auth(ctx): Auth,
    IdPath(id): IdPath,
) -> Result<axum::Json<crate::store::outbox::Entry>> {
    Ok(axum::Json(
        crate::store::outbox::retry_now(&s.db, &ctx, id).await?,
    ))
}
