//! Local stand-ins for outside services, speaking their real protocols on 127.0.0.1:
//!
//! - [`SmtpSink`]: an SMTP server (EHLO/HELO, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT,
//!   no TLS) that keeps every letter's envelope and raw text, and refuses chosen recipients
//!   with a chosen code. [`ReceivedMail`] decodes headers and MIME parts for assertions.
//! - [`FakeTelegram`]: a Bot API server that keeps every `sendMessage` request and can be told
//!   to fail the next calls (429 with `retry_after`, 500, 403, 400).
//! - [`closed_port`] (nothing listens) and [`SilentServer`] (accepts, never answers).
//!
//! Each server stops when its handle is dropped.
#![allow(dead_code)]

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::Engine;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// An address where nothing listens: connecting is refused at once.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// Accepts connections and never says a word: clients run into their timeouts.
pub struct SilentServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl SilentServer {
    pub async fn start() -> SilentServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        SilentServer { addr, task }
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// --- SMTP ---------------------------------------------------------------------------------

/// One letter the sink accepted.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The name the client greeted with (EHLO or HELO).
    pub helo: String,
    /// User name and password from `AUTH PLAIN`, if the client authenticated.
    pub auth: Option<(String, String)>,
    /// The envelope sender (`MAIL FROM:<…>`, without the brackets).
    pub mail_from: String,
    /// The accepted envelope recipients (`RCPT TO:<…>`), in order.
    pub rcpt_to: Vec<String>,
    /// The letter as sent after DATA: CRLF line ends, dot-stuffing undone.
    pub data: String,
}

/// One MIME part, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The media type, lower-case, without parameters: `text/plain`.
    pub content_type: String,
    /// The body after its transfer encoding is undone (UTF-8 assumed).
    pub body: String,
}

impl ReceivedMail {
    /// A header's value, unfolded, with RFC 2047 encoded words decoded; the first of its name.
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = split_head(&self.data);
        headers(head)
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| decode_words(&v))
    }

    /// The decoded `Subject`.
    pub fn subject(&self) -> Option<String> {
        self.header("Subject")
    }

    /// The leaf parts of the letter (one for a single-part letter), decoded.
    pub fn parts(&self) -> Vec<Part> {
        let mut out = Vec::new();
        collect_parts(&self.data, &mut out);
        out
    }

    /// The decoded body of the first part of this media type.
    pub fn part(&self, content_type: &str) -> Option<String> {
        self.parts()
            .into_iter()
            .find(|p| p.content_type == content_type)
            .map(|p| p.body)
    }
}

fn split_head(entity: &str) -> (&str, &str) {
    match entity.find("\r\n\r\n") {
        Some(i) => (&entity[..i], &entity[i + 4..]),
        None => (entity, ""),
    }
}

fn headers(head: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    out
}

fn param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

fn collect_parts(entity: &str, out: &mut Vec<Part>) {
    let (head, body) = split_head(entity);
    let headers = headers(head);
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let content_type = get("Content-Type").unwrap_or_else(|| "text/plain".into());
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media.starts_with("multipart/") {
        let boundary = param(&content_type, "boundary").expect("a multipart without boundary");
        let delimiter = format!("--{boundary}");
        for piece in body.split(&delimiter).skip(1) {
            if piece.starts_with("--") {
                break;
            }
            let piece = piece.strip_prefix("\r\n").unwrap_or(piece);
            let piece = piece.strip_suffix("\r\n").unwrap_or(piece);
            collect_parts(piece, out);
        }
        return;
    }
    let encoding = get("Content-Transfer-Encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(body.replace(['\r', '\n'], ""))
            .expect("bad base64 body"),
        "quoted-printable" => decode_quoted_printable(body),
        _ => body.as_bytes().to_vec(),
    };
    out.push(Part {
        content_type: media,
        body: String::from_utf8(bytes).expect("a body that is not UTF-8"),
    });
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn decode_quoted_printable(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            if b[i + 1..].starts_with(b"\r\n") {
                i += 3; // soft line break
                continue;
            }
            if let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`); the space between two
/// adjacent encoded words is dropped, as the RFC says.
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut last_was_word = false;
    for token in value.split_whitespace() {
        let decoded = token
            .strip_prefix("=?")
            .and_then(|t| t.strip_suffix("?="))
            .and_then(|t| {
                let mut it = t.splitn(3, '?');
                let (_charset, enc, text) = (it.next()?, it.next()?, it.next()?);
                let bytes = match enc {
                    "b" | "B" => base64::engine::general_purpose::STANDARD
                        .decode(text)
                        .ok()?,
                    "q" | "Q" => decode_quoted_printable(&text.replace('_', " ")),
                    _ => return None,
                };
                String::from_utf8(bytes).ok()
            });
        match decoded {
            Some(d) => {
                if !out.is_empty() && !last_was_word {
                    out.push(' ');
                }
                out.push_str(&d);
                last_was_word = true;
            }
            None => {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(token);
                last_was_word = false;
            }
        }
    }
    out
}

#[derive(Default)]
struct SinkState {
    received: Vec<ReceivedMail>,
    /// Lower-case address → the reply to its RCPT TO.
    refusals: HashMap<String, (u16, String)>,
}

/// An SMTP server that keeps what it receives. Plain TCP, no TLS: reach it with
/// [`SmtpSink::url`] (`smtp://127.0.0.1:PORT?tls=off`).
pub struct SmtpSink {
    pub addr: SocketAddr,
    state: Arc<Mutex<SinkState>>,
    task: JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(SinkState::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let _ = session(socket, state).await;
                });
            }
        });
        SmtpSink { addr, state, task }
    }

    /// `smtp://127.0.0.1:PORT?tls=off`.
    pub fn url(&self) -> String {
        format!("smtp://{}?tls=off", self.addr)
    }

    /// Answers `RCPT TO:<recipient>` with `code text` (e.g. 550, 451) from now on.
    pub fn refuse(&self, recipient: &str, code: u16, text: &str) {
        lock(&self.state)
            .refusals
            .insert(recipient.to_ascii_lowercase(), (code, text.to_owned()));
    }

    /// Every letter accepted so far, oldest first.
    pub fn received(&self) -> Vec<ReceivedMail> {
        lock(&self.state).received.clone()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn angle_address(arg: &str) -> String {
    let arg = arg.trim();
    let inner = match (arg.find('<'), arg.find('>')) {
        (Some(a), Some(b)) if a < b => &arg[a + 1..b],
        _ => arg.split_whitespace().next().unwrap_or_default(),
    };
    inner.to_owned()
}

fn decode_auth_plain(b64: &str) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let mut it = raw.split('\0');
    let (_authzid, user, password) = (it.next()?, it.next()?, it.next()?);
    Some((user.to_owned(), password.to_owned()))
}

