//! Telegram messages through the Bot API's `sendMessage`, over HTTPS with ureq (blocking, so
//! each request runs on tokio's blocking pool).
//!
//! The bot token is part of every request URL (`/bot<token>/sendMessage`); it is kept in a
//! [`Secret`] and cut out of every error message, and redirects are not followed, so it is
//! never sent to another host.

use super::{DeliveryError, Message};
use crate::config::Secret;
use anyhow::bail;
use serde::Deserialize;
use std::time::Duration;

pub const DEFAULT_API_URL: &str = "https://api.telegram.org";
/// How long one request may take, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest text `sendMessage` takes, in UTF-16 code units after HTML parsing.
pub const MAX_TEXT: usize = 4096;
/// The largest answer read from the Bot API.
const MAX_ANSWER_BYTES: u64 = 64 * 1024;

/// Everything needed to send Telegram messages.
#[derive(Debug, Clone)]
pub struct TelegramConfig {
    /// `FERUM_TELEGRAM_BOT_TOKEN`, as BotFather gives it (`123456789:AA…`).
    pub token: Secret,
    /// `FERUM_TELEGRAM_API_URL`, without a trailing slash.
    pub api_url: url::Url,
    /// `FERUM_TELEGRAM_TIMEOUT_SECS`.
    pub timeout: Duration,
}

/// Checks the shape of a bot token (`DIGITS:LETTERS-DIGITS_-`). Messages never contain it.
pub fn parse_token(raw: &str) -> anyhow::Result<Secret> {
    let valid = raw.split_once(':').is_some_and(|(id, key)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && key.len() >= 20
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    if !valid {
        bail!("not a bot token: it looks like 123456789:AAH… (as @BotFather gives it)");
    }
    Ok(Secret::new(raw))
}

/// Checks the Bot API address: `https://`, or `http://` to this machine only (a local Bot API
/// server or a test double), with no path beyond `/`, query or credentials.
pub fn parse_api_url(raw: &str) -> anyhow::Result<url::Url> {
    let url = url::Url::parse(raw).map_err(|e| {
        anyhow::anyhow!("not a URL ({e}): {raw:?}; the default is {DEFAULT_API_URL}")
    })?;
    let local = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => bail!("the URL names no server: {raw:?}"),
    };
    match url.scheme() {
        "https" => {}
        "http" if local => {}
        "http" => bail!("must be https:// (http:// only to this machine): {raw:?}"),
        other => bail!("unsupported scheme {other:?}: use https://, e.g. {DEFAULT_API_URL}"),
    }
    if !matches!(url.path(), "" | "/")
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        bail!("must be just the server, such as {DEFAULT_API_URL}: {raw:?}");
    }
    Ok(url)
}

/// Sends messages as one bot.
#[derive(Clone)]
pub struct TelegramBot {
    agent: ureq::Agent,
    base: String,
    token: Secret,
}

impl std::fmt::Debug for TelegramBot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramBot")
            .field("api_url", &self.base)
            .field("token", &self.token)
            .finish()
    }
}

impl TelegramBot {
    pub fn new(config: &TelegramConfig) -> TelegramBot {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent("ferum")
            .build()
            .new_agent();
        TelegramBot {
            agent,
            base: config.api_url.as_str().trim_end_matches('/').to_owned(),
            token: config.token.clone(),
        }
    }

    /// Sends one message. Error messages never contain the token.
    pub async fn send(&self, message: &Message) -> Result<(), DeliveryError> {
        let body = serde_json::to_vec(&request_body(message)?)
            .map_err(|e| DeliveryError::permanent(format!("cannot encode the request: {e}")))?;
        let bot = self.clone();
        match tokio::task::spawn_blocking(move || bot.send_blocking(&body)).await {
            Ok(result) => result,
            Err(e) => Err(DeliveryError::retryable(format!(
                "the request to the Bot API did not finish: {e}"
            ))),
        }
    }

