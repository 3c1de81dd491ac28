//! User accounts.

use super::{Ctx, Db, Page, Q, Tx, UniqueExt, audit, db_ts, ts};
use crate::domain::access::{self, Action, Actor, Resource, Role, Scope};
use crate::domain::ids::{CustomerId, UserId};
use crate::domain::values::{self, Email};
use crate::error::{Error, FieldError, Problems, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

const COLS: &str = "id, email, name, phone, roles, customer_id, enabled, password_hash, created_at, updated_at, version, \
    telegram_chat_id, lang, notify_email, notify_telegram";

/// The same columns with the `u.` alias.
pub const COLS_U: &str = "u.id, u.email, u.name, u.phone, u.roles, u.customer_id, u.enabled, u.password_hash, \
    u.created_at, u.updated_at, u.version, u.telegram_chat_id, u.lang, u.notify_email, u.notify_telegram";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub name: String,
    pub phone: String,
    pub roles: String,
    pub customer_id: Option<i64>,
    pub enabled: i64,
    pub password_hash: String,
    pub created_at: String,
    pub updated_at: String,
    pub version: i64,
    pub telegram_chat_id: Option<String>,
    pub lang: String,
    pub notify_email: i64,
    pub notify_telegram: i64,
}

impl UserRow {
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: UserId(self.id),
            roles: access::roles_from_db(&self.roles),
            customer_id: self.customer_id.map(CustomerId),
        }
    }

    pub fn view(&self, keys: &crate::crypto::DataKeys) -> Result<User> {
        let phone = super::pii::decrypt(keys, "users", "phone", &self.phone)?;
        Ok(User {
            id: UserId(self.id),
            email: self.email.clone(),
            name: self.name.clone(),
            phone,
            roles: access::roles_from_db(&self.roles),
            customer_id: self.customer_id.map(CustomerId),
            enabled: self.enabled != 0,
            created_at: ts(&self.created_at)?,
            updated_at: ts(&self.updated_at)?,
            version: self.version,
            telegram_chat_id: self.telegram_chat_id.clone(),
            lang: self.lang.clone(),
            notify_email: self.notify_email != 0,
            notify_telegram: self.notify_telegram != 0,
        })
    }
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub phone: String,
    pub roles: Vec<Role>,
    pub customer_id: Option<CustomerId>,
    pub enabled: bool,
    #[serde(with = "crate::domain::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::domain::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
    pub version: i64,
    /// The Telegram chat the user's notifications also go to; `null` when not linked.
    pub telegram_chat_id: Option<String>,
    /// The language of the user's messages: `ru` or `en`.
    pub lang: String,
    /// Whether the user hears by e-mail.
    pub notify_email: bool,
    /// Whether the user hears on Telegram (when a chat is linked).
    pub notify_telegram: bool,
}

/// A new account.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub email: String,
    pub name: String,
    #[serde(default)]
    pub phone: String,
    pub roles: Vec<Role>,
    #[serde(default)]
    pub customer_id: Option<CustomerId>,
    /// At least 12 characters.
    pub password: String,
}

/// Changes to an account; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub version: Option<i64>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub roles: Option<Vec<Role>>,
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<i64>)]
    pub customer_id: Option<Option<CustomerId>>,
    pub enabled: Option<bool>,
    pub password: Option<String>,
    /// A Telegram chat id (digits, `-` first for groups) for notifications; `null` unlinks.
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<String>)]
    pub telegram_chat_id: Option<Option<String>>,
    /// `ru` or `en`: the language of the user's messages.
    pub lang: Option<String>,
    /// Whether the user hears by e-mail.
    pub notify_email: Option<bool>,
    /// Whether the user hears on Telegram (when a chat is linked).
    pub notify_telegram: Option<bool>,
}

pub async fn find_by_email(db: &Db, email: &str) -> Result<Option<UserRow>> {
    let mut q = Q::new(&format!("SELECT {COLS} FROM users WHERE email = "));
    q.bind(email.trim().to_lowercase());
    q.fetch_optional(db.pool()).await
}

pub async fn find(db: &Db, id: UserId) -> Result<Option<UserRow>> {
    let mut q = Q::new(&format!("SELECT {COLS} FROM users WHERE id = "));
    q.bind(id.0);
    q.fetch_optional(db.pool()).await
}