async fn reply(w: &mut tokio::net::tcp::OwnedWriteHalf, text: &str) -> std::io::Result<()> {
    w.write_all(format!("{text}\r\n").as_bytes()).await
}

async fn session(
    socket: tokio::net::TcpStream,
    state: Arc<Mutex<SinkState>>,
) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    reply(&mut write, "220 sink.test ESMTP fake").await?;
    let (mut helo, mut auth) = (String::new(), None);
    let (mut from, mut rcpt) = (None::<String>, Vec::<String>::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end_matches(['\r', '\n']).to_owned();
        let (verb, arg) = command.split_once(' ').unwrap_or((&command, ""));
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                helo = arg.trim().to_owned();
                reply(
                    &mut write,
                    "250-sink.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-AUTH PLAIN\r\n250 OK",
                )
                .await?;
            }
            "HELO" => {
                helo = arg.trim().to_owned();
                reply(&mut write, "250 sink.test").await?;
            }
            "AUTH" => {
                let mut words = arg.split_whitespace();
                if !words
                    .next()
                    .is_some_and(|m| m.eq_ignore_ascii_case("PLAIN"))
                {
                    reply(&mut write, "504 5.5.4 only PLAIN").await?;
                    continue;
                }
                let initial = match words.next() {
                    Some(r) => r.to_owned(),
                    None => {
                        reply(&mut write, "334 ").await?;
                        let mut response = String::new();
                        lines.read_line(&mut response).await?;
                        response.trim().to_owned()
                    }
                };
                match decode_auth_plain(&initial) {
                    Some(credentials) => {
                        auth = Some(credentials);
                        reply(&mut write, "235 2.7.0 authenticated").await?;
                    }
                    None => reply(&mut write, "501 5.5.2 cannot decode").await?,
                }
            }
            "MAIL" => {
                from = Some(angle_address(
                    arg.trim_start_matches(|c| c != ':').trim_start_matches(':'),
                ));
                rcpt.clear();
                reply(&mut write, "250 2.1.0 OK").await?;
            }
            "RCPT" => {
                let to =
                    angle_address(arg.trim_start_matches(|c| c != ':').trim_start_matches(':'));
                let refusal = lock(&state).refusals.get(&to.to_ascii_lowercase()).cloned();
                match refusal {
                    Some((code, text)) => reply(&mut write, &format!("{code} {text}")).await?,
                    None if from.is_none() => reply(&mut write, "503 5.5.1 MAIL first").await?,
                    None => {
                        rcpt.push(to);
                        reply(&mut write, "250 2.1.5 OK").await?;
                    }
                }
            }
            "DATA" => {
                if from.is_none() || rcpt.is_empty() {
                    reply(&mut write, "554 5.5.1 no valid recipients").await?;
                    continue;
                }
                reply(&mut write, "354 end with <CRLF>.<CRLF>").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                lock(&state).received.push(ReceivedMail {
                    helo: helo.clone(),
                    auth: auth.clone(),
                    mail_from: from.take().unwrap_or_default(),
                    rcpt_to: std::mem::take(&mut rcpt),
                    data,
                });
                reply(&mut write, "250 2.0.0 queued").await?;
            }
            "RSET" => {
                from = None;
                rcpt.clear();
                reply(&mut write, "250 2.0.0 OK").await?;
            }
            "NOOP" => reply(&mut write, "250 2.0.0 OK").await?,
            "QUIT" => {
                reply(&mut write, "221 2.0.0 bye").await?;
                return Ok(());
            }
            _ => reply(&mut write, "502 5.5.2 not implemented").await?,
        }
    }
}