    fn send_blocking(&self, body: &[u8]) -> Result<(), DeliveryError> {
        let url = format!("{}/bot{}/sendMessage", self.base, self.token.expose());
        let mut response = match self
            .agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(body)
        {
            Ok(r) => r,
            Err(e) => {
                return Err(DeliveryError::retryable(self.redact(&format!(
                    "cannot reach the Bot API at {}: {e}",
                    self.base
                ))));
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let answer = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .unwrap_or_default();
        interpret(status, &answer, retry_after).map_err(|e| match e {
            DeliveryError::Retryable {
                reason,
                retry_after,
            } => DeliveryError::Retryable {
                reason: self.redact(&reason),
                retry_after,
            },
            DeliveryError::Permanent { reason } => DeliveryError::Permanent {
                reason: self.redact(&reason),
            },
        })
    }

    fn redact(&self, s: &str) -> String {
        s.replace(self.token.expose(), "***")
    }
}

/// The `sendMessage` request for `message`.
pub fn request_body(message: &Message) -> Result<serde_json::Value, DeliveryError> {
    let to = message.to.trim();
    let chat_id = match to.parse::<i64>() {
        Ok(n) => serde_json::Value::from(n),
        Err(_) if to.starts_with('@') && to.len() > 1 => serde_json::Value::from(to),
        Err(_) => {
            return Err(DeliveryError::permanent(
                "the recipient is not a Telegram chat id (a number or @channelname)",
            ));
        }
    };
    Ok(serde_json::json!({
        "chat_id": chat_id,
        "text": render(message),
        "parse_mode": "HTML",
        "disable_web_page_preview": true,
    }))
}

/// The message as Telegram HTML: the subject in bold, the text, the link; the text is cut
/// (with `…`) to fit [`MAX_TEXT`].
pub fn render(message: &Message) -> String {
    let subject = message.subject.trim();
    let text = message.text.trim_end();
    let link = message
        .link
        .as_deref()
        .map(str::trim)
        .filter(|l| !l.is_empty());
    let len = |s: &str| s.encode_utf16().count();
    // What the reader sees, in UTF-16 units: tags and entities do not count.
    let subject = cut(subject, MAX_TEXT / 2);
    let fixed =
        len(&subject) + link.map_or(0, |l| len(l) + 2) + if subject.is_empty() { 0 } else { 2 };
    let text = cut(text, MAX_TEXT.saturating_sub(fixed));
    let mut out = String::new();
    if !subject.is_empty() {
        out.push_str("<b>");
        out.push_str(&escape(&subject));
        out.push_str("</b>");
        if !text.is_empty() || link.is_some() {
            out.push_str("\n\n");
        }
    }
    out.push_str(&escape(&text));
    if let Some(link) = link {
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        let web = url::Url::parse(link).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if web {
            out.push_str(&format!(
                "<a href=\"{}\">{}</a>",
                escape(link),
                escape(link)
            ));
        } else {
            out.push_str(&escape(link));
        }
    }
    out
}

/// `s` cut to at most `max` UTF-16 units, ending in `…` when cut.
fn cut(s: &str, max: usize) -> String {
    if s.encode_utf16().count() <= max {
        return s.to_owned();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        if used + c.len_utf16() + 1 > max {
            break;
        }
        used += c.len_utf16();
        out.push(c);
    }
    if max > 0 {
        out.push('…');
    }
    out
}

/// Escapes text for Telegram's HTML parse mode.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[derive(Deserialize)]
struct Answer {
    ok: bool,
    error_code: Option<u16>,
    description: Option<String>,
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
struct Parameters {
    retry_after: Option<u64>,
}

/// Sorts the Bot API's answer: 429 and 5xx may pass later (429 with the wait Telegram asks
/// for), a refused token (401, 404) is ours to fix, other 4xx (chat not found, bot blocked)
/// are permanent.
fn interpret(status: u16, body: &str, retry_after: Option<u64>) -> Result<(), DeliveryError> {
    let answer = serde_json::from_str::<Answer>(body).ok();
    if (200..300).contains(&status) && answer.as_ref().is_some_and(|a| a.ok) {
        return Ok(());
    }
    let code = answer.as_ref().and_then(|a| a.error_code).unwrap_or(status);
    let description = answer
        .as_ref()
        .and_then(|a| a.description.clone())
        .unwrap_or_else(|| format!("HTTP {status}"));
    let reason = format!("Bot API answered {code}: {description}");
    let hint = answer
        .as_ref()
        .and_then(|a| a.parameters.as_ref())
        .and_then(|p| p.retry_after)
        .or(retry_after)
        .map(Duration::from_secs);
    Err(match code {
        429 => DeliveryError::Retryable {
            reason,
            retry_after: hint,
        },
        401 | 404 => DeliveryError::retryable(format!("{reason} (check the bot token)")),
        400..=499 => DeliveryError::permanent(reason),
        _ => DeliveryError::retryable(reason),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_laid_out() {
        let m = Message {
            to: "42".into(),
            subject: "Заявка <№7> & «срочно»".into(),
            text: "Клиент пишет: \"<script>\"".into(),
            link: Some("https://ferum.example.ru/r/7?a=1&b=2".into()),
            ..Message::default()
        };
        assert_eq!(
            render(&m),
            "<b>Заявка &lt;№7&gt; &amp; «срочно»</b>\n\nКлиент пишет: &quot;&lt;script&gt;&quot;\
             \n\n<a href=\"https://ferum.example.ru/r/7?a=1&amp;b=2\">\
             https://ferum.example.ru/r/7?a=1&amp;b=2</a>"
        );
        let plain = Message {
            link: Some("javascript:alert(1)".into()),
            subject: String::new(),
            ..m
        };
        assert!(render(&plain).ends_with("\n\njavascript:alert(1)"));
    }

    #[test]
    fn long_text_is_cut_to_fit() {
        let m = Message {
            to: "42".into(),
            subject: "Тема".into(),
            text: "я".repeat(10_000),
            link: Some("https://ferum.example.ru/r/1".into()),
            ..Message::default()
        };
        let out = render(&m);
        let visible = out.replace("<b>", "").replace("</b>", "");
        let visible = visible
            .split("<a href")
            .next()
            .unwrap()
            .encode_utf16()
            .count()
            + "https://ferum.example.ru/r/1".len();
        assert!(visible <= MAX_TEXT, "{visible}");
        assert!(out.contains("я…"));
    }

    #[test]
    fn chat_ids_are_numbers_or_channel_names() {
        let body = |to: &str| {
            request_body(&Message {
                to: to.into(),
                text: "x".into(),
                ..Message::default()
            })
        };
        assert_eq!(
            body("-1001234567890").unwrap()["chat_id"],
            -1001234567890i64
        );
        assert_eq!(body("@ferum_news").unwrap()["chat_id"], "@ferum_news");
        assert_eq!(body("42").unwrap()["parse_mode"], "HTML");
        assert!(!body("ivan@example.ru").unwrap_err().is_retryable());
    }

    #[test]
    fn answers_are_sorted_into_retryable_and_permanent() {
        assert_eq!(interpret(200, r#"{"ok":true,"result":{}}"#, None), Ok(()));
        let e = interpret(
            429,
            r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 31","parameters":{"retry_after":31}}"#,
            None,
        )
        .unwrap_err();
        assert_eq!(e.retry_hint(), Some(Duration::from_secs(31)));
        assert!(
            interpret(502, "<html>Bad Gateway</html>", None)
                .unwrap_err()
                .is_retryable()
        );
        assert!(interpret(200, "not json", None).unwrap_err().is_retryable());
        let e = interpret(
            403,
            r#"{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}"#,
            None,
        )
        .unwrap_err();
        assert!(!e.is_retryable());
        assert!(e.reason().contains("bot was blocked"), "{e}");
        assert!(
            !interpret(
                400,
                r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#,
                None
            )
            .unwrap_err()
            .is_retryable()
        );
        assert!(
            interpret(
                401,
                r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#,
                None
            )
            .unwrap_err()
            .is_retryable()
        );
    }

    #[test]
    fn the_token_is_cut_out_of_messages() {
        let bot = TelegramBot::new(&TelegramConfig {
            token: parse_token("123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw").unwrap(),
            api_url: parse_api_url("https://api.telegram.org/").unwrap(),
            timeout: DEFAULT_TIMEOUT,
        });
        assert_eq!(
            bot.redact("bad uri: https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage"),
            "bad uri: https://api.telegram.org/bot***/sendMessage"
        );
        assert!(!format!("{bot:?}").contains("AAHdq"));
    }

    #[test]
    fn tokens_and_api_urls_are_checked_without_echoing_the_token() {
        assert!(parse_token("123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw").is_ok());
        for bad in [
            "",
            "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
            "12:short",
            "12:AAHdqTcvCH1vGWJxfSeofSAs0K5/ALDsaw",
        ] {
            let e = parse_token(bad).unwrap_err().to_string();
            assert!(bad.is_empty() || !e.contains(bad), "{e}");
        }
        assert!(parse_api_url("https://api.telegram.org").is_ok());
        assert!(parse_api_url("http://127.0.0.1:8081/").is_ok());
        for bad in [
            "http://api.telegram.org",
            "ftp://api.telegram.org",
            "https://api.telegram.org/bot123/",
            "https://u:p@api.telegram.org",
            "api.telegram.org",
        ] {
            assert!(parse_api_url(bad).is_err(), "{bad}");
        }
    }
}
