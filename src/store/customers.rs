//! Customers (client companies).

use super::{Ctx, Db, Expected, Page, Q, ScopeSql, Tx, UniqueExt, audit, db_ts, ts};
use crate::domain::access::{self, Action, Resource};
use crate::domain::ids::{CustomerId, UserId};
use crate::domain::values::{self, Email, Inn};
use crate::error::{Error, Problems, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

const COLS: &str = "c.id, c.name, c.inn, c.address, c.contact_name, c.contact_email, c.contact_phone, \
                    c.created_at, c.updated_at, c.created_by, c.version";

pub const SCOPE: ScopeSql = ScopeSql {
    assigned: "EXISTS (SELECT 1 FROM service_requests x WHERE x.customer_id = c.id AND x.assigned_to = {u})",
    customer: "c.id = {c}",
};

#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: i64,
    name: String,
    inn: String,
    address: String,
    contact_name: String,
    contact_email: String,
    contact_phone: String,
    created_at: String,
    updated_at: String,
    created_by: Option<i64>,
    version: i64,
}

impl Row {
    fn view(self, keys: &crate::crypto::DataKeys) -> Result<Customer> {
        let contact_email =
            super::pii::decrypt(keys, "customers", "contact_email", &self.contact_email)?;
        let contact_phone =
            super::pii::decrypt(keys, "customers", "contact_phone", &self.contact_phone)?;
        Ok(Customer {
            id: CustomerId(self.id),
            name: self.name,
            inn: self.inn,
            address: self.address,
            contact_name: self.contact_name,
            contact_email,
            contact_phone,
            created_at: ts(&self.created_at)?,
            updated_at: ts(&self.updated_at)?,
            created_by: self.created_by.map(UserId),
            version: self.version,
        })
    }
}

/// A client company.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Customer {
    pub id: CustomerId,
    pub name: String,
    /// Tax id: 10 or 12 digits with valid check digits.
    pub inn: String,
    pub address: String,
    pub contact_name: String,
    pub contact_email: String,
    pub contact_phone: String,
    #[serde(with = "crate::domain::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::domain::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
    pub created_by: Option<UserId>,
    pub version: i64,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCustomer {
    pub name: String,
    pub inn: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub contact_name: String,
    #[serde(default)]
    pub contact_email: String,
    #[serde(default)]
    pub contact_phone: String,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerPatch {
    pub version: Option<i64>,
    pub name: Option<String>,
    pub inn: Option<String>,
    pub address: Option<String>,
    pub contact_name: Option<String>,
    pub contact_email: Option<String>,
    pub contact_phone: Option<String>,
}

struct Fields {
    name: String,
    inn: String,
    address: String,
    contact_name: String,
    contact_email: String,
    contact_phone: String,
}

fn check(f: &NewCustomer) -> Result<Fields> {
    let mut p = Problems::new();
    let name = p.check(values::required_line("name", &f.name, 300));
    let inn = p.check(Inn::parse("inn", &f.inn));
    let address = p.check(values::optional_line("address", &f.address, 500));
    let contact_name = p.check(values::optional_line("contact_name", &f.contact_name, 200));
    let contact_email = if f.contact_email.trim().is_empty() {
        Some(String::new())
    } else {
        p.check(Email::parse("contact_email", &f.contact_email))
            .map(|e| e.as_str().to_owned())
    };
    let contact_phone = p.check(values::phone("contact_phone", &f.contact_phone));
    p.finish()?;
    Ok(Fields {
        name: name.expect("checked"),
        inn: inn.expect("checked").as_str().to_owned(),
        address: address.expect("checked"),
        contact_name: contact_name.expect("checked"),
        contact_email: contact_email.expect("checked"),
        contact_phone: contact_phone.expect("checked"),
    })
}

fn search(f: &Fields) -> String {
    values::search_key(&[&f.name, &f.inn, &f.address, &f.contact_name])
}

fn select() -> Q {
    Q::new(&format!("SELECT {COLS} FROM customers c WHERE 1 = 1"))
}

async fn load(tx: &mut Tx, ctx: &Ctx, id: CustomerId, lock: &str) -> Result<Row> {
    let mut q = select();
    q.push(" AND c.id = ").bind(id.0);
    q.scope(access::scope(&ctx.actor, Resource::Customers), SCOPE);
    q.push(lock);
    q.fetch_optional(&mut **tx).await?.ok_or(Error::NotFound)
}

fn require(ctx: &Ctx, action: Action) -> Result<()> {
    if access::can(&ctx.actor, Resource::Customers, action) {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "your role may not change customers".into(),
        ))
    }
}

