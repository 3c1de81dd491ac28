//! Operations: probes, metrics, error reporting, logs, and the set-up commands, run as an
//! operator would run them.

use crate::support::*;
use axum::http::{Method, StatusCode};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

const METRICS_TOKEN: &str = "metrics-token-0123456789";

both! {
    async fn readyz_tells_whether_the_schema_fits_and_healthz_only_that_we_live(app) {
        let r = app.call(Method::GET, "/readyz", None, None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future', '2030-01-01T00:00:00.000000Z')")
            .execute(app.db.pool()).await.unwrap();
        let r = app.call(Method::GET, "/readyz", None, None).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(r.body.as_str().unwrap().contains("newer than this ferum"), "{}", r.body);
        sqlx::query("DELETE FROM schema_migrations WHERE version IN (9999, 5)")
            .execute(app.db.pool()).await.unwrap();
        let r = app.call(Method::GET, "/readyz", None, None).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.body, "1 schema migration(s) pending");
        app.call(Method::GET, "/healthz", None, None).await.assert(StatusCode::OK);
    }

    async fn metrics_need_the_token_and_count_requests_by_route(app) {
        let r = app.call(Method::GET, "/metrics", None, None).await;
        r.problem(StatusCode::NOT_FOUND, "not_found");
        app.reconfigure(|s| s.metrics_token = Some(METRICS_TOKEN.into()));
        let r = app.call(Method::GET, "/metrics", None, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let r = app.call(Method::GET, "/metrics", Some("metrics-token-wrong-0000"), None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);

        let w = app.world().await;
        let emergency = app.request(&w.admin, w.object, "emergency").await;
        app.request(&w.admin, w.object, "maintenance").await;
        app.request(&w.admin, w.object, "maintenance").await;
        // Past the emergency assignment deadline (15 minutes), within the maintenance one.
        app.clock.advance(chrono::Duration::minutes(20));
        app.get(&format!("/api/v1/requests/{}", emergency["id"]), &w.admin).await.assert(StatusCode::OK);
        app.get("/api/v1/requests/999999", &w.admin).await.assert(StatusCode::NOT_FOUND);
        app.call(Method::GET, "/no/such/page", None, None).await;

        let r = app.call(Method::GET, "/metrics", Some(METRICS_TOKEN), None).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.headers["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
        let text = r.body.as_str().unwrap().to_owned();
        let has = |line: &str| assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        has(r#"ferum_http_requests_total{method="POST",route="/api/v1/requests",status="201"} 3"#);
        has(r#"ferum_http_requests_total{method="GET",route="/api/v1/requests/{id}",status="200"} 1"#);
        has(r#"ferum_http_requests_total{method="GET",route="/api/v1/requests/{id}",status="404"} 1"#);
        has(r#"ferum_http_requests_total{method="GET",route="unmatched",status="404"} 1"#);
        has(r#"ferum_service_requests_open{status="open",type="emergency"} 1"#);
        has(r#"ferum_service_requests_open{status="open",type="maintenance"} 2"#);
        has(r#"ferum_service_requests_open{status="in_progress",type="maintenance"} 0"#);
        has(r#"ferum_service_requests_overdue{type="emergency"} 1"#);
        has(r#"ferum_service_requests_overdue{type="maintenance"} 0"#);
        has("ferum_service_requests_resolution_seconds_avg_30d 0");
        // The project's welcome and the three requests' events wait for a worker (none runs
        // here), the oldest since the start, 20 minutes ago.
        has("ferum_outbox_depth 4");
        has("ferum_outbox_oldest_pending_seconds 1200");
        has("ferum_outbox_dead 0");
        has("ferum_backup_last_success_timestamp_seconds 0");
        has(&format!(r#"ferum_build_info{{version="{}"}} 1"#, env!("CARGO_PKG_VERSION")));
        assert!(text.contains("ferum_http_request_duration_seconds_bucket{method=\"POST\",route=\"/api/v1/requests\",le=\"0.005\"}"), "{text}");
        assert!(text.contains("ferum_db_pool_connections{pool="), "{text}");
        // Ids never become labels.
        assert!(!text.contains(&format!("/api/v1/requests/{}", emergency["id"])), "{text}");

        // A recorded backup shows up as its Unix time.
        sqlx::query("INSERT INTO settings (name, value) VALUES ('backup_last_success_at', '2026-03-02T08:00:00.000000Z')")
            .execute(app.db.pool()).await.unwrap();
        let r = app.call(Method::GET, "/metrics", Some(METRICS_TOKEN), None).await;
        let text = r.body.as_str().unwrap();
        assert!(text.lines().any(|l| l == "ferum_backup_last_success_timestamp_seconds 1772438400"), "{text}");
    }

    async fn completed_requests_feed_the_resolution_gauge(app) {
        app.reconfigure(|s| s.metrics_token = Some(METRICS_TOKEN.into()));
        let w = app.world().await;
        let started = app.started_request(&w).await;
        let id = started["id"].as_i64().unwrap();
        app.clock.advance(chrono::Duration::hours(3));
        let act = app.report(&w.engineer, id).await;
        let submitted = app.post(&format!("/api/v1/reports/{}/submit", act["id"]), &w.engineer, serde_json::json!({})).await;
        assert_eq!(submitted.status, StatusCode::OK, "{}", submitted.body);
        let r = app.call(Method::GET, "/metrics", Some(METRICS_TOKEN), None).await;
        let text = r.body.as_str().unwrap();
        let line = text.lines().find(|l| l.starts_with("ferum_service_requests_resolution_seconds_avg_30d ")).unwrap();
        let seconds: f64 = line.split(' ').nth(1).unwrap().parse().unwrap();
        assert!((3.0 * 3600.0..3.1 * 3600.0).contains(&seconds), "{line}");
        assert!(text.lines().any(|l| l == r#"ferum_service_requests_open{status="completed",type="maintenance"} 1"#), "{text}");
    }
}

/// A local stand-in for Sentry's ingest endpoint that keeps what it was sent.
fn fake_sentry() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let keep = seen.clone();
    let app = axum::Router::new().route(
        "/api/{project}/envelope/",
        axum::routing::post(
            move |axum::extract::Path(project): axum::extract::Path<String>,
                  headers: axum::http::HeaderMap,
                  body: axum::body::Bytes| {
                let keep = keep.clone();
                async move {
                    let auth = headers
                        .get("x-sentry-auth")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    keep.lock().unwrap().push(format!(
                        "project={project}\nauth={auth}\n{}",
                        String::from_utf8_lossy(&body)
                    ));
                    "{}"
                }
            },
        ),
    );
    // Its own thread and runtime: the test's runtime blocks while the client flushes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap()
            })
    });
    (format!("http://public-key@{addr}/42"), seen)
}

// Current-thread runtime: the handler runs on the thread whose Sentry hub holds the client,
// as every thread does in the binary, where the client is bound before the runtime starts.
#[tokio::test]
async fn a_panic_in_a_handler_answers_500_and_reaches_sentry() {
    let (dsn, seen) = fake_sentry();
    let guard = ferum::telemetry::sentry_client(&dsn, Some("ci".into())).unwrap();
    let app = TestApp::sqlite().await;
    let routes = axum::Router::new().route(
        "/boom",
        axum::routing::get(|| async {
            if std::hint::black_box(true) {
                panic!("boom from a handler");
            }
            "unreachable"
        }),
    );
    let web = ferum::web::WebConfig {
        max_body_bytes: MAX_BODY,
        ..Default::default()
    };
    let router = ferum::web::layered(routes, app.state.clone(), &web);
    let res = tower::ServiceExt::oneshot(
        router,
        axum::http::Request::get("/boom")
            .header("x-request-id", "panic-test-1")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.headers()["x-request-id"], "panic-test-1");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    // The transport sends from its own thread; wait for it.
    drop(guard);
    let mut sent = Vec::new();
    for _ in 0..100 {
        sent = seen.lock().unwrap().clone();
        if !sent.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let event = sent
        .iter()
        .find(|e| e.contains("boom from a handler"))
        .unwrap_or_else(|| panic!("no panic event reached the fake ingest: {sent:?}"));
    assert!(event.starts_with("project=42\n"), "{event}");
    assert!(event.contains("sentry_key=public-key"), "{event}");
    assert!(event.contains("\"environment\":\"ci\""), "{event}");
    assert!(
        event.contains(concat!("ferum@", env!("CARGO_PKG_VERSION"))),
        "{event}"
    );
}

/// The binary with a clean environment rooted in `dir` (no variables leak in from the host).
fn ferum(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferum"));
    c.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FERUM_DATA_DIR", dir.join("data"))
        .env("FERUM_LOG", "warn")
        .stdin(Stdio::null());
    c
}

fn run(c: &mut Command) -> (bool, String, String) {
    let out = c.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_reports_a_missing_site_and_site_init_is_safe_to_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = run(&mut ferum(dir.path(), &["check"]));
    assert!(!ok, "{out}{err}");
    assert!(out.contains("FAIL database"), "{out}");
    assert!(out.contains("run `ferum site init`"), "{out}");
    assert!(out.contains("1 problem(s) found"), "{out}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "check created something"
    );

    let (ok, out, err) = run(ferum(dir.path(), &["site", "init"])
        .env("FERUM_ADMIN_EMAIL", "boss@example.ru")
        .env("FERUM_ADMIN_PASSWORD", "a long enough password"));
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("Created the first administrator boss@example.ru"),
        "{out}"
    );
    assert!(out.contains("site ready"), "{out}");
    assert!(dir.path().join("data/files").is_dir());
    assert!(dir.path().join("data/token.key").is_file());
    assert!(dir.path().join("data/data.key").is_file());
    let key_before = std::fs::read(dir.path().join("data/data.key")).unwrap();

    let (ok, out, err) = run(&mut ferum(dir.path(), &["site", "init"]));
    assert!(ok, "{out}{err}");
    assert!(out.contains("already existed, nothing to create"), "{out}");
    assert!(!out.contains("Created"), "{out}");
    assert_eq!(
        std::fs::read(dir.path().join("data/data.key")).unwrap(),
        key_before
    );

    let (ok, out, err) = run(&mut ferum(dir.path(), &["check"]));
    assert!(ok, "{out}{err}");
    assert!(out.contains("ok   schema"), "{out}");
    assert!(
        out.contains("ok   data key      decrypts this database's personal data"),
        "{out}"
    );
    assert!(out.contains("everything looks right"), "{out}");
    assert!(out.contains("no schedule (FERUM_BACKUP_AT unset)"), "{out}");

    // A wrong data key and a bad setting are each reported.
    let (ok, out, _) = run(ferum(dir.path(), &["check"])
        .env(
            "FERUM_DATA_KEY",
            ferum::crypto::DataKeys::generate().to_config_string(),
        )
        .env("FERUM_METRICS_BIND", "not an address")
        .env("FERUM_BACKUP_AT", "25:99"));
    assert!(!ok);
    assert!(out.contains("FAIL backups"), "{out}");
    assert!(out.contains("FAIL data key"), "{out}");
    assert!(
        out.contains("FERUM_METRICS_BIND must be an address"),
        "{out}"
    );
}

#[test]
fn secrets_in_urls_are_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = run(ferum(dir.path(), &["check"])
        .env(
            "DATABASE_URL",
            "postgres://ferum:hunter2-secret@127.0.0.1:1/ferum",
        )
        .env("REDIS_URL", "redis://:redis-secret@127.0.0.1:1/0"));
    assert!(!ok);
    assert!(out.contains("FAIL database"), "{out}");
    assert!(out.contains("FAIL redis"), "{out}");
    assert!(out.contains("ferum:***@127.0.0.1"), "{out}");
    for secret in ["hunter2-secret", "redis-secret"] {
        assert!(!out.contains(secret) && !err.contains(secret), "{out}{err}");
    }
    let (ok, _, err) = run(ferum(dir.path(), &["migrate"]).env(
        "DATABASE_URL",
        "postgres://ferum:hunter2-secret@127.0.0.1:1/ferum",
    ));
    assert!(!ok);
    assert!(!err.contains("hunter2-secret"), "{err}");
}

#[test]
fn settings_come_from_a_dotenv_file_and_the_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "# a comment\nDATABASE_URL=sqlite://from-dotenv/site.db\nFERUM_ADMIN_EMAIL=dotenv@example.ru\n\
         FERUM_ADMIN_PASSWORD=\"a long enough password\"\n",
    )
    .unwrap();
    let (ok, out, err) =
        run(ferum(dir.path(), &["site", "init"]).env("FERUM_ADMIN_EMAIL", "env-wins@example.ru"));
    assert!(ok, "{out}{err}");
    assert!(dir.path().join("from-dotenv/site.db").is_file());
    assert!(out.contains("env-wins@example.ru"), "{out}");

    std::fs::write(dir.path().join(".env"), "THIS LINE IS BROKEN\n").unwrap();
    let (ok, _, err) = run(&mut ferum(dir.path(), &["check"]));
    assert!(!ok);
    assert!(err.contains("reading .env"), "{err}");
}

/// A running `ferum serve` on free ports; killed when dropped.
struct Server {
    child: Child,
    base: String,
    metrics: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &std::path::Path, extra: &[(&str, &str)]) -> Server {
    let mut c = ferum(dir, &["serve", "--bind", "127.0.0.1:0"]);
    c.env("FERUM_METRICS_BIND", "127.0.0.1:0")
        .env("FERUM_ADMIN_PASSWORD", "a long enough password")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in extra {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut base, mut metrics) = (String::new(), String::new());
    while base.is_empty() {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(rest) = line.strip_prefix("Metrics are at ") {
            metrics = rest.to_owned();
        }
        if let Some(rest) = line.strip_prefix("Ferum is listening on ") {
            base = rest.split(' ').next().unwrap().to_owned();
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        base,
        metrics,
    }
}

/// A bare HTTP/1.1 GET; returns the status line and the body.
fn get(url: &str, headers: &[(&str, &str)]) -> (String, String) {
    http("GET", url, headers, "")
}

fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    let mut req = format!(
        "{method} /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer.lines().next().unwrap_or_default().to_owned();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn the_server_logs_json_with_request_ids_and_serves_metrics_on_its_own_listener() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(
        dir.path(),
        &[("FERUM_LOG_FORMAT", "json"), ("FERUM_LOG", "info")],
    );
    let (status, body) = get(
        &format!("{}/readyz", server.base),
        &[("x-request-id", "trace-me-42")],
    );
    assert!(status.contains("200"), "{status} {body}");
    // /metrics is not on the public listener without a token.
    let (status, _) = get(&format!("{}/metrics", server.base), &[]);
    assert!(status.contains("404"), "{status}");
    let (status, body) = get(&server.metrics, &[]);
    assert!(status.contains("200"), "{status}");
    assert!(
        body.contains(r#"ferum_http_requests_total{method="GET",route="/readyz",status="200"} 1"#),
        "{body}"
    );
    assert!(
        body.contains("ferum_db_pool_connections{pool=\"read\""),
        "{body}"
    );

    let (ok, out, _) = run(&mut ferum(
        dir.path(),
        &["healthcheck", "--url", &format!("{}/readyz", server.base)],
    ));
    assert!(ok, "{out}");
    let (ok, out, _) = run(&mut ferum(
        dir.path(),
        &[
            "healthcheck",
            "--url",
            &format!("{}/nothing-here", server.base),
        ],
    ));
    assert!(!ok, "{out}");
    assert!(out.contains("404"), "{out}");

    let _ = server.child.kill();
    let mut err = String::new();
    server
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let line = err
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "request" && v["fields"]["path"] == "/readyz")
        .unwrap_or_else(|| panic!("no JSON request line in\n{err}"));
    assert_eq!(line["span"]["request_id"], "trace-me-42", "{line}");
    assert_eq!(line["fields"]["status"], 200, "{line}");
    assert_eq!(line["level"], "INFO");
    assert!(!err.contains("a long enough password"), "{err}");
}

#[test]
fn healthcheck_fails_when_nothing_answers() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (ok, out, _) =
        run(ferum(dir.path(), &["healthcheck"]).env("FERUM_BIND", format!("0.0.0.0:{port}")));
    assert!(!ok);
    assert!(
        out.contains(&format!("http://127.0.0.1:{port}/readyz")),
        "{out}"
    );
}

#[test]
fn only_trusted_proxies_may_name_the_client_for_rate_limits() {
    let login = |server: &Server, from: &str| {
        http(
            "POST",
            &format!("{}/api/v1/auth/login", server.base),
            &[
                ("content-type", "application/json"),
                ("x-forwarded-for", from),
            ],
            r#"{"email":"nobody@example.ru","password":"wrong password here"}"#,
        )
        .0
    };
    let limits = [
        ("FERUM_LOGIN_IP_BURST", "2"),
        ("FERUM_LOGIN_ACCOUNT_BURST", "100"),
    ];
    for trusted in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut env = limits.to_vec();
        if trusted {
            env.push(("FERUM_TRUSTED_PROXIES", "127.0.0.0/8"));
        }
        let server = serve(dir.path(), &env);
        assert!(login(&server, "198.51.100.1").contains("401"));
        assert!(login(&server, "198.51.100.1").contains("401"));
        assert!(login(&server, "198.51.100.1").contains("429"));
        let other = login(&server, "198.51.100.2");
        if trusted {
            assert!(
                other.contains("401"),
                "another client behind the proxy: {other}"
            );
        } else {
            assert!(
                other.contains("429"),
                "an untrusted header must not reset the limit: {other}"
            );
        }
    }
}

#[test]
fn every_variable_the_code_reads_is_documented_in_env_example() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let documented = std::fs::read_to_string(root.join(".env.example")).unwrap();
    let mut files = vec![root.join("src")];
    let mut missing = std::collections::BTreeSet::new();
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for piece in text.split('"').skip(1).step_by(2) {
            let is_var = (piece.starts_with("FERUM_") || piece.starts_with("SENTRY_"))
                && piece.len() > 7
                && piece
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            let is_var = is_var || piece == "DATABASE_URL" || piece == "REDIS_URL";
            if is_var && !documented.contains(&format!("{piece}=")) {
                missing.insert(piece.to_owned());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "read by the code but not in .env.example: {missing:?}"
    );
}

#[test]
fn an_api_rate_the_limiter_cannot_enforce_is_refused_at_start_and_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) =
        run(ferum(dir.path(), &["site", "init"])
            .env("FERUM_ADMIN_PASSWORD", "a long enough password"));
    assert!(ok, "{out}{err}");
    for rate in ["60001", "1000000"] {
        let (ok, out, _) =
            run(ferum(dir.path(), &["check"]).env("FERUM_API_REQUESTS_PER_MINUTE", rate));
        assert!(!ok, "check passed with {rate}: {out}");
        assert!(
            out.contains("FAIL configuration") && out.contains("at most 60000"),
            "{out}"
        );
        let (ok, out, err) = run(ferum(dir.path(), &["serve", "--bind", "127.0.0.1:0"])
            .env("FERUM_API_REQUESTS_PER_MINUTE", rate));
        assert!(!ok, "serve started with {rate}: {out}");
        assert!(
            err.contains("FERUM_API_REQUESTS_PER_MINUTE must be at most 60000"),
            "{err}"
        );
    }
    for fine in ["60000", "off"] {
        let (ok, out, err) =
            run(ferum(dir.path(), &["check"]).env("FERUM_API_REQUESTS_PER_MINUTE", fine));
        assert!(ok, "{fine}: {out}{err}");
    }
}

#[test]
fn sigterm_stops_the_server_within_the_grace_period_despite_a_stuck_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path(), &[("FERUM_SHUTDOWN_GRACE_SECS", "2")]);
    let host = server.base.strip_prefix("http://").unwrap().to_owned();
    // A request whose body never finishes, and an idle keep-alive connection.
    let mut stuck = std::net::TcpStream::connect(&host).unwrap();
    stuck
        .write_all(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"email\":",
        )
        .unwrap();
    let _idle = std::net::TcpStream::connect(&host).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = started + std::time::Duration::from_secs(8);
    loop {
        if let Some(code) = server.child.try_wait().unwrap() {
            assert!(code.success(), "exit status {code}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running {:?} after SIGTERM",
            started.elapsed()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
