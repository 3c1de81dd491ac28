//! Benchmark data: fills a freshly migrated, empty database with realistic, reproducible data.
//!
//! **For benchmarks only.** The seeder writes rows directly with multi-row `INSERT … VALUES
//! (…), (…)` statements in batched transactions, bypassing the store's validation, the audit log
//! and the request history, so that a hundred thousand requests load in seconds. Never run it
//! against a database that holds real data: it refuses a database that is not empty.
//!
//! What it creates, always the same for the same arguments and `now` (no randomness):
//!
//! - `customers` customers with valid 10-digit INNs, each with one service object, one active
//!   project containing that object, and one client user;
//! - [`ENGINEERS`] engineers, each object linked to one of them;
//! - the administrator [`ADMIN_EMAIL`]; every seeded user signs in with [`BENCH_PASSWORD`];
//! - `requests` service requests spread round-robin over the customers and evenly over the
//!   [`SPAN_DAYS`] days before `now` (ids grow with time), with mixed types, sources and
//!   statuses (about 20 % open, 15 % in progress, 15 % completed, 45 % closed, 5 % cancelled),
//!   numbered `SR-YYYY-NNNNN` per year of creation. The `number_sequences` rows are set to the
//!   last number used, so requests created later continue without collisions.
//!
//! No service reports, comments, history entries or audit entries are written: completed and
//! closed requests therefore have no report, which the API itself would not allow.

use crate::domain::access::{Role, roles_to_db};
use crate::domain::ids::{CustomerId, UserId};
use crate::domain::project::{ObjectKind, ProjectStatus};
use crate::domain::request::{RequestType, SlaPolicy, Source, Status, request_number};
use crate::domain::time::date_to_db;
use crate::domain::values::search_key;
use crate::store::{Db, Q, db_ts};
use anyhow::{Context, bail};
use chrono::{DateTime, Datelike, Duration, Utc};
use sqlx::any::AnyRow;
use std::collections::{BTreeMap, HashMap};

/// The password of every seeded user.
pub const BENCH_PASSWORD: &str = "bench-password-123";
/// The seeded administrator.
pub const ADMIN_EMAIL: &str = "bench-admin@ferum.local";
/// How many engineers are seeded.
pub const ENGINEERS: usize = 10;
/// Requests are spread over this many days before `now`.
pub const SPAN_DAYS: i64 = 180;
/// Customers, users, objects and projects are created this many days before the first request.
const SETUP_LEAD_DAYS: i64 = 30;
/// Rows per transaction.
const ROWS_PER_TX: usize = 1000;
/// Bound parameters per statement, at most (well below SQLite's limit of 32,766). SQLite looks
/// `$n` names up linearly when preparing and binding, so a statement costs the square of its
/// parameters: 23,000 per statement made seeding ten times slower than about a thousand, which
/// still saves most round trips on PostgreSQL.
const MAX_PARAMS: usize = 1_000;
/// INNs are `77` + a 7-digit serial + the check digit.
const MAX_CUSTOMERS: usize = 9_999_999;

/// The e-mail of the client user of the `n`-th customer (1-based).
pub fn client_email(n: usize) -> String {
    format!("bench-client-{n:05}@ferum.local")
}

/// The e-mail of the `n`-th engineer (1-based).
pub fn engineer_email(n: usize) -> String {
    format!("bench-engineer-{n:02}@ferum.local")
}

/// What [`seed`] created, and whom to sign in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedSummary {
    pub customers: usize,
    pub objects: usize,
    pub projects: usize,
    /// Every seeded user: the administrator, the engineers and the client users.
    pub users: usize,
    pub engineers: usize,
    pub client_users: usize,
    pub requests: usize,
    /// `(year, last)` of each `SR` number sequence written.
    pub sequences: Vec<(i32, i64)>,
    pub admin_id: UserId,
    pub admin_email: String,
    /// The client user of the first customer.
    pub client_id: UserId,
    pub client_email: String,
    pub client_customer_id: CustomerId,
    /// The password of every seeded user ([`BENCH_PASSWORD`]).
    pub password: &'static str,
}