#[derive(Debug, Default, Clone, Deserialize, utoipa::IntoParams)]
pub struct Filter {
    /// Free-text search in name, INN, address and contact name.
    pub q: Option<String>,
    /// Exact contact e-mail (matched through its blind index; the e-mail is stored encrypted).
    pub contact_email: Option<String>,
    /// Exact contact phone, as stored.
    pub contact_phone: Option<String>,
}

pub async fn list(
    db: &Db,
    ctx: &Ctx,
    f: &Filter,
    page: Page,
) -> Result<(Vec<Customer>, Option<String>)> {
    let mut q = select();
    q.scope(access::scope(&ctx.actor, Resource::Customers), SCOPE);
    q.search("c.search", f.q.as_deref());
    if let Some(e) = f.contact_email.as_deref() {
        q.push(" AND c.contact_email_idx = ")
            .bind(super::pii::index(
                db.keys()?,
                "customers",
                "contact_email",
                e,
            ));
    }
    if let Some(p) = f.contact_phone.as_deref() {
        q.push(" AND c.contact_phone_idx = ")
            .bind(super::pii::index(
                db.keys()?,
                "customers",
                "contact_phone",
                p,
            ));
    }
    page.apply(&mut q, "c.id");
    let rows: Vec<Row> = q.fetch_all(db.pool()).await?;
    let (rows, next) = page.finish(rows, |r| r.id);
    Ok((
        rows.into_iter()
            .map(|r| r.view(db.keys()?))
            .collect::<Result<_>>()?,
        next,
    ))
}

pub async fn get(db: &Db, ctx: &Ctx, id: CustomerId) -> Result<Customer> {
    let mut q = select();
    q.push(" AND c.id = ").bind(id.0);
    q.scope(access::scope(&ctx.actor, Resource::Customers), SCOPE);
    q.fetch_optional::<Row, _>(db.pool())
        .await?
        .ok_or(Error::NotFound)?
        .view(db.keys()?)
}

pub async fn create(db: &Db, ctx: &Ctx, input: NewCustomer) -> Result<Customer> {
    require(ctx, Action::Create)?;
    let f = check(&input)?;
    let mut tx = db.begin().await?;
    let keys = db.keys()?;
    let email = super::pii::encrypt(keys, "customers", "contact_email", &f.contact_email);
    let phone = super::pii::encrypt(keys, "customers", "contact_phone", &f.contact_phone);
    let mut q = Q::new(
        "INSERT INTO customers (name, inn, address, contact_name, contact_email, contact_phone, contact_email_idx, contact_phone_idx, search, created_at, updated_at, created_by) VALUES (",
    );
    q.bind(f.name.clone())
        .push(", ")
        .bind(f.inn.clone())
        .push(", ")
        .bind(f.address.clone())
        .push(", ")
        .bind(f.contact_name.clone())
        .push(", ")
        .bind(email.0.clone())
        .push(", ")
        .bind(phone.0.clone())
        .push(", ")
        .bind(email.1.clone())
        .push(", ")
        .bind(phone.1.clone())
        .push(", ")
        .bind(search(&f))
        .push(", ")
        .bind(db_ts(ctx.now))
        .push(", ")
        .bind(db_ts(ctx.now))
        .push(", ")
        .bind(ctx.actor.user_id.0)
        .push(") RETURNING id");
    let id: i64 = q
        .scalar(&mut *tx)
        .await
        .unique("inn", "a customer with this INN already exists")?;
    let view = load(&mut tx, ctx, CustomerId(id), "")
        .await?
        .view(db.keys()?)?;
    audit::record(
        &mut tx,
        ctx,
        "create",
        "customer",
        Some(id),
        None,
        Some(&audit::private_snapshot(keys, "customer", &view)),
    )
    .await?;
    tx.commit().await?;
    Ok(view)
}