/// The names of these users, to say who did what in records the reader may see (the audit
/// log); ids without a user are left out.
pub async fn names(db: &Db, ids: &[i64]) -> Result<std::collections::HashMap<i64, String>> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let mut q = Q::new("SELECT id, name FROM users WHERE id IN (");
    for (n, id) in ids.iter().enumerate() {
        if n > 0 {
            q.push(", ");
        }
        q.bind(*id);
    }
    q.push(")");
    let rows: Vec<(i64, String)> = q.fetch_all(db.pool()).await?;
    Ok(rows.into_iter().collect())
}

pub async fn count(db: &Db) -> Result<i64> {
    Q::new("SELECT COUNT(*) FROM users").scalar(db.pool()).await
}

/// Checks a new account's fields (the password is hashed by the caller).
pub struct CheckedUser {
    pub email: Email,
    pub name: String,
    pub phone: String,
    pub roles: Vec<Role>,
    pub customer_id: Option<CustomerId>,
}

pub fn check_new(input: &NewUser) -> Result<CheckedUser> {
    let mut p = Problems::new();
    let email = p.check(Email::parse("email", &input.email));
    let name = p.check(values::required_line("name", &input.name, 200));
    let phone = p.check(values::phone("phone", &input.phone));
    let roles = p.check(access::validate_roles(&input.roles, input.customer_id));
    p.check(crate::auth::check_new_password(
        &input.password,
        &input.email,
    ));
    p.finish()?;
    Ok(CheckedUser {
        email: email.expect("checked"),
        name: name.expect("checked"),
        phone: phone.expect("checked"),
        roles: roles.expect("checked"),
        customer_id: input.customer_id,
    })
}

/// Inserts a checked account with an already hashed password. `by` is `None` for bootstrap.
/// Writes no audit entry: callers do ([`create`], [`create_from_command_line`]).
pub async fn insert(
    tx: &mut Tx,
    keys: &crate::crypto::DataKeys,
    u: &CheckedUser,
    password_hash: &str,
    by: Option<UserId>,
    now: DateTime<Utc>,
) -> Result<UserRow> {
    let phone = super::pii::encrypt(keys, "users", "phone", &u.phone);
    if let Some(c) = u.customer_id
        && super::count_where(tx, "customers", "id", c.0).await? == 0
    {
        return Err(Error::field("customer_id", "not_found", "no such customer"));
    }
    let mut q = Q::new(
        "INSERT INTO users (email, name, phone, phone_idx, roles, customer_id, enabled, password_hash, created_at, updated_at, created_by) VALUES (",
    );
    q.bind(u.email.as_str().to_owned())
        .push(", ")
        .bind(u.name.clone())
        .push(", ")
        .bind(phone.0)
        .push(", ")
        .bind(phone.1)
        .push(", ")
        .bind(access::roles_to_db(&u.roles))
        .push(", ")
        .bind(u.customer_id.map(|c| c.0))
        .push(", 1, ")
        .bind(password_hash.to_owned())
        .push(", ")
        .bind(db_ts(now))
        .push(", ")
        .bind(db_ts(now))
        .push(", ")
        .bind(by.map(|b| b.0))
        .push(&format!(") RETURNING {COLS}"));
    q.fetch_optional(&mut **tx)
        .await
        .unique("email", "a user with this e-mail already exists")?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("insert returned nothing")))
}

fn scope_check(ctx: &Ctx, action: Action) -> Result<Scope> {
    let scope = access::scope(&ctx.actor, Resource::Users);
    if scope == Scope::Nothing {
        return Err(Error::NotFound);
    }
    if action != Action::Read && !access::can(&ctx.actor, Resource::Users, action) {
        return Err(Error::Forbidden("only administrators manage users".into()));
    }
    Ok(scope)
}

/// Enabled engineers as (id, name), by name: the choices of the assign control, shown to
/// staff who may change requests.
pub async fn engineers(db: &Db) -> Result<Vec<(i64, String)>> {
    let rows: Vec<(i64, String, String)> =
        Q::new("SELECT id, name, roles FROM users WHERE enabled = 1 ORDER BY name, id")
            .fetch_all(db.pool())
            .await?;
    Ok(rows
        .into_iter()
        .filter(|(_, _, roles)| access::roles_from_db(roles).contains(&Role::Engineer))
        .map(|(id, name, _)| (id, name))
        .collect())
}

