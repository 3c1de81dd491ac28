//! Pages for the catalogue: customers, service objects (with their engineers) and projects
//! (with their objects). Every page goes through the store, so the access matrix holds.

use super::*;
use crate::domain::access::{Action, Resource, Role, can};
use crate::domain::ids::{CustomerId, ObjectId, ProjectId};
use crate::domain::project::{ObjectKind, ProjectStatus};
use crate::error::FieldError;
use crate::store::{Expected, customers, objects, projects};
use chrono::NaiveDate;

/// The catalogue's pages, merged into the pages' router.
pub fn routes() -> Router<AppState> {
    use axum::routing::{get, post};
    Router::new()
        .route("/customers", get(customer_list).post(customer_create))
        .route("/customers/{id}", get(customer_page).post(customer_update))
        .route("/objects", get(object_list).post(object_create))
        .route("/objects/{id}", get(object_page).post(object_update))
        .route("/projects", get(project_list).post(project_create))
        .route("/projects/{id}", get(project_page).post(project_update))
        .route("/projects/{id}/objects", post(project_add_object))
        .route("/customers/{id}/delete", post(customer_delete))
        .route("/objects/{id}/delete", post(object_delete))
        .route("/projects/{id}/delete", post(project_delete))
        .route(
            "/projects/{id}/objects/{object_id}/remove",
            post(project_remove_object),
        )
}

// ------------------------------------------------------------------ forms

/// A posted field, or empty.
fn field<'a>(f: &'a HashMap<String, String>, key: &str) -> &'a str {
    f.get(key).map_or("", String::as_str)
}

/// A posted record id; `None` when blank or not an id.
fn posted_ref(f: &HashMap<String, String>, key: &str) -> Option<i64> {
    field(f, key)
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
}

fn version_of(f: &HashMap<String, String>) -> i64 {
    field(f, "version").trim().parse::<i64>().unwrap_or(0)
}

/// Text of a search box, when not blank.
fn text_filter(text: &str) -> Option<String> {
    (!text.trim().is_empty()).then(|| text.to_owned())
}

/// A date as typed: `2026-03-02` (what date inputs send) or `02.03.2026`.
fn parse_date(raw: &str) -> Option<NaiveDate> {
    let s = raw.trim();
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(s, "%d.%m.%Y"))
        .ok()
}

fn date_text(d: NaiveDate) -> String {
    d.format("%d.%m.%Y").to_string()
}

/// An amount as typed: spaces between thousands and a decimal comma are fine.
fn typed_money(raw: &str) -> String {
    raw.trim()
        .replace([' ', '\u{a0}', '\u{202f}'], "")
        .replace(',', ".")
}

/// An amount as the user's language writes it in a field (a comma in Russian).
fn money_field(t: Tr, decimal: &str) -> String {
    if t.lang == Lang::Ru {
        decimal.replace('.', ",")
    } else {
        decimal.to_owned()
    }
}

fn kind_label(t: Tr, k: ObjectKind) -> &'static str {
    match k {
        ObjectKind::FireAlarm => t.t("object.kind.fire_alarm"),
        ObjectKind::Sprinkler => t.t("object.kind.sprinkler"),
        ObjectKind::Extinguishers => t.t("object.kind.extinguishers"),
        ObjectKind::SmokeExtraction => t.t("object.kind.smoke_extraction"),
        ObjectKind::Other => t.t("object.kind.other"),
    }
}

fn kinds(t: Tr) -> Vec<(&'static str, &'static str)> {
    ObjectKind::ALL
        .iter()
        .map(|k| (k.as_str(), kind_label(t, *k)))
        .collect()
}

fn status_label(t: Tr, s: ProjectStatus) -> &'static str {
    match s {
        ProjectStatus::Planned => t.t("project.status.planned"),
        ProjectStatus::Active => t.t("project.status.active"),
        ProjectStatus::Completed => t.t("project.status.completed"),
        ProjectStatus::Cancelled => t.t("project.status.cancelled"),
    }
}

fn statuses(t: Tr) -> Vec<(&'static str, &'static str)> {
    ProjectStatus::ALL
        .iter()
        .map(|s| (s.as_str(), status_label(t, *s)))
        .collect()
}

/// Which of the three records a form is about: the messages differ.
#[derive(Clone, Copy)]
enum Kind {
    Customer,
    Object,
    Project,
}

impl Kind {
    fn list_path(self) -> &'static str {
        match self {
            Kind::Customer => "/customers",
            Kind::Object => "/objects",
            Kind::Project => "/projects",
        }
    }

    fn deleted(self, t: Tr) -> &'static str {
        match self {
            Kind::Customer => t.t("customers.deleted"),
            Kind::Object => t.t("objects.deleted"),
            Kind::Project => t.t("projects.deleted"),
        }
    }

    /// Why a record still in use cannot be deleted.
    fn in_use(self, t: Tr) -> &'static str {
        match self {
            Kind::Customer => t.t("customers.in_use"),
            Kind::Object => t.t("objects.in_use"),
            Kind::Project => t.t("projects.in_use"),
        }
    }

    fn stale(self, t: Tr) -> &'static str {
        match self {
            Kind::Customer => t.t("customers.stale"),
            Kind::Object => t.t("objects.stale"),
            Kind::Project => t.t("projects.stale"),
        }
    }

    fn forbidden(self, t: Tr) -> &'static str {
        match self {
            Kind::Customer => t.t("customers.forbidden"),
            Kind::Object => t.t("objects.forbidden"),
            Kind::Project => t.t("projects.forbidden"),
        }
    }

    /// The one unique rule each form can break: the INN, the serial number, an object
    /// twice in a project.
    fn duplicate(self, t: Tr) -> &'static str {
        match self {
            Kind::Customer => t.t("customers.inn_taken"),
            Kind::Object => t.t("objects.serial_taken"),
            Kind::Project => t.t("projects.object_in_project"),
        }
    }

    fn saved(self, t: Tr) -> &'static str {
        match self {
            Kind::Customer => t.t("customers.saved"),
            Kind::Object => t.t("objects.saved"),
            Kind::Project => t.t("projects.saved"),
        }
    }
}