pub async fn update(
    db: &Db,
    ctx: &Ctx,
    id: CustomerId,
    expected: Expected,
    patch: CustomerPatch,
) -> Result<Customer> {
    let mut tx = db.begin().await?;
    let row = load(&mut tx, ctx, id, db.backend().for_update()).await?;
    require(ctx, Action::Update)?;
    super::check_version(expected, row.version)?;
    let before = row.view(db.keys()?)?;
    let merged = NewCustomer {
        name: patch.name.unwrap_or(before.name.clone()),
        inn: patch.inn.unwrap_or(before.inn.clone()),
        address: patch.address.unwrap_or(before.address.clone()),
        contact_name: patch.contact_name.unwrap_or(before.contact_name.clone()),
        contact_email: patch.contact_email.unwrap_or(before.contact_email.clone()),
        contact_phone: patch.contact_phone.unwrap_or(before.contact_phone.clone()),
    };
    let f = check(&merged)?;
    let keys = db.keys()?;
    let email = super::pii::encrypt(keys, "customers", "contact_email", &f.contact_email);
    let phone = super::pii::encrypt(keys, "customers", "contact_phone", &f.contact_phone);
    let mut q = Q::new("UPDATE customers SET name = ");
    q.bind(f.name.clone())
        .push(", inn = ")
        .bind(f.inn.clone())
        .push(", address = ")
        .bind(f.address.clone())
        .push(", contact_name = ")
        .bind(f.contact_name.clone())
        .push(", contact_email = ")
        .bind(email.0.clone())
        .push(", contact_phone = ")
        .bind(phone.0.clone())
        .push(", contact_email_idx = ")
        .bind(email.1.clone())
        .push(", contact_phone_idx = ")
        .bind(phone.1.clone())
        .push(", search = ")
        .bind(search(&f))
        .push(", updated_at = ")
        .bind(db_ts(ctx.now))
        .push(", version = version + 1 WHERE id = ")
        .bind(id.0);
    q.execute(&mut *tx)
        .await
        .unique("inn", "a customer with this INN already exists")?;
    let after = load(&mut tx, ctx, id, "").await?.view(db.keys()?)?;
    audit::record(
        &mut tx,
        ctx,
        "update",
        "customer",
        Some(id.0),
        Some(&audit::private_snapshot(keys, "customer", &before)),
        Some(&audit::private_snapshot(keys, "customer", &after)),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

pub async fn delete(db: &Db, ctx: &Ctx, id: CustomerId) -> Result<()> {
    let mut tx = db.begin().await?;
    let row = load(&mut tx, ctx, id, db.backend().for_update()).await?;
    require(ctx, Action::Delete)?;
    for (table, what) in [
        ("service_objects", "objects"),
        ("projects", "projects"),
        ("service_requests", "service requests"),
        ("users", "users"),
    ] {
        if super::count_where(&mut tx, table, "customer_id", id.0).await? > 0 {
            return Err(Error::conflict(
                "in_use",
                format!("the customer still has {what}; remove them first"),
            ));
        }
    }
    let keys = db.keys()?;
    let before = row.view(keys)?;
    super::delete_where(&mut tx, &[("customers", "id")], id.0).await?;
    audit::record(
        &mut tx,
        ctx,
        "delete",
        "customer",
        Some(id.0),
        Some(&audit::private_snapshot(keys, "customer", &before)),
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Recomputes search keys (all, or only the empty ones).
pub async fn refresh_search_keys(tx: &mut Tx, only_empty: bool) -> Result<()> {
    let sql = format!(
        "SELECT {COLS} FROM customers c{}",
        if only_empty {
            " WHERE c.search = ''"
        } else {
            ""
        }
    );
    let rows: Vec<Row> = Q::new(&sql).fetch_all(&mut **tx).await?;
    for r in rows {
        let key = values::search_key(&[&r.name, &r.inn, &r.address, &r.contact_name]);
        let mut q = Q::new("UPDATE customers SET search = ");
        q.bind(key).push(" WHERE id = ").bind(r.id);
        q.execute(&mut **tx).await?;
    }
    Ok(())
}
