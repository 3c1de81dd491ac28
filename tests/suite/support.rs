//! The test harness: a real router on a fresh database (SQLite file or a new PostgreSQL
//! database), users of every role, and helpers to drive the API in-process.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use chrono::{DateTime, TimeZone, Utc};
use ferum::auth::TokenKeys;
use ferum::clock::Clock;
use ferum::domain::access::Role;
use ferum::domain::ids::{CustomerId, UserId};
use ferum::domain::request::SlaPolicy;
use ferum::store::{DatabaseUrl, Db, migrate, users};
use ferum::web::{AppState, WebConfig, router};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use tower::ServiceExt;

/// Runs each test body once on SQLite and once on PostgreSQL (when configured), as two tests.
macro_rules! both {
    ($(async fn $name:ident($app:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                #[allow(unused_mut)]
                let mut $app = $crate::support::TestApp::sqlite().await;
                $body
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                #[allow(unused_mut)]
                let Some(mut $app) = $crate::support::TestApp::postgres().await else { return };
                $body
            }
        }
    )*};
}
pub(crate) use both;

pub const PASSWORD: &str = "correct horse battery staple";
pub const MAX_BODY: usize = 64 * 1024;

/// One Argon2id hash of [`PASSWORD`], shared by every test user.
fn password_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| ferum::auth::hash_password(PASSWORD).unwrap())
}

pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

pub struct TestApp {
    /// `FERUM_DATA_KEY` for command-line runs against this database.
    pub data_key: String,
    pub router: Router,
    pub state: AppState,
    pub db: Db,
    pub clock: Clock,
    pub keys: TokenKeys,
    pub url: DatabaseUrl,
    _guard: Guard,
}

enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Guard::Postgres { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop the test database from a fresh runtime: Drop cannot await.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    sqlx::any::install_default_drivers();
                    if let Ok(pool) = sqlx::AnyPool::connect(&admin_url).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&pool)
                                .await;
                        pool.close().await;
                    }
                });
            })
            .join();
        }
    }
}

/// A new, empty PostgreSQL database (dropped with the guard), if PostgreSQL is configured.
async fn empty_postgres() -> Option<(DatabaseUrl, Guard)> {
    let admin_url = postgres_url()?;
    let name = unique_name();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&admin_url)
        .await
        .unwrap_or_else(|e| {
            panic!("FERUM_TEST_POSTGRES_URL is set but the server is unreachable: {e}")
        });
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let mut u = url::Url::parse(&admin_url).unwrap();
    u.set_path(&format!("/{name}"));
    let url = DatabaseUrl::parse(u.as_str()).unwrap();
    Some((url, Guard::Postgres { admin_url, name }))
}

/// An empty database (no schema at all) with a data folder beside it: where a restore goes.
pub struct EmptyTarget {
    pub url: DatabaseUrl,
    /// The data folder (`data.key`) and, inside it, the stored-files folder `files`.
    pub dir: tempfile::TempDir,
    guard: Guard,
}

impl EmptyTarget {
    pub fn sqlite() -> EmptyTarget {
        let db_dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::parse(&format!(
            "sqlite://{}",
            db_dir.path().join("restored.db").display()
        ))
        .unwrap();
        EmptyTarget {
            url,
            dir: tempfile::tempdir().unwrap(),
            guard: Guard::Sqlite(db_dir),
        }
    }

    pub async fn postgres() -> Option<EmptyTarget> {
        let (url, guard) = empty_postgres().await?;
        Some(EmptyTarget {
            url,
            dir: tempfile::tempdir().unwrap(),
            guard,
        })
    }