fn field_message(t: Tr, code: &str) -> &'static str {
    t.get(&format!("field.{code}"))
        .unwrap_or_else(|| t.t("field.invalid"))
}

/// A refused change as its form shows it: messages next to the fields (put into `form`), an
/// alert, and the status. An error that is not about the form (404, 403, 500) comes back for
/// [`elsewhere`] to answer.
fn on_form(t: Tr, kind: Kind, e: Error, form: &mut FormState) -> Result<Outcome, Error> {
    let (status, alert) = match e {
        Error::Validation(fields) => {
            for fe in fields {
                // `engineers[2]` is the engineers' fieldset.
                let name = fe.field.split('[').next().unwrap_or_default().to_owned();
                form.errors.push((name, field_message(t, fe.code)));
            }
            (StatusCode::UNPROCESSABLE_ENTITY, t.t("new.fix"))
        }
        Error::Stale { current, .. } => {
            // The form keeps what was typed, now based on the current version: saving again
            // is a deliberate choice after reading the saved values.
            form.set("version", current.to_string());
            (StatusCode::CONFLICT, kind.stale(t))
        }
        Error::Conflict {
            code,
            message,
            fields,
            ..
        } => {
            let text = match code {
                "duplicate" => kind.duplicate(t),
                "in_use" => t.t("projects.object_in_use"),
                _ => {
                    tracing::warn!(code, %message, "a conflict without a message of its own");
                    t.t("field.invalid")
                }
            };
            for f in fields {
                form.errors.push((f, text));
            }
            (StatusCode::CONFLICT, text)
        }
        other => return Err(other),
    };
    Ok(Outcome {
        alert: Some(alert.to_owned()),
        status,
        notice: None,
    })
}

/// The answer to an error that is not about the form's fields.
fn elsewhere(t: Tr, kind: Kind, e: Error) -> Response {
    match e {
        Error::Forbidden(_) => refused_role(t, kind),
        other => page_error(t, other),
    }
}

/// The answer to a change this user's roles do not allow on a record they may see.
fn refused_role(t: Tr, kind: Kind) -> Response {
    (
        StatusCode::FORBIDDEN,
        Html(error_page(t, StatusCode::FORBIDDEN, kind.forbidden(t))),
    )
        .into_response()
}

/// What a page shows after a refused post: the alert and the status.
struct Outcome {
    alert: Option<String>,
    status: StatusCode,
    /// What went well, for a list after a deletion.
    notice: Option<&'static str>,
}

impl Outcome {
    fn fine() -> Outcome {
        Outcome {
            alert: None,
            status: StatusCode::OK,
            notice: None,
        }
    }

    /// A list's outcome: the notice of a deletion that led here.
    fn of_list(t: Tr, kind: Kind, q: &HashMap<String, String>) -> Outcome {
        Outcome {
            notice: q.contains_key("deleted").then(|| kind.deleted(t)),
            ..Outcome::fine()
        }
    }
}

/// What became of a deletion.
enum Deleted {
    /// Gone: on to the list.
    Gone(Redirect),
    /// Still referred to: the record's page says why.
    Stays(Outcome),
    /// Not this user's to delete, or not there.
    Refused(Response),
}

fn deleted(t: Tr, kind: Kind, result: Result<(), Error>) -> Deleted {
    match result {
        Ok(()) => Deleted::Gone(Redirect::to(&format!("{}?deleted", kind.list_path()))),
        Err(Error::Conflict { .. }) => Deleted::Stays(Outcome {
            alert: Some(kind.in_use(t).to_owned()),
            status: StatusCode::CONFLICT,
            notice: None,
        }),
        Err(e) => Deleted::Refused(elsewhere(t, kind, e)),
    }
}

/// The name of a customer from the choices, or nothing when this user may not see it.
fn name_in(choices: &[(i64, String)], id: i64) -> String {
    choices
        .iter()
        .find(|c| c.0 == id)
        .map(|c| c.1.clone())
        .unwrap_or_default()
}

