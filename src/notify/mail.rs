//! E-mail over SMTP (lettre, async on tokio, TLS by rustls).
//!
//! `FERUM_SMTP_URL` names the server and how to reach it; unlike lettre's own URLs, `smtp://`
//! *requires* STARTTLS, so a misconfigured server fails instead of receiving passwords and
//! letters in the clear:
//!
//! | URL                                   | connection                 | default port |
//! |---------------------------------------|----------------------------|--------------|
//! | `smtp://user:password@host:587`       | STARTTLS, required         | 587          |
//! | `smtps://user:password@host:465`      | TLS from the first byte    | 465          |
//! | `smtp://127.0.0.1:2525?tls=off`       | unencrypted (local relay)  | 25           |
//!
//! User and password are percent-decoded (`%40` for `@`). An unencrypted connection may carry
//! a password only to this machine (a loopback address or `localhost`).

use super::{DeliveryError, Message};
use crate::config::Secret;
use anyhow::{Context, bail};
use lettre::message::{Mailbox, MultiPart, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::time::Duration;

/// How long one letter may take, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// How the connection to the server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `smtp://`: plain connection upgraded with STARTTLS; a server without it is an error.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    ImplicitTls,
    /// `smtp://…?tls=off`: no encryption (a relay on this machine or its private network).
    Plain,
}

/// The SMTP server from `FERUM_SMTP_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpServer {
    pub security: Security,
    pub host: String,
    pub port: u16,
    /// User name and password (both or neither), percent-decoded.
    pub credentials: Option<(String, Secret)>,
}

impl SmtpServer {
    /// Parses `smtp://[user:password@]host[:port][?tls=off]` or
    /// `smtps://[user:password@]host[:port]`. Messages never contain the password.
    pub fn parse(raw: &str) -> anyhow::Result<SmtpServer> {
        let url = url::Url::parse(raw).map_err(|e| {
            anyhow::anyhow!(
                "not a URL ({e}): {}; use smtp://USER:PASSWORD@HOST:587 (STARTTLS), \
                 smtps://USER:PASSWORD@HOST:465 (TLS) or smtp://HOST:25?tls=off (no encryption)",
                hide_password(raw)
            )
        })?;
        let mut tls_off = false;
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), value.as_ref()) {
                ("tls", "off") => tls_off = true,
                ("tls", "required" | "starttls") => tls_off = false,
                _ => bail!(
                    "unknown option {key}={value} (the only one is tls=off, for smtp:// only)"
                ),
            }
        }
        let security = match (url.scheme(), tls_off) {
            ("smtp", false) => Security::StartTls,
            ("smtp", true) => Security::Plain,
            ("smtps", false) => Security::ImplicitTls,
            ("smtps", true) => bail!("smtps:// is always encrypted: drop ?tls=off, or use smtp://"),
            (other, _) => bail!(
                "unsupported scheme {other:?}: use smtp:// (STARTTLS, or ?tls=off for an \
                 unencrypted local relay) or smtps:// (TLS from the start)"
            ),
        };
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => bail!("the URL names no server: {}", hide_password(raw)),
        };
        if !matches!(url.path(), "" | "/") || url.fragment().is_some() {
            bail!("the URL must end after the host and port (and ?tls=off)");
        }
        let port = url.port().unwrap_or(match security {
            Security::StartTls => 587,
            Security::ImplicitTls => 465,
            Security::Plain => 25,
        });
        let user = decode(url.username()).context("the user name")?;
        let password = url
            .password()
            .map(|p| decode(p).context("the password"))
            .transpose()?;
        let credentials = match (user.is_empty(), password) {
            (true, None) => None,
            (false, Some(p)) if !p.is_empty() => Some((user, Secret::new(p))),
            (false, _) => bail!("the URL has a user name but no password"),
            (true, Some(_)) => bail!("the URL has a password but no user name"),
        };
        if security == Security::Plain && credentials.is_some() && !is_local(&url) {
            bail!(
                "with tls=off the password would cross the network unencrypted; \
                 use smtp:// (STARTTLS) or smtps://, or a relay on this machine"
            );
        }
        Ok(SmtpServer {
            security,
            host,
            port,
            credentials,
        })
    }
}

/// `raw` with the password of its user part (`user:PASSWORD@`) replaced by `***`; works on
/// text that does not parse as a URL too.
fn hide_password(raw: &str) -> String {
    let Some(start) = raw.find("://").map(|i| i + 3) else {
        return raw.to_owned();
    };
    let rest = &raw[start..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) => {
            let user = &authority[..at];
            let user = user.split_once(':').map_or(user, |(u, _)| u);
            format!("{}{user}:***{}", &raw[..start], &raw[start + at..])
        }
        None => raw.to_owned(),
    }
}

fn decode(s: &str) -> anyhow::Result<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| anyhow::anyhow!("is not valid UTF-8 once percent-decoded"))
}