    /// An empty target of the same kind as `url`.
    pub async fn like(url: &DatabaseUrl) -> EmptyTarget {
        match url.backend() {
            ferum::store::Backend::Sqlite => EmptyTarget::sqlite(),
            ferum::store::Backend::Postgres => EmptyTarget::postgres().await.unwrap(),
        }
    }

    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().to_path_buf()
    }

    pub fn files_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("files")
    }

    /// The app over the restored database, opened with the given personal-data keys.
    pub async fn into_app(self, data_key: &str) -> (TestApp, tempfile::TempDir) {
        let keys = ferum::crypto::DataKeys::parse(data_key).unwrap();
        (
            TestApp::start_with(self.url, self.guard, keys).await,
            self.dir,
        )
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique_name() -> String {
    format!(
        "ferum_test_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// The PostgreSQL server for tests, if configured. In CI it must be configured and reachable.
pub fn postgres_url() -> Option<String> {
    match std::env::var("FERUM_TEST_POSTGRES_URL") {
        Ok(u) if !u.trim().is_empty() => Some(u),
        _ => {
            if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
                panic!(
                    "CI is set but FERUM_TEST_POSTGRES_URL is not: the PostgreSQL suite must run in CI"
                );
            }
            None
        }
    }
}

impl TestApp {
    pub async fn sqlite() -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::parse(&format!(
            "sqlite://{}",
            dir.path().join("test.db").display()
        ))
        .unwrap();
        Self::start(url, Guard::Sqlite(dir)).await
    }

    pub async fn postgres() -> Option<TestApp> {
        let (url, guard) = empty_postgres().await?;
        Some(Self::start(url, guard).await)
    }

    async fn start(url: DatabaseUrl, guard: Guard) -> TestApp {
        Self::start_with(url, guard, ferum::crypto::DataKeys::generate()).await
    }

    async fn start_with(url: DatabaseUrl, guard: Guard, keys: ferum::crypto::DataKeys) -> TestApp {
        let db = Db::connect(&url, 8).await.unwrap();
        let clock = Clock::manual(start_time());
        migrate::run(&db, clock.now()).await.unwrap();
        let data_key = keys.to_config_string();
        ferum::store::pii::startup(&db, &keys).await.unwrap();
        let db = db.with_keys(keys);
        let keys = TokenKeys::new(
            b"test key test key test key test key!",
            chrono::Duration::hours(24),
        );
        let state = AppState {
            db: db.clone(),
            keys: keys.clone(),
            clock: clock.clone(),
            sla: SlaPolicy::default(),
            security: ferum::web::Security::default(),
            limiter: ferum::throttle::Limiter::memory(),
            limits: ferum::web::limits::Limits::default(),
            metrics: Default::default(),
            metrics_token: None,
        };
        let web = WebConfig {
            max_body_bytes: MAX_BODY,
            cors_origins: vec!["https://desk.example.ru".into()],
            https: true,
            trusted_proxies: vec![],
            timezone: None,
        };
        TestApp {
            data_key,
            router: router(state.clone(), &web),
            state,
            db,
            clock,
            keys,
            url,
            _guard: guard,
        }
    }

    /// Rebuilds the router after changing the application state (limits, limiter…).
    pub fn reconfigure(&mut self, change: impl FnOnce(&mut AppState)) {
        change(&mut self.state);
        let web = WebConfig {
            max_body_bytes: MAX_BODY,
            cors_origins: vec![],
            https: true,
            trusted_proxies: vec![],
            timezone: None,
        };
        self.router = router(self.state.clone(), &web);
    }

    /// Adds a user directly in the store and returns them with a valid token.
    pub async fn user(&self, roles: &[Role], customer: Option<i64>) -> TestUser {
        let email = format!(
            "{}-{}@example.ru",
            roles[0].as_str().replace('_', "-"),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let input = users::NewUser {
            email: email.clone(),
            name: format!("Test {}", roles[0].as_str()),
            phone: String::new(),
            roles: roles.to_vec(),
            customer_id: customer.map(CustomerId),
            password: PASSWORD.into(),
        };
        let checked = users::check_new(&input).unwrap();
        let mut tx = self.db.begin().await.unwrap();
        let row = users::insert(
            &mut tx,
            self.db.keys().unwrap(),
            &checked,
            password_hash(),
            None,
            self.clock.now(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let token = self.token_for(row.id).await;
        TestUser {
            id: row.id,
            email,
            token,
        }
    }

    /// A fresh session and access token for an existing user.
    pub async fn token_for(&self, user_id: i64) -> String {
        let mut tx = self.db.begin().await.unwrap();
        let session = ferum::store::sessions::start(
            &mut tx,
            UserId(user_id),
            "",
            self.clock.now(),
            chrono::Duration::days(30),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        self.keys
            .issue(UserId(user_id), &session.family, self.clock.now())
            .unwrap()
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        self.call_with(method, path, token, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = match body {
            Some(v) => b
                .header("content-type", "application/json")
                .body(Body::from(v.to_string()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        self.send(req).await
    }

    pub async fn send(&self, req: Request<Body>) -> Resp {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, u: &TestUser) -> Resp {
        self.call(Method::GET, path, Some(&u.token), None).await
    }

    pub async fn post(&self, path: &str, u: &TestUser, body: Value) -> Resp {
        self.call(Method::POST, path, Some(&u.token), Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, u: &TestUser, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(&u.token), Some(body))
            .await
    }

    pub async fn put(&self, path: &str, u: &TestUser, body: Value) -> Resp {
        self.call(Method::PUT, path, Some(&u.token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, u: &TestUser) -> Resp {
        self.call(Method::DELETE, path, Some(&u.token), None).await
    }

    /// Counts rows of a table straight from the database.
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(self.db.pool())
            .await
            .unwrap()
    }

    /// A small world: an admin, a customer with an object in an active project, an engineer.
    pub async fn world(&self) -> World {
        let admin = self.user(&[Role::Admin], None).await;
        let engineer = self.user(&[Role::Engineer], None).await;
        let customer = self.customer(&admin, "ООО Ромашка", next_inn()).await;
        let object = self.object(&admin, customer, "Склад №1").await;
        let project = self.project(&admin, customer, &[object], "active").await;
        World {
            admin,
            engineer,
            customer,
            object,
            project,
        }
    }

    pub async fn customer(&self, admin: &TestUser, name: &str, inn: String) -> i64 {
        let r = self
            .post(
                "/api/v1/customers",
                admin,
                json!({"name": name, "inn": inn, "contact_email": "boss@example.ru"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.id()
    }

    pub async fn object(&self, admin: &TestUser, customer: i64, name: &str) -> i64 {
        let r = self
            .post(
                "/api/v1/objects",
                admin,
                json!({"customer_id": customer, "name": name, "kind": "fire_alarm"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.id()
    }

    pub async fn project(
        &self,
        admin: &TestUser,
        customer: i64,
        objects: &[i64],
        status: &str,
    ) -> i64 {
        let objs: Vec<Value> = objects.iter().map(|o| json!({"object_id": o})).collect();
        let r = self
            .post(
                "/api/v1/projects",
                admin,
                json!({"customer_id": customer, "name": "Обслуживание 2026", "start_date": "2026-01-01", "end_date": "2026-12-31", "status": status, "objects": objs}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.id()
    }

    pub async fn request(&self, by: &TestUser, object: i64, kind: &str) -> Value {
        let r = self
            .post(
                "/api/v1/requests",
                by,
                json!({"type": kind, "subject": "Не работает датчик", "object_id": object}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body
    }

    /// Opens a request assigned to the world's engineer and starts it.
    pub async fn started_request(&self, w: &World) -> Value {
        let r = self
            .post(
                "/api/v1/requests",
                &w.admin,
                json!({"type": "maintenance", "subject": "ТО", "object_id": w.object, "assigned_to": w.engineer.id}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let id = r.id();
        let s = self
            .put(
                &format!("/api/v1/requests/{id}/status"),
                &w.engineer,
                json!({"status": "in_progress"}),
            )
            .await;
        assert_eq!(s.status, StatusCode::OK, "{}", s.body);
        s.body
    }

    /// Signs in through the API as a user would, going through the second factor (enrolling
    /// on first use) when the role needs one; returns the access token.
    pub async fn sign_in(&self, email: &str) -> String {
        let login = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email, "password": PASSWORD})),
            )
            .await;
        login.assert(StatusCode::OK);
        if login.body["token_type"] == "Bearer" {
            assert!(
                login.body["refresh_token"]
                    .as_str()
                    .is_some_and(|t| t.len() >= 32)
            );
            return login.body["access_token"].as_str().unwrap().to_owned();
        }
        let mfa = login.body["mfa_token"].as_str().unwrap().to_owned();
        if login.body["mfa_enrollment_required"] == true {
            let setup = self
                .call(Method::POST, "/api/v1/auth/2fa/setup", Some(&mfa), None)
                .await;
            setup.assert(StatusCode::OK);
            let secret = setup.body["secret"].as_str().unwrap().to_owned();
            let code = self.totp(&secret);
            let done = self
                .call(
                    Method::POST,
                    "/api/v1/auth/2fa/confirm",
                    Some(&mfa),
                    Some(json!({"code": code})),
                )
                .await;
            done.assert(StatusCode::OK);
            assert_eq!(done.body["recovery_codes"].as_array().unwrap().len(), 10);
            return done.body["tokens"]["access_token"]
                .as_str()
                .unwrap()
                .to_owned();
        }
        panic!("this helper enrolls new users only: {}", login.body);
    }

    /// The current TOTP code of a secret, by the app's clock.
    pub fn totp(&self, secret: &str) -> String {
        ferum::domain::totp::code_at(secret, self.clock.now().timestamp()).unwrap()
    }

    /// A customer, object and request made by `admin`; returns the request id.
    pub async fn request_on_new_world(&self, admin: &TestUser) -> i64 {
        let c = self.customer(admin, "Г", next_inn()).await;
        let o = self.object(admin, c, "О").await;
        self.request(admin, o, "maintenance").await["id"]
            .as_i64()
            .unwrap()
    }

    /// A draft report with one line on a request.
    pub async fn report(&self, by: &TestUser, request: i64) -> Value {
        let r = self
            .post(
                "/api/v1/reports",
                by,
                json!({"request_id": request, "work_date": "2026-03-02", "items": [{"description": "Замена датчика", "quantity": "2", "unit": "шт", "unit_price": "1250.50"}]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body
    }
}

pub struct World {
    pub admin: TestUser,
    pub engineer: TestUser,
    pub customer: i64,
    pub object: i64,
    pub project: i64,
}

#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: i64,
    pub email: String,
    pub token: String,
}

#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn id(&self) -> i64 {
        self.body["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("no id in {}", self.body))
    }

    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// The fields a problem answer names.
    pub fn fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn ids(&self) -> Vec<i64> {
        self.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_i64().unwrap())
            .collect()
    }

    #[track_caller]
    pub fn assert(&self, status: StatusCode) -> &Self {
        assert_eq!(self.status, status, "unexpected answer: {}", self.body);
        self
    }

    #[track_caller]
    pub fn problem(&self, status: StatusCode, code: &str) -> &Self {
        assert_eq!(self.status, status, "unexpected answer: {}", self.body);
        assert_eq!(self.code(), code, "unexpected code: {}", self.body);
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
        self
    }
}

/// Valid 10-digit INNs, a new one each call.
pub fn next_inn() -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst) as u64;
    let base = 770_708_389 + n * 7;
    let digits: Vec<u32> = format!("{base:09}")
        .chars()
        .map(|c| c.to_digit(10).unwrap())
        .collect();
    let w = [2, 4, 10, 3, 5, 9, 4, 6, 8];
    let check = w.iter().zip(&digits).map(|(a, b)| a * b).sum::<u32>() % 11 % 10;
    format!("{base:09}{check}")
}