pub async fn list(
    db: &Db,
    ctx: &Ctx,
    q_text: Option<&str>,
    role: Option<Role>,
    page: Page,
) -> Result<(Vec<User>, Option<String>)> {
    scope_check(ctx, Action::Read)?;
    let mut q = Q::new(&format!("SELECT {COLS} FROM users WHERE 1 = 1"));
    if let Some(t) = q_text.filter(|t| !t.trim().is_empty()) {
        q.push(" AND (LOWER(email) LIKE ")
            .bind(values::like_pattern(t))
            .push(" ESCAPE '\\' OR LOWER(name) LIKE ")
            .bind(values::like_pattern(t))
            .push(" ESCAPE '\\')");
    }
    if let Some(r) = role {
        q.push(" AND (',' || roles || ',') LIKE ")
            .bind(format!("%,{},%", r.as_str()));
    }
    page.apply(&mut q, "id");
    let rows: Vec<UserRow> = q.fetch_all(db.pool()).await?;
    let (rows, next) = page.finish(rows, |r| r.id);
    Ok((
        rows.iter()
            .map(|r| r.view(db.keys()?))
            .collect::<Result<_>>()?,
        next,
    ))
}

pub async fn get(db: &Db, ctx: &Ctx, id: UserId) -> Result<User> {
    if id != ctx.actor.user_id {
        scope_check(ctx, Action::Read)?;
    }
    find(db, id).await?.ok_or(Error::NotFound)?.view(db.keys()?)
}

pub async fn create(db: &Db, ctx: &Ctx, input: NewUser) -> Result<User> {
    scope_check(ctx, Action::Create)?;
    let checked = check_new(&input)?;
    let hash = hash_blocking(input.password).await?;
    let mut tx = db.begin().await?;
    let row = insert(
        &mut tx,
        db.keys()?,
        &checked,
        &hash,
        Some(ctx.actor.user_id),
        ctx.now,
    )
    .await?;
    let view = row.view(db.keys()?)?;
    audit::record(
        &mut tx,
        ctx,
        "create",
        "user",
        Some(row.id),
        None,
        Some(&audit::private_snapshot(db.keys()?, "user", &view)),
    )
    .await?;
    tx.commit().await?;
    Ok(view)
}

/// Adds an account from the `ferum` command line (`user add`, the first administrator of
/// `serve` and `site init`): audited like [`create`], with no user as the actor and
/// [`audit::SOURCE_CLI`] as where it came from.
pub async fn create_from_command_line(
    db: &Db,
    input: NewUser,
    now: DateTime<Utc>,
) -> Result<UserRow> {
    let checked = check_new(&input)?;
    let hash = hash_blocking(input.password).await?;
    let keys = db.keys()?;
    let mut tx = db.begin().await?;
    let row = insert(&mut tx, keys, &checked, &hash, None, now).await?;
    audit::insert(
        &mut tx,
        now,
        None,
        audit::SOURCE_CLI,
        "create",
        "user",
        Some(row.id),
        None,
        Some(&audit::private_snapshot(keys, "user", &row.view(keys)?)),
    )
    .await?;
    tx.commit().await?;
    Ok(row)
}