fn is_local(url: &url::Url) -> bool {
    match url.host() {
        // smtp:// is not a scheme the URL standard knows, so an IPv4 host stays a "domain".
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost")
                || d.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Parses the sender, `FERUM_MAIL_FROM`: `noreply@example.ru` or `Ferum <noreply@example.ru>`.
pub fn parse_from(raw: &str) -> anyhow::Result<Mailbox> {
    raw.trim().parse::<Mailbox>().map_err(|e| {
        anyhow::anyhow!(
            "must be an address such as noreply@example.ru or \"Ferum <noreply@example.ru>\", \
             got {raw:?} ({e})"
        )
    })
}

/// Everything needed to send e-mail.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub server: SmtpServer,
    pub from: Mailbox,
    /// For one letter, connection included (`FERUM_SMTP_TIMEOUT_SECS`).
    pub timeout: Duration,
    /// The name we greet the server with (EHLO); `[127.0.0.1]` when unset. Ferum uses the host
    /// of `FERUM_PUBLIC_URL`.
    pub hello_name: Option<String>,
}

/// Sends letters through one SMTP server, a new connection for each.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: std::sync::Arc<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    timeout: Duration,
    server: String,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl SmtpMailer {
    pub fn new(config: &SmtpConfig) -> anyhow::Result<SmtpMailer> {
        let s = &config.server;
        let tls = || {
            TlsParameters::new(s.host.clone())
                .with_context(|| format!("cannot set up TLS for {}", s.host))
        };
        let tls = match s.security {
            Security::StartTls => Tls::Required(tls()?),
            Security::ImplicitTls => Tls::Wrapper(tls()?),
            Security::Plain => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
            .port(s.port)
            .tls(tls)
            .timeout(Some(config.timeout));
        if let Some(name) = &config.hello_name {
            builder = builder.hello_name(ClientId::Domain(name.clone()));
        }
        if let Some((user, password)) = &s.credentials {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(SmtpMailer {
            transport: std::sync::Arc::new(builder.build()),
            from: config.from.clone(),
            timeout: config.timeout,
            server: format!("{}:{} ({:?})", s.host, s.port, s.security),
        })
    }

    /// Sends one letter. Error messages never contain the recipient's address.
    pub async fn send(&self, message: &Message) -> Result<(), DeliveryError> {
        let letter = build(&self.from, message)?;
        match tokio::time::timeout(self.timeout, self.transport.send(letter)).await {
            Err(_) => Err(DeliveryError::retryable(format!(
                "the SMTP server {} did not accept the letter within {} s",
                self.server,
                self.timeout.as_secs()
            ))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(classify(&e, &self.server, message.to.trim())),
        }
    }
}

/// The letter for `message`: plain text, or plain text and HTML as multipart/alternative.
pub fn build(from: &Mailbox, message: &Message) -> Result<lettre::Message, DeliveryError> {
    let to: Mailbox = message
        .to
        .trim()
        .parse()
        .map_err(|_| DeliveryError::permanent("the recipient is not a valid e-mail address"))?;
    let mut text = message.text.clone();
    if let Some(link) = message.link.as_deref().filter(|l| !text.contains(*l)) {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push('\n');
        text.push_str(link);
        text.push('\n');
    }
    let domain = from.email.domain().to_owned();
    let mut builder = lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(message.subject.as_str());
    let id = message
        .id
        .as_deref()
        .map(|id| {
            id.chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                .collect::<String>()
        })
        .filter(|id| !id.is_empty());
    builder = builder.message_id(Some(format!("<{}@{domain}>", id.unwrap_or_else(random_id))));
    let built = match &message.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(text, html.clone())),
        None => builder.header(ContentType::TEXT_PLAIN).body(text),
    };
    built.map_err(|e| DeliveryError::permanent(format!("cannot compose the letter: {e}")))
}

fn random_id() -> String {
    use rand::Rng;
    use rand::distributions::Alphanumeric;
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// Sorts an SMTP failure: 5xx answers are permanent (except refused credentials, which are
/// ours to fix and not the letter's fault); everything else may pass later.
fn classify(e: &lettre::transport::smtp::Error, server: &str, to: &str) -> DeliveryError {
    let mut reason = format!("SMTP server {server}: {e}");
    // Servers quote the refused address back; the error is logged and stored, the address
    // is personal data.
    if let Ok(mailbox) = to.parse::<Mailbox>() {
        reason = reason.replace(&mailbox.email.to_string(), "recipient");
    }
    if !to.is_empty() {
        reason = reason.replace(to, "recipient");
    }
    if e.is_permanent() {
        let code = e.status().map(|c| c.to_string()).unwrap_or_default();
        if matches!(code.as_str(), "530" | "534" | "535" | "538") {
            return DeliveryError::retryable(reason);
        }
        DeliveryError::permanent(reason)
    } else {
        DeliveryError::retryable(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_url_forms_parse() {
        let s = SmtpServer::parse("smtp://robot%40ferum:p%3Ass%20w@smtp.example.ru:587").unwrap();
        assert_eq!(s.security, Security::StartTls);
        assert_eq!((s.host.as_str(), s.port), ("smtp.example.ru", 587));
        let (user, password) = s.credentials.unwrap();
        assert_eq!(
            (user.as_str(), password.expose()),
            ("robot@ferum", "p:ss w")
        );

        let s = SmtpServer::parse("smtps://u:p@smtp.example.ru").unwrap();
        assert_eq!(s.security, Security::ImplicitTls);
        assert_eq!(s.port, 465);

        let s = SmtpServer::parse("smtp://127.0.0.1:2525?tls=off").unwrap();
        assert_eq!(s.security, Security::Plain);
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 2525));
        assert!(s.credentials.is_none());
        assert_eq!(SmtpServer::parse("smtp://relay?tls=off").unwrap().port, 25);
        assert_eq!(SmtpServer::parse("smtp://relay").unwrap().port, 587);
        assert_eq!(
            SmtpServer::parse("smtp://[::1]:25?tls=off").unwrap().host,
            "::1"
        );
    }

    #[test]
    fn bad_urls_are_refused_clearly_and_without_the_password() {
        for (url, expected) in [
            (
                "http://u:hunter22@mail.example.ru",
                "unsupported scheme \"http\"",
            ),
            ("submission://mail.example.ru", "unsupported scheme"),
            ("smtps://mail.example.ru?tls=off", "always encrypted"),
            ("smtp://mail.example.ru?ssl=1", "unknown option"),
            ("smtp://u@mail.example.ru", "no password"),
            ("smtp://u:hunter22@mail.example.ru:99999", "not a URL"),
            (
                "smtp://u:hunter22@mail.example.ru/path",
                "end after the host",
            ),
            ("smtp://u:hunter22@mail.example.ru?tls=off", "unencrypted"),
            ("mail.example.ru", "not a URL"),
        ] {
            let e = format!("{:#}", SmtpServer::parse(url).unwrap_err());
            assert!(e.contains(expected), "{url}: {e}");
            assert!(!e.contains("hunter22"), "{url}: {e}");
        }
        assert_eq!(
            hide_password("smtp://u:p@ss:w@h:1/x@y"),
            "smtp://u:***@h:1/x@y"
        );
        // A password to a relay on this machine may go unencrypted.
        assert!(SmtpServer::parse("smtp://u:p@localhost:25?tls=off").is_ok());
        assert!(SmtpServer::parse("smtp://u:p@127.0.0.1:25?tls=off").is_ok());
        assert!(SmtpServer::parse("smtp://u:p@[::1]:25?tls=off").is_ok());
        assert!(SmtpServer::parse("smtp://u:p@10.0.0.1:25?tls=off").is_err());
    }

    #[test]
    fn the_password_stays_out_of_debug_output() {
        let s = SmtpServer::parse("smtps://u:hunter22@smtp.example.ru").unwrap();
        assert!(!format!("{s:?}").contains("hunter22"));
        let config = SmtpConfig {
            server: s,
            from: parse_from("Ferum <noreply@example.ru>").unwrap(),
            timeout: DEFAULT_TIMEOUT,
            hello_name: None,
        };
        assert!(!format!("{config:?}").contains("hunter22"));
        let mailer = SmtpMailer::new(&config).unwrap();
        assert!(!format!("{mailer:?}").contains("hunter22"));
    }

    #[test]
    fn the_sender_must_be_a_mailbox() {
        let m = parse_from("Ferum <noreply@example.ru>").unwrap();
        assert_eq!(m.email.to_string(), "noreply@example.ru");
        assert_eq!(m.name.as_deref(), Some("Ferum"));
        assert!(parse_from("noreply@example.ru").is_ok());
        for bad in ["Ferum", "noreply@", "<noreply@example.ru", ""] {
            assert!(parse_from(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_letter_with_html_is_multipart_alternative_and_keeps_its_id() {
        let from = parse_from("Ferum <noreply@example.ru>").unwrap();
        let m = Message {
            to: "Иван <ivan@example.ru>".into(),
            subject: "Заявка".into(),
            text: "Текст".into(),
            html: Some("<p>Текст</p>".into()),
            link: Some("https://ferum.example.ru/requests/1".into()),
            id: Some("outbox-17".into()),
        };
        let raw = String::from_utf8(build(&from, &m).unwrap().formatted()).unwrap();
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("Message-ID: <outbox-17@example.ru>"), "{raw}");
        let bad = Message {
            to: "not an address".into(),
            ..m
        };
        assert!(!build(&from, &bad).unwrap_err().is_retryable());
    }
}
