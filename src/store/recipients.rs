//! What the worker reads to turn an event into messages: the people concerned and how to
//! reach them, and the few facts of the record a message may show. Reads only; unscoped,
//! because the worker acts for the system, and what each person hears is decided by who
//! they are (`jobs::notify`), never by what the query happens to return.

use super::{Db, Q};
use crate::domain::access::Role;
use crate::error::Result;

/// A person who may hear about something, with their ways of being reached.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Person {
    pub id: i64,
    pub email: String,
    pub telegram_chat_id: Option<String>,
    /// `ru` or `en`.
    pub lang: String,
    /// The customer of a client user.
    pub customer_id: Option<i64>,
    /// The channels the user chose (1 or 0).
    pub notify_email: i64,
    pub notify_telegram: i64,
}

const PERSON: &str = "SELECT id, email, telegram_chat_id, lang, customer_id, notify_email, \
    notify_telegram FROM users WHERE enabled = 1";

/// The enabled users among `ids`.
pub async fn people(db: &Db, ids: &[i64]) -> Result<Vec<Person>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = Q::new(PERSON);
    q.push(" AND id IN (");
    for (n, id) in ids.iter().enumerate() {
        if n > 0 {
            q.push(", ");
        }
        q.bind(*id);
    }
    q.push(") ORDER BY id");
    q.fetch_all(db.pool()).await
}

/// The enabled users holding `role`.
pub async fn with_role(db: &Db, role: Role) -> Result<Vec<Person>> {
    let mut q = Q::new(PERSON);
    q.push(" AND (',' || roles || ',') LIKE ")
        .bind(format!("%,{},%", role.as_str()))
        .push(" ORDER BY id");
    q.fetch_all(db.pool()).await
}

/// The enabled client users of a customer.
pub async fn clients_of(db: &Db, customer: i64) -> Result<Vec<Person>> {
    let mut q = Q::new(PERSON);
    q.push(" AND customer_id = ")
        .bind(customer)
        .push(" AND (',' || roles || ',') LIKE '%,client,%' ORDER BY id");
    q.fetch_all(db.pool()).await
}

/// What a message about a request may say, and who is tied to it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RequestFacts {
    pub id: i64,
    pub number: String,
    pub subject: String,
    pub customer_id: i64,
    pub assigned_to: Option<i64>,
    pub manager_id: Option<i64>,
    pub object_id: Option<i64>,
    /// The customer's contact e-mail as stored (encrypted).
    pub contact_email: String,
}

pub async fn request(db: &Db, id: i64) -> Result<Option<RequestFacts>> {
    let mut q = Q::new(
        "SELECT r.id, r.number, r.subject, r.customer_id, r.assigned_to, \
         p.manager_id, r.object_id, c.contact_email \
         FROM service_requests r JOIN customers c ON c.id = r.customer_id \
         LEFT JOIN projects p ON p.id = r.project_id WHERE r.id = ",
    );
    q.bind(id);
    q.fetch_optional(db.pool()).await
}

/// The engineers assigned to a site.
pub async fn object_engineers(db: &Db, object: i64) -> Result<Vec<i64>> {
    let mut q = Q::new("SELECT user_id FROM object_engineers WHERE object_id = ");
    q.bind(object).push(" ORDER BY user_id");
    q.fetch_all::<(i64,), _>(db.pool())
        .await
        .map(|rows| rows.into_iter().map(|r| r.0).collect())
}

/// A project's name and customer, for the welcome message.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProjectFacts {
    pub id: i64,
    pub name: String,
    pub customer_id: i64,
    pub customer_name: String,
    /// The customer's contact e-mail as stored (encrypted).
    pub contact_email: String,
    pub start_date: String,
    pub end_date: Option<String>,
}

pub async fn project(db: &Db, id: i64) -> Result<Option<ProjectFacts>> {
    let mut q = Q::new(
        "SELECT p.id, p.name, p.customer_id, c.name AS customer_name, c.contact_email, \
         p.start_date, p.end_date FROM projects p JOIN customers c ON c.id = p.customer_id \
         WHERE p.id = ",
    );
    q.bind(id);
    q.fetch_optional(db.pool()).await
}

/// An act's number and its engineer.
pub async fn report(db: &Db, id: i64) -> Result<Option<(String, i64)>> {
    let mut q = Q::new("SELECT number, engineer_id FROM service_reports WHERE id = ");
    q.bind(id);
    q.fetch_optional(db.pool()).await
}