pub async fn update(
    db: &Db,
    ctx: &Ctx,
    id: UserId,
    expected: super::Expected,
    patch: UserPatch,
) -> Result<User> {
    scope_check(ctx, Action::Update)?;
    let mut p = Problems::new();
    let name = patch
        .name
        .as_deref()
        .and_then(|n| p.check(values::required_line("name", n, 200)));
    let phone = patch
        .phone
        .as_deref()
        .and_then(|n| p.check(values::phone("phone", n)));
    if let Some(pw) = &patch.password {
        p.check(crate::auth::check_new_password(pw, ""));
    }
    if let Some(Some(chat)) = &patch.telegram_chat_id {
        p.check(values::telegram_chat_id("telegram_chat_id", chat).map(|_| ()));
    }
    if let Some(lang) = &patch.lang
        && !matches!(lang.as_str(), "ru" | "en")
    {
        p.push(FieldError::new("lang", "unknown_value", "ru or en"));
    }
    p.finish()?;
    let new_password = patch.password.clone();
    let hash = match patch.password {
        Some(pw) => Some(hash_blocking(pw).await?),
        None => None,
    };
    let mut tx = db.begin().await?;
    let mut q = Q::new(&format!("SELECT {COLS} FROM users WHERE id = "));
    q.bind(id.0).push(tx_lock(db));
    let row: UserRow = q.fetch_optional(&mut *tx).await?.ok_or(Error::NotFound)?;
    super::check_version(expected, row.version)?;
    if let Some(pw) = &new_password {
        crate::auth::check_new_password(pw, &row.email).map_err(|e| Error::Validation(vec![e]))?;
    }
    let before = row.view(db.keys()?)?;
    let roles = patch.roles.clone().unwrap_or_else(|| before.roles.clone());
    let customer = patch.customer_id.unwrap_or(before.customer_id);
    let roles = access::validate_roles(&roles, customer).map_err(|e| Error::Validation(vec![e]))?;
    if id == ctx.actor.user_id && (patch.enabled == Some(false) || !roles.contains(&Role::Admin)) {
        return Err(Error::conflict(
            "self_lockout",
            "you cannot disable yourself or drop your own admin role",
        ));
    }
    let phone_enc = super::pii::encrypt(
        db.keys()?,
        "users",
        "phone",
        &phone.unwrap_or(before.phone.clone()),
    );
    let mut q = Q::new("UPDATE users SET name = ");
    q.bind(name.unwrap_or(before.name.clone()))
        .push(", phone = ")
        .bind(phone_enc.0)
        .push(", phone_idx = ")
        .bind(phone_enc.1)
        .push(", roles = ")
        .bind(access::roles_to_db(&roles))
        .push(", customer_id = ")
        .bind(customer.map(|c| c.0))
        .push(", enabled = ")
        .bind(i64::from(patch.enabled.unwrap_or(before.enabled)))
        .push(", password_hash = ")
        .bind(hash.unwrap_or(row.password_hash.clone()))
        .push(", telegram_chat_id = ")
        .bind(
            patch
                .telegram_chat_id
                .clone()
                .unwrap_or(before.telegram_chat_id.clone())
                .map(|c| c.trim().to_owned()),
        )
        .push(", lang = ")
        .bind(patch.lang.clone().unwrap_or(before.lang.clone()))
        .push(", notify_email = ")
        .bind(i64::from(patch.notify_email.unwrap_or(before.notify_email)))
        .push(", notify_telegram = ")
        .bind(i64::from(
            patch.notify_telegram.unwrap_or(before.notify_telegram),
        ))
        .push(", updated_at = ")
        .bind(db_ts(ctx.now))
        .push(", version = version + 1 WHERE id = ")
        .bind(id.0)
        .push(&format!(" RETURNING {COLS}"));
    let row: UserRow = q.fetch_optional(&mut *tx).await?.ok_or(Error::NotFound)?;
    let after = row.view(db.keys()?)?;
    // Disabling, a new password or new roles end every session at once.
    if !after.enabled
        || new_password.is_some()
        || after.roles != before.roles
        || after.customer_id != before.customer_id
    {
        super::sessions::revoke_user(&mut tx, id, ctx.now).await?;
        audit::record(
            &mut tx,
            ctx,
            "sessions_revoked",
            "user",
            Some(id.0),
            None,
            None,
        )
        .await?;
    }
    if after.roles != before.roles || after.enabled != before.enabled {
        audit::record(
            &mut tx,
            ctx,
            "permission_change",
            "user",
            Some(id.0),
            Some(&serde_json::json!({"roles": before.roles, "enabled": before.enabled})),
            Some(&serde_json::json!({"roles": after.roles, "enabled": after.enabled})),
        )
        .await?;
    }
    audit::record(
        &mut tx,
        ctx,
        "update",
        "user",
        Some(id.0),
        Some(&audit::private_snapshot(db.keys()?, "user", &before)),
        Some(&audit::private_snapshot(db.keys()?, "user", &after)),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// A user changes their own notification settings: the language of their messages and the
/// channels they hear on. Any signed-in user may, whatever their roles; nothing else of the
/// account changes (roles, access, the Telegram chat are the administrators'). Audited as
/// an update of the user.
pub async fn update_own_preferences(
    db: &Db,
    ctx: &Ctx,
    expected: super::Expected,
    lang: &str,
    notify_email: bool,
    notify_telegram: bool,
) -> Result<User> {
    let me = ctx.actor.user_id;
    if !matches!(lang, "ru" | "en") {
        return Err(Error::Validation(vec![FieldError::new(
            "lang",
            "unknown_value",
            "ru or en",
        )]));
    }
    let keys = db.keys()?;
    let mut tx = db.begin().await?;
    let mut q = Q::new(&format!("SELECT {COLS} FROM users WHERE id = "));
    q.bind(me.0).push(tx_lock(db));
    let row: UserRow = q.fetch_optional(&mut *tx).await?.ok_or(Error::NotFound)?;
    super::check_version(expected, row.version)?;
    let before = row.view(keys)?;
    let mut q = Q::new("UPDATE users SET lang = ");
    q.bind(lang.to_owned())
        .push(", notify_email = ")
        .bind(i64::from(notify_email))
        .push(", notify_telegram = ")
        .bind(i64::from(notify_telegram))
        .push(", updated_at = ")
        .bind(db_ts(ctx.now))
        .push(", version = version + 1 WHERE id = ")
        .bind(me.0)
        .push(&format!(" RETURNING {COLS}"));
    let row: UserRow = q.fetch_optional(&mut *tx).await?.ok_or(Error::NotFound)?;
    let after = row.view(keys)?;
    audit::record(
        &mut tx,
        ctx,
        "update",
        "user",
        Some(me.0),
        Some(&audit::private_snapshot(keys, "user", &before)),
        Some(&audit::private_snapshot(keys, "user", &after)),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

fn tx_lock(db: &Db) -> &'static str {
    db.backend().for_update()
}

/// Hashes off the async threads: Argon2id takes tens of milliseconds by design.
/// An administrator resets a user's second factor (a lost phone): it is set up again at the
/// next sign-in, and every session of the user ends.
pub async fn reset_second_factor(db: &Db, ctx: &Ctx, id: UserId) -> Result<()> {
    scope_check(ctx, Action::Update)?;
    let mut tx = db.begin().await?;
    if super::count_where(&mut tx, "users", "id", id.0).await? == 0 {
        return Err(Error::NotFound);
    }
    super::mfa::disable(&mut tx, id).await?;
    super::sessions::revoke_user(&mut tx, id, ctx.now).await?;
    super::audit::record(&mut tx, ctx, "mfa_reset", "user", Some(id.0), None, None).await?;
    tx.commit().await?;
    Ok(())
}

/// A user changes their own password: the current one must match, the new one must meet the
/// policy. Every other session of theirs ends; the one in use goes on.
pub async fn change_own_password(db: &Db, ctx: &Ctx, current: &str, new: &str) -> Result<()> {
    let me = ctx.actor.user_id;
    let row = find(db, me).await?.ok_or(Error::NotFound)?;
    let (given, stored) = (current.to_owned(), row.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || crate::auth::verify_password(&given, &stored))
        .await
        .map_err(|e| Error::Internal(e.into()))?;
    if !ok {
        return Err(Error::field(
            "current_password",
            "wrong_password",
            "the current password is wrong",
        ));
    }
    crate::auth::check_new_password(new, &row.email).map_err(|e| Error::Validation(vec![e]))?;
    let hash = hash_blocking(new.to_owned()).await?;
    let mut tx = db.begin().await?;
    let mut q = Q::new("UPDATE users SET password_hash = ");
    q.bind(hash)
        .push(", version = version + 1, updated_at = ")
        .bind(super::db_ts(ctx.now))
        .push(" WHERE id = ")
        .bind(me.0);
    q.execute(&mut *tx).await?;
    super::sessions::revoke_user_except(&mut tx, me, Some(&ctx.session), ctx.now).await?;
    super::audit::record(
        &mut tx,
        ctx,
        "password_changed",
        "user",
        Some(me.0),
        None,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn hash_blocking(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || crate::auth::hash_password(&password))
        .await
        .map_err(|e| Error::Internal(e.into()))?
        .map_err(Error::Internal)
}

/// Checks that a user exists, is enabled and holds the engineer role.
pub async fn ensure_engineer(tx: &mut Tx, field: &str, id: UserId) -> Result<()> {
    let mut q = Q::new("SELECT roles FROM users WHERE enabled = 1 AND id = ");
    q.bind(id.0);
    let roles: Option<String> = q
        .fetch_optional::<(String,), _>(&mut **tx)
        .await?
        .map(|r| r.0);
    match roles {
        Some(r) if access::roles_from_db(&r).contains(&Role::Engineer) => Ok(()),
        _ => Err(Error::field(
            field,
            "not_an_engineer",
            "choose an active user with the engineer role",
        )),
    }
}

/// Checks that a user exists, is enabled and holds one of `roles`.
pub async fn ensure_role(
    tx: &mut Tx,
    field: &str,
    id: UserId,
    roles: &[Role],
    what: &str,
) -> Result<()> {
    let mut q = Q::new("SELECT roles FROM users WHERE enabled = 1 AND id = ");
    q.bind(id.0);
    let found: Option<String> = q
        .fetch_optional::<(String,), _>(&mut **tx)
        .await?
        .map(|r| r.0);
    match found {
        Some(r) if access::roles_from_db(&r).iter().any(|x| roles.contains(x)) => Ok(()),
        _ => Err(Error::field(
            field,
            "wrong_role",
            format!("choose an active {what}"),
        )),
    }
}
