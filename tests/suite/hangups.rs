//! Clients that hang up, stall or never finish: the real listener (`web::server`) on a port,
//! driven over raw sockets.

use crate::support::*;
use ferum::domain::access::Role;
use ferum::web::server::{ServerLimits, serve};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The app's router served on a loopback port until the returned sender fires (or is dropped).
async fn listen(
    app: &TestApp,
    limits: ServerLimits,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let router = app.router.clone();
    let task = tokio::spawn(async move {
        serve(listener, router, limits, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (addr, stop, task)
}

fn create_request(token: &str, object: i64, subject: &str) -> Vec<u8> {
    let body = serde_json::json!({"type": "maintenance", "subject": subject, "object_id": object})
        .to_string();
    format!(
        "POST /api/v1/requests HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Sends one request on a fresh connection and reads the answer's status code (0 if the
/// connection closed without one), giving up after `within`.
async fn exchange(addr: SocketAddr, raw: &[u8], within: Duration) -> Option<u16> {
    tokio::time::timeout(within, async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(raw).await.unwrap();
        let mut head = [0u8; 12];
        let mut got = 0;
        while got < head.len() {
            match s.read(&mut head[got..]).await {
                Ok(0) | Err(_) => return 0,
                Ok(n) => got += n,
            }
        }
        std::str::from_utf8(&head[9..12])
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    })
    .await
    .ok()
}

/// Reads until the peer closes the connection; how long that took, if within `limit`.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<(Duration, Vec<u8>)> {
    let started = Instant::now();
    let mut seen = Vec::new();
    tokio::time::timeout(limit, async {
        let mut buf = [0u8; 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
    .map(|()| (started.elapsed(), seen))
}

both! {
    // Clients that send a whole write and hang up at once or within milliseconds drop the
    // request's future at any point, inside a transaction too. Afterwards every ordinary write
    // must still get its answer: on SQLite the single writer connection must not be left
    // inside a transaction, nor the pool waiting for it.
    async fn writes_keep_working_after_clients_hang_up_mid_request(app) {
        let w = app.world().await;
        let (addr, _stop, _task) = listen(&app, ServerLimits::default()).await;
        let mut clients = Vec::new();
        for c in 0..16u64 {
            let user = app.user(&[Role::Admin], None).await;
            let raw = create_request(&user.token, w.object, &format!("hang-up {c}"));
            clients.push(tokio::spawn(async move {
                let until = Instant::now() + Duration::from_secs(2);
                let mut n = 0u64;
                while Instant::now() < until {
                    let Ok(mut s) = TcpStream::connect(addr).await else { continue };
                    let _ = s.write_all(&raw).await;
                    // Hang up at once, or after 1–4 ms: in the middle of the write.
                    let pause = (n * 7 + c * 3) % 5;
                    if pause > 0 {
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                    }
                    drop(s);
                    n += 1;
                    // Keep the pace below what two cores absorb, so the test measures
                    // recovery rather than a backlog.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                n
            }));
        }
        let mut sent = 0;
        for c in clients {
            sent += c.await.unwrap();
        }
        assert!(sent > 100, "the clients sent only {sent} requests");
        for i in 0..10 {
            let raw = create_request(&w.admin.token, w.object, &format!("after {i}"));
            let status = exchange(addr, &raw, Duration::from_secs(15)).await;
            assert_eq!(status, Some(201), "write {i} after the hang-ups");
        }
        // Reads and writes in the app itself agree: nothing is stuck in a transaction.
        let r = app
            .post(
                "/api/v1/requests",
                &w.admin,
                serde_json::json!({"type": "emergency", "subject": "x", "object_id": w.object}),
            )
            .await;
        r.assert(axum::http::StatusCode::CREATED);
    }

    // A client that never finishes its headers is cut off at the header timeout; one that
    // announces a large body and stops sending gets 408 at the body timeout.
    async fn slow_clients_are_cut_off(app) {
        let limits = ServerLimits {
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            ..ServerLimits::default()
        };
        let (addr, _stop, _task) = listen(&app, limits).await;

        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ").await.unwrap();
        let (took, _) = closed_within(&mut s, Duration::from_secs(5))
            .await
            .expect("half-sent headers must not hold the connection");
        assert!(took >= Duration::from_millis(500), "closed too soon: {took:?}");

        let mut s = TcpStream::connect(addr).await.unwrap();
        let (took, _) = closed_within(&mut s, Duration::from_secs(5))
            .await
            .expect("a connection that sends nothing must not be held");
        assert!(took >= Duration::from_millis(500), "closed too soon: {took:?}");

        let user = app.user(&[Role::Admin], None).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!(
                "POST /api/v1/customers HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nContent-Length: 99999999\r\n\r\n{{\"name\":",
                user.token
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let (_, answer) = closed_within(&mut s, Duration::from_secs(5))
            .await
            .expect("a stalled body must not hold the connection");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert_eq!(app.count("customers").await, 0);
    }

    // No more connections than the cap are served at once; a freed slot is reused.
    async fn connections_are_capped(app) {
        let limits = ServerLimits {
            max_connections: 2,
            header_timeout: Duration::from_secs(30),
            ..ServerLimits::default()
        };
        let (addr, _stop, _task) = listen(&app, limits).await;
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n").await.unwrap();
            held.push(s);
        }
        let healthz = b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        assert_eq!(
            exchange(addr, healthz, Duration::from_millis(700)).await,
            None,
            "a third connection was served past the cap of two"
        );
        drop(held.pop());
        assert_eq!(exchange(addr, healthz, Duration::from_secs(5)).await, Some(200));
    }

    // A shutdown ends within the grace period even while a client holds a request open.
    async fn shutdown_ends_within_the_grace_period_despite_stuck_requests(app) {
        let limits = ServerLimits {
            shutdown_grace: Duration::from_secs(1),
            ..ServerLimits::default()
        };
        let (addr, stop, task) = listen(&app, limits).await;
        let user = app.user(&[Role::Admin], None).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!(
                "POST /api/v1/customers HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{",
                user.token
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the server must stop within the grace period")
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        assert!(TcpStream::connect(addr).await.is_err(), "still accepting after shutdown");
    }
}