/// A related customer's id and name, or `None` when this user may not see it.
async fn customer_link(
    s: &AppState,
    v: &Viewer,
    id: CustomerId,
) -> Result<Option<(i64, String)>, Error> {
    match customers::get(&s.db, &v.ctx, id).await {
        Ok(c) => Ok(Some((c.id.0, c.name))),
        Err(Error::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A user's name, for the engineers of an object and the manager of a project.
async fn user_name(s: &AppState, id: crate::domain::ids::UserId) -> Result<String, Error> {
    Ok(users::find(&s.db, id)
        .await?
        .map(|u| u.name)
        .unwrap_or_default())
}

// ------------------------------------------------------------------ customers

/// A customer as a row of the list.
pub struct CustomerRow {
    pub id: i64,
    pub name: String,
    pub inn: String,
    pub address: String,
    pub contact: String,
}

#[derive(Template)]
#[template(path = "customers.html")]
struct CustomersPage {
    l: Layout,
    rows: Vec<CustomerRow>,
    q: String,
    next_href: Option<String>,
    may_create: bool,
    form: FormState,
    alert: Option<String>,
    notice: Option<&'static str>,
}

async fn customer_list(
    State(s): State<AppState>,
    v: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let outcome = Outcome::of_list(v.tr, Kind::Customer, &q);
    customers_view(&s, &v, &q, FormState::default(), outcome).await
}

async fn customers_view(
    s: &AppState,
    v: &Viewer,
    q: &HashMap<String, String>,
    form: FormState,
    outcome: Outcome,
) -> Response {
    let t = v.tr;
    let text = q.get("q").cloned().unwrap_or_default();
    let filter = customers::Filter {
        q: text_filter(&text),
        ..Default::default()
    };
    let (list, next) = match customers::list(&s.db, &v.ctx, &filter, list_page(q)).await {
        Ok(x) => x,
        Err(e) => return page_error(t, e),
    };
    let page = CustomersPage {
        l: Layout::signed_in(v, "customers", "/customers"),
        rows: list
            .into_iter()
            .map(|c| CustomerRow {
                id: c.id.0,
                name: c.name,
                inn: c.inn,
                address: c.address,
                contact: c.contact_name,
            })
            .collect(),
        next_href: next_href("/customers", &[("q", &text)], next),
        q: text,
        may_create: can(&v.ctx.actor, Resource::Customers, Action::Create),
        form,
        alert: outcome.alert,
        notice: outcome.notice,
    };
    with_status(render(&page), outcome.status)
}

fn posted_customer(f: &HashMap<String, String>) -> customers::NewCustomer {
    customers::NewCustomer {
        name: field(f, "name").to_owned(),
        inn: field(f, "inn").to_owned(),
        address: field(f, "address").to_owned(),
        contact_name: field(f, "contact_name").to_owned(),
        contact_email: field(f, "contact_email").to_owned(),
        contact_phone: field(f, "contact_phone").to_owned(),
    }
}

async fn customer_create(State(s): State<AppState>, Submitted { v, f }: Submitted) -> Response {
    let t = v.tr;
    match customers::create(&s.db, &v.ctx, posted_customer(&f)).await {
        Ok(c) => Redirect::to(&format!("/customers/{}?saved", c.id.0)).into_response(),
        Err(e) => {
            let mut form = FormState::posted(&f);
            match on_form(t, Kind::Customer, e, &mut form) {
                Ok(refused) => customers_view(&s, &v, &HashMap::new(), form, refused).await,
                Err(e) => elsewhere(t, Kind::Customer, e),
            }
        }
    }
}

#[derive(Template)]
#[template(path = "customer.html")]
struct CustomerPage {
    l: Layout,
    c: customers::Customer,
    /// id, name, kind, archived.
    objects: Vec<(i64, String, &'static str, bool)>,
    more_objects: bool,
    /// id, name, status code, status label.
    projects: Vec<(i64, String, &'static str, &'static str)>,
    more_projects: bool,
    may_update: bool,
    may_add_object: bool,
    may_add_project: bool,
    form: FormState,
    alert: Option<String>,
    /// May delete the record (it stays while something refers to it).
    may_delete: bool,
    notice: Option<&'static str>,
}

async fn customer_page(
    State(s): State<AppState>,
    v: Viewer,
    RecordId(id): RecordId,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let notice = q.contains_key("saved").then(|| Kind::Customer.saved(v.tr));
    customer_view(&s, &v, id, None, Outcome::fine(), notice).await
}

async fn customer_view(
    s: &AppState,
    v: &Viewer,
    id: i64,
    form: Option<FormState>,
    outcome: Outcome,
    notice: Option<&'static str>,
) -> Response {
    let t = v.tr;
    let c = match customers::get(&s.db, &v.ctx, CustomerId(id)).await {
        Ok(c) => c,
        Err(e) => return page_error(t, e),
    };
    let of_customer = objects::Filter {
        customer: Some(id),
        ..Default::default()
    };
    let (objs, more_objects) =
        match objects::list(&s.db, &v.ctx, &of_customer, max_page(None)).await {
            Ok((list, next)) => (list, next.is_some()),
            Err(e) => return page_error(t, e),
        };
    let of_projects = projects::Filter {
        customer: Some(id),
        ..Default::default()
    };
    let (projs, more_projects) =
        match projects::list(&s.db, &v.ctx, &of_projects, max_page(None)).await {
            Ok((list, next)) => (list, next.is_some()),
            Err(e) => return page_error(t, e),
        };
    let form = form.unwrap_or_else(|| {
        let mut f = FormState::default();
        f.set("name", c.name.clone());
        f.set("inn", c.inn.clone());
        f.set("address", c.address.clone());
        f.set("contact_name", c.contact_name.clone());
        f.set("contact_email", c.contact_email.clone());
        f.set("contact_phone", c.contact_phone.clone());
        f.set("version", c.version.to_string());
        f
    });
    let actor = &v.ctx.actor;
    let page = CustomerPage {
        l: Layout::signed_in(v, "customers", &format!("/customers/{id}")),
        objects: objs
            .into_iter()
            .map(|o| (o.id.0, o.name, kind_label(t, o.kind), o.archived))
            .collect(),
        more_objects,
        projects: projs
            .into_iter()
            .map(|p| (p.id.0, p.name, p.status.as_str(), status_label(t, p.status)))
            .collect(),
        more_projects,
        may_update: can(actor, Resource::Customers, Action::Update),
        may_add_object: can(actor, Resource::Objects, Action::Create),
        may_add_project: can(actor, Resource::Projects, Action::Create),
        c,
        form,
        alert: outcome.alert,
        may_delete: can(&v.ctx.actor, Resource::Customers, Action::Delete),
        notice,
    };
    with_status(render(&page), outcome.status)
}

async fn customer_update(State(s): State<AppState>, Posted { v, id, f }: Posted) -> Response {
    let t = v.tr;
    let input = posted_customer(&f);
    let patch = customers::CustomerPatch {
        version: None,
        name: Some(input.name),
        inn: Some(input.inn),
        address: Some(input.address),
        contact_name: Some(input.contact_name),
        contact_email: Some(input.contact_email),
        contact_phone: Some(input.contact_phone),
    };
    let result = customers::update(
        &s.db,
        &v.ctx,
        CustomerId(id),
        Expected::Body(version_of(&f)),
        patch,
    )
    .await;
    match result {
        Ok(_) => Redirect::to(&format!("/customers/{id}?saved")).into_response(),
        Err(e) => {
            let mut form = FormState::posted(&f);
            match on_form(t, Kind::Customer, e, &mut form) {
                Ok(refused) => customer_view(&s, &v, id, Some(form), refused, None).await,
                Err(e) => elsewhere(t, Kind::Customer, e),
            }
        }
    }
}

// ------------------------------------------------------------------ service objects

/// A service object as a row of the list.
pub struct ObjectRow {
    pub id: i64,
    pub name: String,
    pub customer_id: i64,
    /// Empty when this user may not see the customer.
    pub customer: String,
    pub kind: &'static str,
    pub address: String,
    pub serial: String,
    pub archived: bool,
}

#[derive(Template)]
#[template(path = "objects.html")]
struct ObjectsPage {
    l: Layout,
    rows: Vec<ObjectRow>,
    q: String,
    customer: String,
    archived: String,
    customers: Vec<(i64, String)>,
    next_href: Option<String>,
    may_create: bool,
    /// The create form is open: asked for, or refused.
    form_open: bool,
    kinds: Vec<(&'static str, &'static str)>,
    /// id, name, ticked.
    engineers: Vec<(i64, String, bool)>,
    form: FormState,
    alert: Option<String>,
    notice: Option<&'static str>,
}

async fn object_list(
    State(s): State<AppState>,
    v: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut form = FormState::default();
    form.set("kind", ObjectKind::FireAlarm.as_str());
    if let Some(c) = q.get("customer") {
        form.set("customer_id", c.clone());
    }
    let outcome = Outcome::of_list(v.tr, Kind::Object, &q);
    objects_view(&s, &v, &q, form, outcome).await
}

/// Engineers to tick, with the form's choice.
async fn engineer_choices(
    s: &AppState,
    form: &FormState,
) -> Result<Vec<(i64, String, bool)>, Error> {
    Ok(users::engineers(&s.db)
        .await?
        .into_iter()
        .map(|(id, name)| {
            let on = form.has(&format!("engineer_{id}"));
            (id, name, on)
        })
        .collect())
}

async fn objects_view(
    s: &AppState,
    v: &Viewer,
    q: &HashMap<String, String>,
    form: FormState,
    outcome: Outcome,
) -> Response {
    let t = v.tr;
    let text = q.get("q").cloned().unwrap_or_default();
    let customer = q
        .get("customer")
        .and_then(|c| c.trim().parse::<i64>().ok())
        .filter(|c| *c > 0);
    let archived = match q.get("archived").map(String::as_str) {
        Some("0") => Some(false),
        Some("1") => Some(true),
        _ => None,
    };
    let filter = objects::Filter {
        q: text_filter(&text),
        customer,
        archived,
        ..Default::default()
    };
    let (list, next) = match objects::list(&s.db, &v.ctx, &filter, list_page(q)).await {
        Ok(x) => x,
        Err(e) => return page_error(t, e),
    };
    let customers = match customer_choices(s, v).await {
        Ok(c) => c,
        Err(e) => return page_error(t, e),
    };
    let may_create = can(&v.ctx.actor, Resource::Objects, Action::Create);
    let engineers = if may_create {
        match engineer_choices(s, &form).await {
            Ok(e) => e,
            Err(e) => return page_error(t, e),
        }
    } else {
        Vec::new()
    };
    let customer = customer.map(|c| c.to_string()).unwrap_or_default();
    let archived = archived
        .map(|a| if a { "1" } else { "0" })
        .unwrap_or_default()
        .to_owned();
    let page = ObjectsPage {
        l: Layout::signed_in(v, "objects", "/objects"),
        rows: list
            .into_iter()
            .map(|o| ObjectRow {
                id: o.id.0,
                customer: name_in(&customers, o.customer_id.0),
                customer_id: o.customer_id.0,
                name: o.name,
                kind: kind_label(t, o.kind),
                address: o.address,
                serial: o.serial_number.unwrap_or_default(),
                archived: o.archived,
            })
            .collect(),
        next_href: next_href(
            "/objects",
            &[
                ("q", &text),
                ("customer", &customer),
                ("archived", &archived),
            ],
            next,
        ),
        q: text,
        customer,
        archived,
        customers,
        may_create,
        form_open: q.contains_key("new") || form.has_errors() || outcome.alert.is_some(),
        kinds: kinds(t),
        engineers,
        form,
        alert: outcome.alert,
        notice: outcome.notice,
    };
    with_status(render(&page), outcome.status)
}

/// The engineers ticked in a posted form.
fn posted_engineers(f: &HashMap<String, String>) -> Vec<crate::domain::ids::UserId> {
    let mut ids: Vec<i64> = f
        .keys()
        .filter_map(|k| k.strip_prefix("engineer_")?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids.into_iter().map(crate::domain::ids::UserId).collect()
}

fn posted_kind(f: &HashMap<String, String>) -> Result<ObjectKind, Error> {
    ObjectKind::parse(field(f, "kind").trim())
        .ok_or_else(|| Error::field("kind", "unknown_value", "choose a kind"))
}

/// The serial number as typed: blank means none.
fn posted_serial(f: &HashMap<String, String>) -> Option<String> {
    let s = field(f, "serial_number");
    (!s.trim().is_empty()).then(|| s.to_owned())
}

async fn object_create(State(s): State<AppState>, Submitted { v, f }: Submitted) -> Response {
    let t = v.tr;
    if !can(&v.ctx.actor, Resource::Objects, Action::Create) {
        return refused_role(t, Kind::Object);
    }
    let mut problems = Vec::new();
    let customer = posted_ref(&f, "customer_id");
    if customer.is_none() {
        problems.push(FieldError::new(
            "customer_id",
            "required",
            "choose a customer",
        ));
    }
    let kind = posted_kind(&f);
    if kind.is_err() {
        problems.push(FieldError::new("kind", "unknown_value", "choose a kind"));
    }
    let result = match (customer, kind) {
        (Some(customer), Ok(kind)) => {
            let input = objects::NewObject {
                customer_id: CustomerId(customer),
                name: field(&f, "name").to_owned(),
                address: field(&f, "address").to_owned(),
                kind,
                serial_number: posted_serial(&f),
                notes: field(&f, "notes").to_owned(),
                engineers: posted_engineers(&f),
            };
            objects::create(&s.db, &v.ctx, input).await
        }
        _ => Err(Error::Validation(problems)),
    };
    match result {
        Ok(o) => Redirect::to(&format!("/objects/{}?saved", o.id.0)).into_response(),
        Err(e) => {
            let mut form = FormState::posted(&f);
            match on_form(t, Kind::Object, e, &mut form) {
                Ok(refused) => objects_view(&s, &v, &HashMap::new(), form, refused).await,
                Err(e) => elsewhere(t, Kind::Object, e),
            }
        }
    }
}

#[derive(Template)]
#[template(path = "object.html")]
struct ObjectPage {
    l: Layout,
    o: objects::ServiceObject,
    kind_label: &'static str,
    customer: Option<(i64, String)>,
    /// id, name, status code, status label.
    projects: Vec<(i64, String, &'static str, &'static str)>,
    /// Staff see who looks after the object; clients do not.
    show_engineers: bool,
    engineer_names: Vec<String>,
    may_update: bool,
    kinds: Vec<(&'static str, &'static str)>,
    engineers: Vec<(i64, String, bool)>,
    form: FormState,
    alert: Option<String>,
    /// May delete the record (it stays while something refers to it).
    may_delete: bool,
    notice: Option<&'static str>,
}

async fn object_page(
    State(s): State<AppState>,
    v: Viewer,
    RecordId(id): RecordId,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let notice = q.contains_key("saved").then(|| Kind::Object.saved(v.tr));
    object_view(&s, &v, id, None, Outcome::fine(), notice).await
}

async fn object_view(
    s: &AppState,
    v: &Viewer,
    id: i64,
    form: Option<FormState>,
    outcome: Outcome,
    notice: Option<&'static str>,
) -> Response {
    let t = v.tr;
    let o = match objects::get(&s.db, &v.ctx, ObjectId(id)).await {
        Ok(o) => o,
        Err(e) => return page_error(t, e),
    };
    let customer = match customer_link(s, v, o.customer_id).await {
        Ok(c) => c,
        Err(e) => return page_error(t, e),
    };
    let containing = projects::Filter {
        object: Some(id),
        ..Default::default()
    };
    let projs = match projects::list(&s.db, &v.ctx, &containing, max_page(None)).await {
        Ok((list, _)) => list,
        Err(e) => return page_error(t, e),
    };
    let show_engineers = !v.ctx.actor.has(Role::Client);
    let may_update = can(&v.ctx.actor, Resource::Objects, Action::Update);
    let mut engineer_names = Vec::new();
    if show_engineers {
        let ids: Vec<i64> = o.engineers.iter().map(|e| e.0).collect();
        match users::names(&s.db, &ids).await {
            Ok(names) => engineer_names.extend(ids.iter().filter_map(|id| names.get(id).cloned())),
            Err(e) => return page_error(t, e),
        }
    }
    let form = form.unwrap_or_else(|| {
        let mut f = FormState::default();
        f.set("name", o.name.clone());
        f.set("address", o.address.clone());
        f.set("kind", o.kind.as_str());
        f.set("serial_number", o.serial_number.clone().unwrap_or_default());
        f.set("notes", o.notes.clone());
        f.set("version", o.version.to_string());
        for e in &o.engineers {
            f.set(&format!("engineer_{}", e.0), "1");
        }
        f
    });
    let engineers = if may_update {
        let mut choices = match engineer_choices(s, &form).await {
            Ok(e) => e,
            Err(e) => return page_error(t, e),
        };
        // An engineer assigned before being disabled stays a choice, so saving the site for
        // another reason does not quietly unassign them.
        for e in &o.engineers {
            if !choices.iter().any(|c| c.0 == e.0) {
                match user_name(s, *e).await {
                    Ok(n) => choices.push((e.0, n, form.has(&format!("engineer_{}", e.0)))),
                    Err(e) => return page_error(t, e),
                }
            }
        }
        choices
    } else {
        Vec::new()
    };
    let page = ObjectPage {
        l: Layout::signed_in(v, "objects", &format!("/objects/{id}")),
        kind_label: kind_label(t, o.kind),
        customer,
        projects: projs
            .into_iter()
            .map(|p| (p.id.0, p.name, p.status.as_str(), status_label(t, p.status)))
            .collect(),
        show_engineers,
        engineer_names,
        may_update,
        kinds: kinds(t),
        engineers,
        o,
        form,
        alert: outcome.alert,
        may_delete: can(&v.ctx.actor, Resource::Objects, Action::Delete),
        notice,
    };
    with_status(render(&page), outcome.status)
}

/// Saves the object's form, or archives or unarchives it (`action`).
async fn object_update(State(s): State<AppState>, Posted { v, id, f }: Posted) -> Response {
    let t = v.tr;
    let patch = match field(&f, "action") {
        "archive" | "unarchive" => Ok(objects::ObjectPatch {
            archived: Some(field(&f, "action") == "archive"),
            ..Default::default()
        }),
        _ => posted_kind(&f).map(|kind| objects::ObjectPatch {
            name: Some(field(&f, "name").to_owned()),
            address: Some(field(&f, "address").to_owned()),
            kind: Some(kind),
            serial_number: Some(posted_serial(&f)),
            notes: Some(field(&f, "notes").to_owned()),
            engineers: Some(posted_engineers(&f)),
            ..Default::default()
        }),
    };
    let result = match patch {
        Ok(patch) => {
            objects::update(
                &s.db,
                &v.ctx,
                ObjectId(id),
                Expected::Body(version_of(&f)),
                patch,
            )
            .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Redirect::to(&format!("/objects/{id}?saved")).into_response(),
        Err(e) => {
            // A refused archive leaves the form as stored; a refused edit keeps what was typed.
            let editing = !matches!(field(&f, "action"), "archive" | "unarchive");
            let mut form = FormState::posted(&f);
            match on_form(t, Kind::Object, e, &mut form) {
                Ok(refused) => {
                    let form = editing.then_some(form);
                    object_view(&s, &v, id, form, refused, None).await
                }
                Err(e) => elsewhere(t, Kind::Object, e),
            }
        }
    }
}

// ------------------------------------------------------------------ projects

/// A project as a row of the list.
pub struct ProjectRow {
    pub id: i64,
    pub name: String,
    pub customer_id: i64,
    /// Empty when this user may not see the customer.
    pub customer: String,
    pub dates: String,
    pub status: &'static str,
    pub status_label: &'static str,
    pub value: String,
}

#[derive(Template)]
#[template(path = "projects.html")]
struct ProjectsPage {
    l: Layout,
    rows: Vec<ProjectRow>,
    q: String,
    customer: String,
    status: String,
    customers: Vec<(i64, String)>,
    statuses: Vec<(&'static str, &'static str)>,
    next_href: Option<String>,
    may_create: bool,
    form_open: bool,
    managers: Vec<(i64, String)>,
    form: FormState,
    alert: Option<String>,
    notice: Option<&'static str>,
}

fn dates_text(start: NaiveDate, end: Option<NaiveDate>) -> String {
    match end {
        Some(e) => format!("{} – {}", date_text(start), date_text(e)),
        None => format!("{} –", date_text(start)),
    }
}

/// Who may manage a project: enabled users of the roles the store accepts as managers.
async fn manager_choices(s: &AppState, v: &Viewer) -> Result<Vec<(i64, String)>, Error> {
    let mut out: Vec<(i64, String)> = Vec::new();
    for role in [
        Role::ProjectManager,
        Role::DepartmentHead,
        Role::Director,
        Role::Admin,
    ] {
        let mut after = None;
        loop {
            let (list, next) =
                users::list(&s.db, &v.ctx, None, Some(role), max_page(after)).await?;
            for u in list {
                if u.enabled && !out.iter().any(|(id, _)| *id == u.id.0) {
                    out.push((u.id.0, u.name));
                }
            }
            match next.and_then(|n| n.parse::<i64>().ok()) {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    out.sort_by_key(|m| crate::domain::values::fold(&m.1));
    Ok(out)
}

async fn project_list(
    State(s): State<AppState>,
    v: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut form = FormState::default();
    form.set("status", ProjectStatus::Planned.as_str());
    if let Some(c) = q.get("customer") {
        form.set("customer_id", c.clone());
    }
    let outcome = Outcome::of_list(v.tr, Kind::Project, &q);
    projects_view(&s, &v, &q, form, outcome).await
}

async fn projects_view(
    s: &AppState,
    v: &Viewer,
    q: &HashMap<String, String>,
    form: FormState,
    outcome: Outcome,
) -> Response {
    let t = v.tr;
    let text = q.get("q").cloned().unwrap_or_default();
    let customer = q
        .get("customer")
        .and_then(|c| c.trim().parse::<i64>().ok())
        .filter(|c| *c > 0);
    let status = q
        .get("status")
        .and_then(|st| ProjectStatus::parse(st.trim()));
    let filter = projects::Filter {
        q: text_filter(&text),
        customer,
        status: status.map(|st| st.as_str().to_owned()),
        object: None,
    };
    let (list, next) = match projects::list(&s.db, &v.ctx, &filter, list_page(q)).await {
        Ok(x) => x,
        Err(e) => return page_error(t, e),
    };
    let customers = match customer_choices(s, v).await {
        Ok(c) => c,
        Err(e) => return page_error(t, e),
    };
    let may_create = can(&v.ctx.actor, Resource::Projects, Action::Create);
    let managers = if may_create {
        match manager_choices(s, v).await {
            Ok(m) => m,
            Err(e) => return page_error(t, e),
        }
    } else {
        Vec::new()
    };
    let customer = customer.map(|c| c.to_string()).unwrap_or_default();
    let status = status.map(|st| st.as_str()).unwrap_or_default().to_owned();
    let page = ProjectsPage {
        l: Layout::signed_in(v, "projects", "/projects"),
        rows: list
            .into_iter()
            .map(|p| ProjectRow {
                id: p.id.0,
                customer: name_in(&customers, p.customer_id.0),
                customer_id: p.customer_id.0,
                dates: dates_text(p.start_date, p.end_date),
                status: p.status.as_str(),
                status_label: status_label(t, p.status),
                value: money_text(t, &p.contract_value),
                name: p.name,
            })
            .collect(),
        next_href: next_href(
            "/projects",
            &[("q", &text), ("customer", &customer), ("status", &status)],
            next,
        ),
        q: text,
        customer,
        status,
        customers,
        statuses: statuses(t),
        may_create,
        form_open: q.contains_key("new") || form.has_errors() || outcome.alert.is_some(),
        managers,
        form,
        alert: outcome.alert,
        notice: outcome.notice,
    };
    with_status(render(&page), outcome.status)
}

/// The fields of a project form, parsed; what does not parse is named.
struct PostedProject {
    name: String,
    start: NaiveDate,
    end: Option<NaiveDate>,
    manager: Option<crate::domain::ids::UserId>,
    value: Option<String>,
    status: ProjectStatus,
}

fn posted_project(f: &HashMap<String, String>) -> Result<PostedProject, Error> {
    let mut problems = Vec::new();
    let start = match field(f, "start_date").trim() {
        "" => {
            problems.push(FieldError::new(
                "start_date",
                "required",
                "a start date is required",
            ));
            None
        }
        s => parse_date(s).or_else(|| {
            problems.push(FieldError::new("start_date", "invalid_date", "not a date"));
            None
        }),
    };
    let end = match field(f, "end_date").trim() {
        "" => None,
        s => parse_date(s).or_else(|| {
            problems.push(FieldError::new("end_date", "invalid_date", "not a date"));
            None
        }),
    };
    let manager = match field(f, "manager_id").trim() {
        "" | "0" => None,
        m => match m.parse::<i64>() {
            Ok(id) if id > 0 => Some(crate::domain::ids::UserId(id)),
            _ => {
                problems.push(FieldError::new(
                    "manager_id",
                    "not_found",
                    "choose a manager",
                ));
                None
            }
        },
    };
    let value = typed_money(field(f, "contract_value"));
    let status = match field(f, "status").trim() {
        "" => Some(ProjectStatus::Planned),
        st => ProjectStatus::parse(st).or_else(|| {
            problems.push(FieldError::new(
                "status",
                "unknown_value",
                "choose a status",
            ));
            None
        }),
    };
    match (start, status) {
        (Some(start), Some(status)) if problems.is_empty() => Ok(PostedProject {
            name: field(f, "name").to_owned(),
            start,
            end,
            manager,
            value: (!value.is_empty()).then_some(value),
            status,
        }),
        _ => Err(Error::Validation(problems)),
    }
}

async fn project_create(State(s): State<AppState>, Submitted { v, f }: Submitted) -> Response {
    let t = v.tr;
    if !can(&v.ctx.actor, Resource::Projects, Action::Create) {
        return refused_role(t, Kind::Project);
    }
    let customer = posted_ref(&f, "customer_id");
    let result = match (customer, posted_project(&f)) {
        (Some(customer), Ok(p)) => {
            let input = projects::NewProject {
                customer_id: CustomerId(customer),
                name: p.name,
                start_date: p.start,
                end_date: p.end,
                manager_id: p.manager,
                contract_value: p.value,
                status: Some(p.status),
                objects: Vec::new(),
            };
            projects::create(&s.db, &v.ctx, input).await
        }
        (customer, parsed) => {
            let mut problems = match parsed {
                Err(Error::Validation(p)) => p,
                _ => Vec::new(),
            };
            if customer.is_none() {
                problems.push(FieldError::new(
                    "customer_id",
                    "required",
                    "choose a customer",
                ));
            }
            Err(Error::Validation(problems))
        }
    };
    match result {
        Ok(p) => Redirect::to(&format!("/projects/{}?saved", p.id.0)).into_response(),
        Err(e) => {
            let mut form = FormState::posted(&f);
            match on_form(t, Kind::Project, e, &mut form) {
                Ok(refused) => projects_view(&s, &v, &HashMap::new(), form, refused).await,
                Err(e) => elsewhere(t, Kind::Project, e),
            }
        }
    }
}

#[derive(Template)]
#[template(path = "project.html")]
struct ProjectPage {
    l: Layout,
    p: projects::Project,
    customer: Option<(i64, String)>,
    manager: String,
    start: String,
    end: String,
    value: String,
    status_label: &'static str,
    /// id, name, kind, scope note.
    objects: Vec<(i64, String, &'static str, String)>,
    may_update: bool,
    /// The customer's objects not in the project yet.
    candidates: Vec<(i64, String)>,
    add: FormState,
    managers: Vec<(i64, String)>,
    statuses: Vec<(&'static str, &'static str)>,
    form: FormState,
    alert: Option<String>,
    /// May delete the record (it stays while something refers to it).
    may_delete: bool,
    notice: Option<&'static str>,
}

async fn project_page(
    State(s): State<AppState>,
    v: Viewer,
    RecordId(id): RecordId,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let notice = q.contains_key("saved").then(|| Kind::Project.saved(v.tr));
    project_view(&s, &v, id, None, None, Outcome::fine(), notice).await
}

/// The objects of a customer that may still join a project, by name.
async fn object_choices(
    s: &AppState,
    v: &Viewer,
    p: &projects::Project,
) -> Result<Vec<(i64, String)>, Error> {
    let filter = objects::Filter {
        customer: Some(p.customer_id.0),
        archived: Some(false),
        ..Default::default()
    };
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let (list, next) = objects::list(&s.db, &v.ctx, &filter, max_page(after)).await?;
        for o in list {
            if !p.objects.iter().any(|x| x.object_id == o.id) {
                out.push((o.id.0, site_label(&o)));
            }
        }
        match next.and_then(|n| n.parse::<i64>().ok()) {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    out.sort_by_key(|o| crate::domain::values::fold(&o.1));
    Ok(out)
}

async fn project_view(
    s: &AppState,
    v: &Viewer,
    id: i64,
    form: Option<FormState>,
    add: Option<FormState>,
    outcome: Outcome,
    notice: Option<&'static str>,
) -> Response {
    let t = v.tr;
    let p = match projects::get(&s.db, &v.ctx, ProjectId(id)).await {
        Ok(p) => p,
        Err(e) => return page_error(t, e),
    };
    let customer = match customer_link(s, v, p.customer_id).await {
        Ok(c) => c,
        Err(e) => return page_error(t, e),
    };
    let manager = match p.manager_id {
        Some(m) => match user_name(s, m).await {
            Ok(n) => n,
            Err(e) => return page_error(t, e),
        },
        None => String::new(),
    };
    // The project's objects this user may see (an engineer's scope may leave some out), in
    // the project's order, from one query.
    let in_project = objects::Filter {
        project: Some(id),
        ..Default::default()
    };
    let visible: HashMap<i64, objects::ServiceObject> =
        match objects::list(&s.db, &v.ctx, &in_project, max_page(None)).await {
            Ok((list, _)) => list.into_iter().map(|o| (o.id.0, o)).collect(),
            Err(e) => return page_error(t, e),
        };
    let objs: Vec<_> = p
        .objects
        .iter()
        .filter_map(|link| {
            let o = visible.get(&link.object_id.0)?;
            Some((
                o.id.0,
                o.name.clone(),
                kind_label(t, o.kind),
                link.scope.clone(),
            ))
        })
        .collect();
    let may_update = can(&v.ctx.actor, Resource::Projects, Action::Update);
    let (candidates, managers) = if may_update {
        let candidates = match object_choices(s, v, &p).await {
            Ok(c) => c,
            Err(e) => return page_error(t, e),
        };
        let managers = match manager_choices(s, v).await {
            Ok(m) => m,
            Err(e) => return page_error(t, e),
        };
        (candidates, managers)
    } else {
        (Vec::new(), Vec::new())
    };
    let form = form.unwrap_or_else(|| {
        let mut f = FormState::default();
        f.set("name", p.name.clone());
        f.set("start_date", p.start_date.format("%Y-%m-%d").to_string());
        f.set(
            "end_date",
            p.end_date
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
        );
        f.set(
            "manager_id",
            p.manager_id.map(|m| m.0.to_string()).unwrap_or_default(),
        );
        f.set("contract_value", money_field(t, &p.contract_value));
        f.set("status", p.status.as_str());
        f.set("version", p.version.to_string());
        f
    });
    let page = ProjectPage {
        l: Layout::signed_in(v, "projects", &format!("/projects/{id}")),
        customer,
        manager,
        start: date_text(p.start_date),
        end: p.end_date.map(date_text).unwrap_or_default(),
        value: money_text(t, &p.contract_value),
        status_label: status_label(t, p.status),
        objects: objs,
        may_update,
        candidates,
        add: add.unwrap_or_default(),
        managers,
        statuses: statuses(t),
        p,
        form,
        alert: outcome.alert,
        may_delete: can(&v.ctx.actor, Resource::Projects, Action::Delete),
        notice,
    };
    with_status(render(&page), outcome.status)
}

async fn project_update(State(s): State<AppState>, Posted { v, id, f }: Posted) -> Response {
    let t = v.tr;
    let result = match posted_project(&f) {
        Ok(p) => {
            let patch = projects::ProjectPatch {
                version: None,
                name: Some(p.name),
                start_date: Some(p.start),
                end_date: Some(p.end),
                manager_id: Some(p.manager),
                contract_value: Some(p.value.unwrap_or_else(|| "0".to_owned())),
                status: Some(p.status),
            };
            projects::update(
                &s.db,
                &v.ctx,
                ProjectId(id),
                Expected::Body(version_of(&f)),
                patch,
            )
            .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Redirect::to(&format!("/projects/{id}?saved")).into_response(),
        Err(e) => {
            let mut form = FormState::posted(&f);
            match on_form(t, Kind::Project, e, &mut form) {
                Ok(refused) => project_view(&s, &v, id, Some(form), None, refused, None).await,
                Err(e) => elsewhere(t, Kind::Project, e),
            }
        }
    }
}

/// Adds one of the customer's objects to the project, with its scope note.
async fn project_add_object(State(s): State<AppState>, Posted { v, id, f }: Posted) -> Response {
    let t = v.tr;
    let result = match posted_ref(&f, "object_id") {
        Some(object) => {
            let link = projects::ProjectObject {
                object_id: ObjectId(object),
                scope: field(&f, "scope").to_owned(),
            };
            projects::add(&s.db, &v.ctx, ProjectId(id), link).await
        }
        None => Err(Error::field("object_id", "required", "choose an object")),
    };
    match result {
        Ok(_) => Redirect::to(&format!("/projects/{id}?saved")).into_response(),
        Err(e) => {
            let mut add = FormState::posted(&f);
            match on_form(t, Kind::Project, e, &mut add) {
                Ok(refused) => project_view(&s, &v, id, None, Some(add), refused, None).await,
                Err(e) => elsewhere(t, Kind::Project, e),
            }
        }
    }
}

/// Takes an object out of the project (refused while the project's requests refer to it).
async fn project_remove_object(
    State(s): State<AppState>,
    Path((_, object)): Path<(String, String)>,
    Posted { v, id, f: _ }: Posted,
) -> Response {
    let t = v.tr;
    let Some(object) = object.parse::<i64>().ok().filter(|o| *o > 0) else {
        return not_found(t);
    };
    match projects::remove(&s.db, &v.ctx, ProjectId(id), ObjectId(object)).await {
        Ok(_) => Redirect::to(&format!("/projects/{id}?saved")).into_response(),
        Err(e) => {
            // The refusal is about the row's button, not the add form's fields.
            let mut ignored = FormState::default();
            match on_form(t, Kind::Project, e, &mut ignored) {
                Ok(refused) => project_view(&s, &v, id, None, None, refused, None).await,
                Err(e) => elsewhere(t, Kind::Project, e),
            }
        }
    }
}

// ------------------------------------------------------------------ deletion

/// Deletes a customer with nothing left that refers to it.
async fn customer_delete(State(s): State<AppState>, Posted { v, id, f: _ }: Posted) -> Response {
    let result = customers::delete(&s.db, &v.ctx, CustomerId(id)).await;
    match deleted(v.tr, Kind::Customer, result) {
        Deleted::Gone(to) => to.into_response(),
        Deleted::Stays(outcome) => customer_view(&s, &v, id, None, outcome, None).await,
        Deleted::Refused(page) => page,
    }
}

/// Deletes a site no request refers to (one that has them is archived instead).
async fn object_delete(State(s): State<AppState>, Posted { v, id, f: _ }: Posted) -> Response {
    let result = objects::delete(&s.db, &v.ctx, ObjectId(id)).await;
    match deleted(v.tr, Kind::Object, result) {
        Deleted::Gone(to) => to.into_response(),
        Deleted::Stays(outcome) => object_view(&s, &v, id, None, outcome, None).await,
        Deleted::Refused(page) => page,
    }
}

/// Deletes a project no request refers to.
async fn project_delete(State(s): State<AppState>, Posted { v, id, f: _ }: Posted) -> Response {
    let result = projects::delete(&s.db, &v.ctx, ProjectId(id)).await;
    match deleted(v.tr, Kind::Project, result) {
        Deleted::Gone(to) => to.into_response(),
        Deleted::Stays(outcome) => project_view(&s, &v, id, None, None, outcome, None).await,
        Deleted::Refused(page) => page,
    }
}