impl std::fmt::Display for SeedSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "seeded {} customers, {} objects, {} projects, {} users ({} engineers, {} clients, 1 admin), {} requests",
            self.customers,
            self.objects,
            self.projects,
            self.users,
            self.engineers,
            self.client_users,
            self.requests
        )?;
        for (year, last) in &self.sequences {
            writeln!(f, "number sequence SR {year}: last = {last}")?;
        }
        writeln!(f, "admin:  {} (id {})", self.admin_email, self.admin_id)?;
        writeln!(
            f,
            "client: {} (id {}, customer {})",
            self.client_email, self.client_id, self.client_customer_id
        )?;
        write!(f, "password of every seeded user: {}", self.password)
    }
}

/// Fills an already migrated, empty database with benchmark data; see the module documentation.
/// `now` is the moment the data is seeded "at": every timestamp lies before it.
pub async fn seed(
    db: &Db,
    customers: usize,
    requests: usize,
    now: DateTime<Utc>,
) -> anyhow::Result<SeedSummary> {
    if customers == 0 {
        bail!("bench-seed needs at least one customer");
    }
    if customers > MAX_CUSTOMERS {
        bail!("bench-seed creates at most {MAX_CUSTOMERS} customers");
    }
    ensure_empty(db).await?;
    let setup_at = now - Duration::days(SPAN_DAYS + SETUP_LEAD_DAYS);
    let setup = db_ts(setup_at);
    let hash = tokio::task::spawn_blocking(|| crate::auth::hash_password(BENCH_PASSWORD))
        .await
        .context("hashing the bench password")??;

    // The administrator first, so that it creates everything else (id 1 on a fresh database).
    let admin: Vec<(i64, String)> = insert_returning(
        db,
        "users",
        USER_COLS,
        "id, email",
        [user_row(
            ADMIN_EMAIL.to_owned(),
            "Администратор (бенчмарк)".to_owned(),
            Role::Admin,
            None,
            &hash,
            &setup,
            None,
        )],
    )
    .await?;
    let admin_id = admin
        .first()
        .context("the admin insert returned nothing")?
        .0;

    let inserted: Vec<(i64, String)> = insert_returning(
        db,
        "customers",
        &[
            "name",
            "inn",
            "address",
            "contact_name",
            "contact_email",
            "contact_phone",
            "search",
            "created_at",
            "updated_at",
            "created_by",
            "version",
        ],
        "id, inn",
        (1..=customers).map(|n| {
            let c = customer(n);
            let search = search_key(&[&c.name, &c.inn, &c.address, &c.contact_name]);
            vec![
                V::Text(c.name),
                V::Text(c.inn),
                V::Text(c.address),
                V::Text(c.contact_name),
                V::Text(c.contact_email),
                V::Text(c.contact_phone),
                V::Text(search),
                V::Text(setup.clone()),
                V::Text(setup.clone()),
                V::Int(admin_id),
                V::Lit("1"),
            ]
        }),
    )
    .await?;
    let by_inn: HashMap<String, i64> = inserted.into_iter().map(|(id, inn)| (inn, id)).collect();
    let customer_ids = (1..=customers)
        .map(|n| by_inn.get(&inn(n)).copied())
        .collect::<Option<Vec<i64>>>()
        .context("a seeded customer is missing")?;

    let inserted: Vec<(i64, String)> = insert_returning(
        db,
        "users",
        USER_COLS,
        "id, email",
        (1..=ENGINEERS)
            .map(|n| {
                user_row(
                    engineer_email(n),
                    format!("Инженер {}", ENGINEER_NAMES[(n - 1) % ENGINEER_NAMES.len()]),
                    Role::Engineer,
                    None,
                    &hash,
                    &setup,
                    Some(admin_id),
                )
            })
            .chain((1..=customers).map(|n| {
                user_row(
                    client_email(n),
                    customer(n).contact_name,
                    Role::Client,
                    Some(customer_ids[n - 1]),
                    &hash,
                    &setup,
                    Some(admin_id),
                )
            })),
    )
    .await?;
    let by_email: HashMap<String, i64> = inserted.into_iter().map(|(id, e)| (e, id)).collect();
    let engineer_ids = (1..=ENGINEERS)
        .map(|n| by_email.get(&engineer_email(n)).copied())
        .collect::<Option<Vec<i64>>>()
        .context("a seeded engineer is missing")?;
    let client_ids = (1..=customers)
        .map(|n| by_email.get(&client_email(n)).copied())
        .collect::<Option<Vec<i64>>>()
        .context("a seeded client user is missing")?;

    let inserted: Vec<(i64, i64)> = insert_returning(
        db,
        "service_objects",
        &[
            "customer_id",
            "name",
            "address",
            "kind",
            "serial_number",
            "notes",
            "archived",
            "search",
            "created_at",
            "updated_at",
            "created_by",
            "version",
        ],
        "id, customer_id",
        (1..=customers).map(|n| {
            let o = object(n);
            let search = search_key(&[&o.name, &o.address, &o.serial]);
            vec![
                V::Int(customer_ids[n - 1]),
                V::Text(o.name),
                V::Text(o.address),
                V::Text(o.kind.as_str().to_owned()),
                V::OptText(Some(o.serial)),
                V::Text(String::new()),
                V::Lit("0"),
                V::Text(search),
                V::Text(setup.clone()),
                V::Text(setup.clone()),
                V::Int(admin_id),
                V::Lit("1"),
            ]
        }),
    )
    .await?;
    let by_customer: HashMap<i64, i64> = inserted.into_iter().map(|(id, c)| (c, id)).collect();
    let object_ids = customer_ids
        .iter()
        .map(|c| by_customer.get(c).copied())
        .collect::<Option<Vec<i64>>>()
        .context("a seeded object is missing")?;

    insert(
        db,
        "object_engineers",
        &["object_id", "user_id"],
        (0..customers).map(|i| {
            vec![
                V::Int(object_ids[i]),
                V::Int(engineer_ids[home_engineer(i)]),
            ]
        }),
    )
    .await?;

    let start_date = setup_at.date_naive();
    let end_date = start_date + Duration::days(2 * 365);
    let inserted: Vec<(i64, i64)> = insert_returning(
        db,
        "projects",
        &[
            "customer_id",
            "name",
            "start_date",
            "end_date",
            "manager_id",
            "contract_value",
            "status",
            "search",
            "created_at",
            "updated_at",
            "created_by",
            "version",
        ],
        "id, customer_id",
        (1..=customers).map(|n| {
            let name = format!("Договор ТО № {n:05}/{}", start_date.year());
            let search = search_key(&[&name]);
            vec![
                V::Int(customer_ids[n - 1]),
                V::Text(name),
                V::Text(date_to_db(start_date)),
                V::OptText(Some(date_to_db(end_date))),
                V::OptInt(None),
                // 120,000.00 to 610,000.00 roubles, in kopecks.
                V::Int((120_000 + (n as i64 % 50) * 10_000) * 100),
                V::Text(ProjectStatus::Active.as_str().to_owned()),
                V::Text(search),
                V::Text(setup.clone()),
                V::Text(setup.clone()),
                V::Int(admin_id),
                V::Lit("1"),
            ]
        }),
    )
    .await?;
    let by_customer: HashMap<i64, i64> = inserted.into_iter().map(|(id, c)| (c, id)).collect();
    let project_ids = customer_ids
        .iter()
        .map(|c| by_customer.get(c).copied())
        .collect::<Option<Vec<i64>>>()
        .context("a seeded project is missing")?;

    insert(
        db,
        "project_objects",
        &["project_id", "object_id", "scope"],
        (0..customers).map(|i| {
            vec![
                V::Int(project_ids[i]),
                V::Int(object_ids[i]),
                V::Text("Техническое обслуживание по графику".to_owned()),
            ]
        }),
    )
    .await?;

    let sla = SlaPolicy::default();
    let mut last_seq: BTreeMap<i32, i64> = BTreeMap::new();
    insert(
        db,
        "service_requests",
        &[
            "number",
            "type",
            "subject",
            "description",
            "customer_id",
            "project_id",
            "object_id",
            "assigned_to",
            "source",
            "status",
            "reported_at",
            "planned_start",
            "planned_end",
            "actual_start",
            "actual_end",
            "completed_at",
            "assign_by",
            "close_by",
            "search",
            "created_at",
            "updated_at",
            "created_by",
            "version",
        ],
        (0..requests).map(|i| {
            let p = plan_request(i, requests, customers, now);
            let year = p.created_at.year();
            let seq = last_seq.entry(year).or_insert(0);
            *seq += 1;
            let number = request_number(year, *seq);
            let (assign_by, close_by) = sla.deadlines(p.kind, p.created_at);
            let search = search_key(&[&number, p.subject, &p.description]);
            let created_by = if p.by_client {
                client_ids[p.customer]
            } else {
                admin_id
            };
            vec![
                V::Text(number),
                V::Text(p.kind.as_str().to_owned()),
                V::Text(p.subject.to_owned()),
                V::Text(p.description),
                V::Int(customer_ids[p.customer]),
                V::OptInt(Some(project_ids[p.customer])),
                V::OptInt(Some(object_ids[p.customer])),
                V::OptInt(p.engineer.map(|e| engineer_ids[e])),
                V::Text(p.source.as_str().to_owned()),
                V::Text(p.status.as_str().to_owned()),
                V::OptText(Some(db_ts(p.created_at))),
                V::OptText(p.planned.map(|(s, _)| db_ts(s))),
                V::OptText(p.planned.map(|(_, e)| db_ts(e))),
                V::OptText(p.actual_start.map(db_ts)),
                V::OptText(p.actual_end.map(db_ts)),
                V::OptText(p.actual_end.map(db_ts)),
                V::Text(db_ts(assign_by)),
                V::Text(db_ts(close_by)),
                V::Text(search),
                V::Text(db_ts(p.created_at)),
                V::Text(db_ts(p.updated_at)),
                V::OptInt(Some(created_by)),
                V::Int(p.version),
            ]
        }),
    )
    .await?;

    let sequences: Vec<(i32, i64)> = last_seq.into_iter().collect();
    if !sequences.is_empty() {
        let mut tx = db.begin().await?;
        for (year, last) in &sequences {
            let mut q = Q::new("INSERT INTO number_sequences (kind, year, last) VALUES ('SR', ");
            q.bind(i64::from(*year))
                .push(", ")
                .bind(*last)
                .push(") ON CONFLICT (kind, year) DO UPDATE SET last = excluded.last");
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }
    // Fresh planner statistics, as a DBA would gather after a bulk load.
    sqlx::query("ANALYZE").execute(db.pool()).await?;

    Ok(SeedSummary {
        customers,
        objects: customers,
        projects: customers,
        users: 1 + ENGINEERS + customers,
        engineers: ENGINEERS,
        client_users: customers,
        requests,
        sequences,
        admin_id: UserId(admin_id),
        admin_email: ADMIN_EMAIL.to_owned(),
        client_id: UserId(client_ids[0]),
        client_email: client_email(1),
        client_customer_id: CustomerId(customer_ids[0]),
        password: BENCH_PASSWORD,
    })
}

/// Refuses a database that already holds data: the seeder is for fresh benchmark databases.
async fn ensure_empty(db: &Db) -> anyhow::Result<()> {
    for table in [
        "users",
        "customers",
        "service_objects",
        "projects",
        "service_requests",
    ] {
        let n: i64 = Q::new(&format!("SELECT COUNT(*) FROM {table}"))
            .scalar(db.pool())
            .await
            .with_context(|| format!("counting {table}; is the database migrated?"))?;
        if n > 0 {
            bail!("bench-seed needs a freshly migrated, empty database, but {table} has {n} rows");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- batched inserts

/// One value of a row: bound as a parameter, or `Lit`eral SQL for constants.
enum V {
    Int(i64),
    OptInt(Option<i64>),
    Text(String),
    OptText(Option<String>),
    Lit(&'static str),
}

/// Rows per multi-row statement for a table of `ncols` columns.
fn rows_per_statement(ncols: usize) -> usize {
    (MAX_PARAMS / ncols.max(1)).clamp(1, ROWS_PER_TX)
}

/// `INSERT INTO table (cols) VALUES (…), (…) [RETURNING …]` with `$n` placeholders.
fn statement(table: &str, cols: &[&str], rows: Vec<Vec<V>>, returning: Option<&str>) -> Q {
    let mut q = Q::new(&format!(
        "INSERT INTO {table} ({}) VALUES ",
        cols.join(", ")
    ));
    for (r, row) in rows.into_iter().enumerate() {
        assert_eq!(row.len(), cols.len(), "a {table} row has the wrong width");
        q.push(if r == 0 { "(" } else { ", (" });
        for (c, v) in row.into_iter().enumerate() {
            if c > 0 {
                q.push(", ");
            }
            match v {
                V::Int(x) => q.bind(x),
                V::OptInt(x) => q.bind(x),
                V::Text(x) => q.bind(x),
                V::OptText(x) => q.bind(x),
                V::Lit(sql) => q.push(sql),
            };
        }
        q.push(")");
    }
    if let Some(r) = returning {
        q.push(" RETURNING ").push(r);
    }
    q
}

/// Inserts rows: [`ROWS_PER_TX`] rows per transaction, in multi-row statements of at most
/// [`MAX_PARAMS`] parameters. Returns the number of rows.
async fn insert(
    db: &Db,
    table: &str,
    cols: &[&str],
    rows: impl IntoIterator<Item = Vec<V>>,
) -> anyhow::Result<usize> {
    let per = rows_per_statement(cols.len());
    let mut rows = rows.into_iter().peekable();
    let mut total = 0;
    while rows.peek().is_some() {
        let mut tx = db.begin().await?;
        let mut in_tx = 0;
        while in_tx < ROWS_PER_TX {
            let batch: Vec<Vec<V>> = rows.by_ref().take(per.min(ROWS_PER_TX - in_tx)).collect();
            if batch.is_empty() {
                break;
            }
            in_tx += batch.len();
            statement(table, cols, batch, None)
                .execute(&mut *tx)
                .await
                .with_context(|| format!("inserting into {table}"))?;
        }
        tx.commit().await?;
        total += in_tx;
    }
    Ok(total)
}

/// Like [`insert`], returning `returning` of every row (in no particular order).
async fn insert_returning<R>(
    db: &Db,
    table: &str,
    cols: &[&str],
    returning: &str,
    rows: impl IntoIterator<Item = Vec<V>>,
) -> anyhow::Result<Vec<R>>
where
    R: for<'r> sqlx::FromRow<'r, AnyRow> + Send + Unpin,
{
    let per = rows_per_statement(cols.len());
    let mut rows = rows.into_iter().peekable();
    let mut out = Vec::new();
    while rows.peek().is_some() {
        let mut tx = db.begin().await?;
        let mut in_tx = 0;
        while in_tx < ROWS_PER_TX {
            let batch: Vec<Vec<V>> = rows.by_ref().take(per.min(ROWS_PER_TX - in_tx)).collect();
            if batch.is_empty() {
                break;
            }
            in_tx += batch.len();
            let got: Vec<R> = statement(table, cols, batch, Some(returning))
                .fetch_all(&mut *tx)
                .await
                .with_context(|| format!("inserting into {table}"))?;
            out.extend(got);
        }
        tx.commit().await?;
    }
    Ok(out)
}

// ---------------------------------------------------------------- the data

const USER_COLS: &[&str] = &[
    "email",
    "name",
    "phone",
    "roles",
    "customer_id",
    "enabled",
    "password_hash",
    "created_at",
    "updated_at",
    "created_by",
    "version",
];

fn user_row(
    email: String,
    name: String,
    role: Role,
    customer: Option<i64>,
    hash: &str,
    at: &str,
    by: Option<i64>,
) -> Vec<V> {
    vec![
        V::Text(email),
        V::Text(name),
        V::Text(String::new()),
        V::Text(roles_to_db(&[role])),
        V::OptInt(customer),
        V::Lit("1"),
        V::Text(hash.to_owned()),
        V::Text(at.to_owned()),
        V::Text(at.to_owned()),
        V::OptInt(by),
        V::Lit("1"),
    ]
}

const FORMS: &[&str] = &["ООО", "АО", "ООО", "ПАО", "ООО"];
const COMPANY_WORDS: &[&str] = &[
    "Альфа",
    "Вектор",
    "Меридиан",
    "Гранит",
    "Восход",
    "Техноком",
    "Прогресс",
    "Орион",
    "Ёлочка",
    "Северный терминал",
    "Стройинвест",
    "Агроторг",
];
const CITIES: &[&str] = &[
    "Москва",
    "Санкт-Петербург",
    "Казань",
    "Екатеринбург",
    "Новосибирск",
    "Нижний Новгород",
];
const STREETS: &[&str] = &[
    "Ленина",
    "Тверская",
    "Садовая",
    "Мира",
    "Профсоюзная",
    "Гагарина",
    "Лесная",
    "Школьная",
    "Заводская",
];
const PEOPLE: &[&str] = &[
    "Иванов Иван",
    "Петрова Анна",
    "Смирнов Алексей",
    "Кузнецова Ольга",
    "Соколов Дмитрий",
    "Попова Елена",
    "Лебедев Сергей",
    "Фёдорова Мария",
    "Морозов Артём",
    "Волкова Наталья",
];
const ENGINEER_NAMES: &[&str] = &[
    "Андреев П. С.",
    "Борисов К. А.",
    "Васильев Д. И.",
    "Григорьев О. Н.",
    "Дмитриев С. В.",
    "Егоров А. М.",
    "Жуков Р. Р.",
    "Зайцев В. П.",
    "Ильин Н. Г.",
    "Королёв М. Ю.",
];

struct CustomerSeed {
    name: String,
    inn: String,
    address: String,
    contact_name: String,
    contact_email: String,
    contact_phone: String,
}

/// The `n`-th customer (1-based).
fn customer(n: usize) -> CustomerSeed {
    CustomerSeed {
        name: format!(
            "{} «{} {n:05}»",
            FORMS[n % FORMS.len()],
            COMPANY_WORDS[n % COMPANY_WORDS.len()]
        ),
        inn: inn(n),
        address: address(n),
        contact_name: PEOPLE[n % PEOPLE.len()].to_owned(),
        contact_email: format!("office{n:05}@client.example"),
        contact_phone: format!(
            "+7 (495) {:03}-{:02}-{:02}",
            100 + n / 10_000 % 900,
            n / 100 % 100,
            n % 100
        ),
    }
}

fn address(n: usize) -> String {
    format!(
        "г. {}, ул. {}, д. {}",
        CITIES[n % CITIES.len()],
        STREETS[n / CITIES.len() % STREETS.len()],
        1 + n % 120
    )
}

/// A valid, unique 10-digit organisation INN for the `n`-th customer: `77`, the serial `n` in
/// seven digits, and the check digit (weights 2, 4, 10, 3, 5, 9, 4, 6, 8; sum mod 11 mod 10).
fn inn(n: usize) -> String {
    const WEIGHTS: [u32; 9] = [2, 4, 10, 3, 5, 9, 4, 6, 8];
    let body = format!("77{n:07}");
    let sum: u32 = body
        .bytes()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    format!("{body}{}", sum % 11 % 10)
}

struct ObjectSeed {
    name: String,
    address: String,
    kind: ObjectKind,
    serial: String,
}

/// The object of the `n`-th customer (1-based).
fn object(n: usize) -> ObjectSeed {
    let kind = ObjectKind::ALL[n % ObjectKind::ALL.len()];
    let label = match kind {
        ObjectKind::FireAlarm => "Пожарная сигнализация",
        ObjectKind::Sprinkler => "Спринклерная система",
        ObjectKind::Extinguishers => "Огнетушители",
        ObjectKind::SmokeExtraction => "Система дымоудаления",
        ObjectKind::Other => "Оборудование СОУЭ",
    };
    ObjectSeed {
        name: format!("{label}, объект {n:05}"),
        address: format!("{}, корп. {}", address(n), 1 + n % 4),
        kind,
        serial: format!("BENCH-{n:07}"),
    }
}

/// The engineer (0-based) linked to the object of customer `i` (0-based).
fn home_engineer(i: usize) -> usize {
    i % ENGINEERS
}

const MAINTENANCE_SUBJECTS: &[&str] = &[
    "Плановое ТО системы пожарной сигнализации",
    "Ежеквартальная проверка огнетушителей",
    "Техническое обслуживание спринклерной системы",
    "Проверка работоспособности системы дымоудаления",
    "Замена извещателей дыма",
    "Перезарядка огнетушителей",
    "Проверка системы оповещения и управления эвакуацией",
];
const EMERGENCY_SUBJECTS: &[&str] = &[
    "Ложное срабатывание пожарной сигнализации",
    "Неисправность приёмно-контрольного прибора",
    "Падение давления в спринклерной системе",
    "Не работает вентилятор дымоудаления",
    "Сигнал «Неисправность» на пульте охраны",
];
const NOTES: &[&str] = &[
    "Доступ на объект через охрану, пропуск заказан.",
    "Контактное лицо на месте с 9:00 до 18:00.",
    "Требуется акт выполненных работ.",
    "Просьба согласовать время визита по телефону.",
    "",
];
const MAINTENANCE_SOURCES: &[Source] = &[
    Source::Web,
    Source::Phone,
    Source::Email,
    Source::Api,
    Source::Schedule,
];
const EMERGENCY_SOURCES: &[Source] = &[Source::Phone, Source::Web, Source::Email, Source::Bot];

/// One request to seed, decided from its index alone.
#[derive(Debug)]
struct RequestPlan {
    /// Customer index (0-based); the request uses that customer's object and project.
    customer: usize,
    /// Engineer index (0-based).
    engineer: Option<usize>,
    /// Opened by the customer's client user through the portal (else by the admin).
    by_client: bool,
    kind: RequestType,
    source: Source,
    status: Status,
    subject: &'static str,
    description: String,
    created_at: DateTime<Utc>,
    planned: Option<(DateTime<Utc>, DateTime<Utc>)>,
    actual_start: Option<DateTime<Utc>>,
    /// Also `completed_at`.
    actual_end: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
    version: i64,
}

/// SplitMix64: a fixed, well-mixed hash of the index, so the data is the same on every run.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Picks from `items` with bits of `h` starting at `shift`.
fn pick<T: Copy>(items: &[T], h: u64, shift: u32) -> T {
    items[((h >> shift) % items.len() as u64) as usize]
}

/// The `i`-th of `total` requests (0-based) over `customers` customers.
fn plan_request(i: usize, total: usize, customers: usize, now: DateTime<Utc>) -> RequestPlan {
    let h = mix(i as u64);
    let customer = i % customers;
    let span = Duration::days(SPAN_DAYS)
        .num_microseconds()
        .expect("the span fits in microseconds");
    let ago = (i128::from(span) * (total - i) as i128 / total as i128) as i64;
    let created_at = now - Duration::microseconds(ago);
    let cap = |t: DateTime<Utc>| t.min(now);

    let status = match h % 100 {
        0..20 => Status::Open,
        20..35 => Status::InProgress,
        35..50 => Status::Completed,
        50..95 => Status::Closed,
        _ => Status::Cancelled,
    };
    let kind = if (h >> 8) % 100 < 15 {
        RequestType::Emergency
    } else {
        RequestType::Maintenance
    };
    let by_client = (h >> 16) % 100 < 30;
    let source = match (by_client, kind) {
        (true, _) => Source::Portal,
        (false, RequestType::Maintenance) => pick(MAINTENANCE_SOURCES, h, 24),
        (false, RequestType::Emergency) => pick(EMERGENCY_SOURCES, h, 24),
    };
    let subject = match kind {
        RequestType::Maintenance => pick(MAINTENANCE_SUBJECTS, h, 28),
        RequestType::Emergency => pick(EMERGENCY_SUBJECTS, h, 28),
    };
    let note = pick(NOTES, h, 36);
    let description = if note.is_empty() {
        String::new()
    } else {
        format!("{subject}. {note}")
    };
    let assigned = match status {
        Status::Open => (h >> 32).is_multiple_of(2),
        Status::Cancelled => (h >> 32).is_multiple_of(3),
        _ => true,
    };
    let engineer = assigned.then(|| {
        if (h >> 40).is_multiple_of(5) {
            (home_engineer(customer) + 1 + ((h >> 44) as usize % (ENGINEERS - 1))) % ENGINEERS
        } else {
            home_engineer(customer)
        }
    });
    let planned = (kind == RequestType::Maintenance
        && (source == Source::Schedule || (h >> 48).is_multiple_of(4)))
    .then(|| {
        let start = created_at + Duration::days(1 + (h >> 50) as i64 % 5);
        (start, start + Duration::hours(4))
    });
    let start_delay = match kind {
        RequestType::Maintenance => Duration::minutes(30 + (h >> 52) as i64 % (24 * 60)),
        RequestType::Emergency => Duration::minutes(10 + (h >> 52) as i64 % 90),
    };
    let work = Duration::minutes(60 + (h >> 56) as i64 % (6 * 60));
    let started = matches!(
        status,
        Status::InProgress | Status::Completed | Status::Closed
    );
    let actual_start = started.then(|| cap(created_at + start_delay));
    let actual_end = match (status, actual_start) {
        (Status::Completed | Status::Closed, Some(s)) => Some(cap(s + work)),
        _ => None,
    };
    let (updated_at, version) = match status {
        Status::Open => (created_at, 1),
        Status::InProgress => (actual_start.unwrap_or(created_at), 2),
        Status::Completed => (actual_end.unwrap_or(created_at), 3),
        Status::Closed => (cap(actual_end.unwrap_or(created_at) + Duration::days(1)), 4),
        Status::Cancelled => (cap(created_at + Duration::hours(2)), 2),
    };
    RequestPlan {
        customer,
        engineer,
        by_client,
        kind,
        source,
        status,
        subject,
        description,
        created_at,
        planned,
        actual_start,
        actual_end,
        updated_at,
        version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::values::Inn;
    use chrono::TimeZone;
    use std::collections::HashSet;

    #[test]
    fn inns_are_valid_and_unique() {
        let mut seen = HashSet::new();
        for n in (1..=5000).chain([99_999, 1_000_000, MAX_CUSTOMERS]) {
            let s = inn(n);
            assert_eq!(s.len(), 10, "{s}");
            assert!(Inn::parse("inn", &s).is_ok(), "invalid INN {s} for {n}");
            assert!(seen.insert(s));
        }
        // A known-good INN: 7707083893 (Sberbank).
        assert!(Inn::parse("inn", "7707083893").is_ok());
    }

    #[test]
    fn statements_stay_under_the_parameter_limit() {
        for ncols in [2, 3, USER_COLS.len(), 12, 23, 40] {
            let per = rows_per_statement(ncols);
            assert!((1..=ROWS_PER_TX).contains(&per));
            assert!(per * ncols <= MAX_PARAMS);
        }
        assert_eq!(rows_per_statement(23), 43);
    }

    #[test]
    fn seeded_people_pass_the_api_rules() {
        for n in 1..=50 {
            let c = customer(n);
            assert!(crate::domain::values::phone("p", &c.contact_phone).is_ok());
            assert!(crate::domain::values::Email::parse("e", &c.contact_email).is_ok());
            assert!(crate::domain::values::Email::parse("e", &client_email(n)).is_ok());
        }
        assert!(crate::domain::values::Email::parse("e", ADMIN_EMAIL).is_ok());
        assert!(crate::auth::check_new_password(BENCH_PASSWORD, ADMIN_EMAIL).is_ok());
    }

    #[test]
    fn request_plans_are_consistent_and_mixed() {
        let now = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
        let total = 20_000;
        let mut counts: HashMap<&str, usize> = HashMap::new();
        let mut last = None;
        for i in 0..total {
            let p = plan_request(i, total, 1000, now);
            *counts.entry(p.status.as_str()).or_default() += 1;
            assert!(p.created_at <= now && p.created_at >= now - Duration::days(SPAN_DAYS));
            assert!(
                last.is_none_or(|l| l < p.created_at),
                "creation times grow with ids"
            );
            last = Some(p.created_at);
            assert!(p.updated_at >= p.created_at && p.updated_at <= now);
            if !matches!(p.status, Status::Open | Status::Cancelled) {
                assert!(p.engineer.is_some(), "{:?} needs an engineer", p.status);
                assert!(
                    p.actual_start
                        .is_some_and(|s| s >= p.created_at && s <= now)
                );
            }
            if matches!(p.status, Status::Completed | Status::Closed) {
                assert!(p.actual_end >= p.actual_start && p.actual_end.is_some());
            } else {
                assert!(p.actual_end.is_none());
            }
            assert_eq!(p.by_client, p.source == Source::Portal);
            assert!(p.engineer.is_none_or(|e| e < ENGINEERS));
            assert_eq!(p.customer, i % 1000);
        }
        let share = |s: &str| counts.get(s).copied().unwrap_or(0) * 100 / total;
        assert!((17..=23).contains(&share("open")), "{counts:?}");
        assert!((40..=50).contains(&share("closed")), "{counts:?}");
        assert!(counts.len() == Status::ALL.len(), "{counts:?}");
    }
}