// --- Telegram -----------------------------------------------------------------------------

/// How [`FakeTelegram`] fails a call.
#[derive(Debug, Clone)]
pub enum TelegramFailure {
    /// 429 with `parameters.retry_after` (seconds).
    TooManyRequests { retry_after: u64 },
    /// 500 Internal Server Error.
    ServerError,
    /// 403 "Forbidden: bot was blocked by the user".
    Blocked,
    /// 400 "Bad Request: chat not found".
    ChatNotFound,
}

impl TelegramFailure {
    fn answer(&self) -> (StatusCode, Value) {
        let (status, description, parameters) = match self {
            TelegramFailure::TooManyRequests { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too Many Requests: retry after {retry_after}"),
                Some(json!({ "retry_after": retry_after })),
            ),
            TelegramFailure::ServerError => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error".to_owned(),
                None,
            ),
            TelegramFailure::Blocked => (
                StatusCode::FORBIDDEN,
                "Forbidden: bot was blocked by the user".to_owned(),
                None,
            ),
            TelegramFailure::ChatNotFound => (
                StatusCode::BAD_REQUEST,
                "Bad Request: chat not found".to_owned(),
                None,
            ),
        };
        let mut body = json!({
            "ok": false,
            "error_code": status.as_u16(),
            "description": description,
        });
        if let Some(p) = parameters {
            body["parameters"] = p;
        }
        (status, body)
    }
}

/// One request the fake Bot API received.
#[derive(Debug, Clone)]
pub struct TelegramCall {
    /// The token from the path (`/bot<token>/<method>`).
    pub token: String,
    /// The method, e.g. `sendMessage`.
    pub method: String,
    /// The JSON body (`Value::Null` if it was not JSON).
    pub body: Value,
    /// The status the fake answered.
    pub status: u16,
}

#[derive(Default)]
struct TelegramState {
    calls: Vec<TelegramCall>,
    failures: VecDeque<TelegramFailure>,
    next_message_id: i64,
}

/// A Telegram Bot API on `http://127.0.0.1:PORT` ([`FakeTelegram::url`]) that answers every
/// method like a successful `sendMessage`, unless told to fail.
pub struct FakeTelegram {
    pub addr: SocketAddr,
    state: Arc<Mutex<TelegramState>>,
    task: JoinHandle<()>,
}

impl FakeTelegram {
    pub async fn start() -> FakeTelegram {
        let state = Arc::new(Mutex::new(TelegramState::default()));
        let app = axum::Router::new()
            .route("/{bot}/{method}", axum::routing::post(telegram_call))
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeTelegram { addr, state, task }
    }

    /// The base URL, for `FERUM_TELEGRAM_API_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next `n` calls fail this way (after failures queued before).
    pub fn fail_next(&self, n: usize, failure: TelegramFailure) {
        let mut state = lock(&self.state);
        state.failures.extend(std::iter::repeat_n(failure, n));
    }

    /// Every call so far, failed ones included, oldest first.
    pub fn calls(&self) -> Vec<TelegramCall> {
        lock(&self.state).calls.clone()
    }

    /// The bodies of the calls answered with success, oldest first.
    pub fn delivered(&self) -> Vec<Value> {
        lock(&self.state)
            .calls
            .iter()
            .filter(|c| c.status == 200)
            .map(|c| c.body.clone())
            .collect()
    }
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn telegram_call(
    State(state): State<Arc<Mutex<TelegramState>>>,
    Path((bot, method)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> (StatusCode, Json<Value>) {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(token) = bot.strip_prefix("bot") else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"ok": false, "error_code": 404, "description": "Not Found"})),
        );
    };
    let mut state = lock(&state);
    let (status, answer) = match state.failures.pop_front() {
        Some(failure) => failure.answer(),
        None => {
            state.next_message_id += 1;
            (
                StatusCode::OK,
                json!({
                    "ok": true,
                    "result": {
                        "message_id": state.next_message_id,
                        "chat": { "id": body["chat_id"] },
                        "text": body["text"],
                    }
                }),
            )
        }
    };
    state.calls.push(TelegramCall {
        token: token.to_owned(),
        method,
        body,
        status: status.as_u16(),
    });
    (status, Json(answer))
}
