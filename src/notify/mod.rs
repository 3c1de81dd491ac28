//! Outbound notifications: e-mail over SMTP and Telegram Bot API messages.
//!
//! A [`Notifier`] holds one sender per configured channel and delivers one [`Message`] at a
//! time. It keeps no queue and never retries: a failed delivery comes back as a
//! [`DeliveryError`] that says whether trying again later can help ([`DeliveryError::Retryable`],
//! with the wait the other side asked for, if any) or not ([`DeliveryError::Permanent`]); the
//! caller (the outbox worker) decides when to try again.
//!
//! Each channel is an enum of a real client and [`Recording`], an in-memory sender that keeps
//! what was sent (and can be told to fail) for tests of the code that sends.

pub mod mail;
pub mod telegram;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A way to reach a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Email,
    Telegram,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Email, Channel::Telegram];

    /// The stable name, for storage and logs: `email`, `telegram`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Telegram => "telegram",
        }
    }

    /// The channel named by [`Channel::as_str`].
    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One notification to one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// The recipient's address on the channel it is sent on: an e-mail address
    /// (`ivan@example.ru` or `Иван Петров <ivan@example.ru>`) for [`Channel::Email`], a chat id
    /// (`123456789`, `-1001234567890`) or `@channelname` for [`Channel::Telegram`].
    pub to: String,
    /// The e-mail subject; the first, bold line of a Telegram message. May be empty.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// An HTML body, sent with the plain text as multipart/alternative e-mail. It should carry
    /// the link itself. Telegram ignores it.
    pub html: Option<String>,
    /// A link to the matter in the web interface (`https://…`): added at the end of the
    /// plain-text e-mail (unless the text already contains it) and as the last line in Telegram.
    pub link: Option<String>,
    /// A stable identifier of this notification (for instance the outbox row id), so that
    /// every attempt to deliver it carries the same e-mail `Message-ID`. Letters, digits and
    /// `.-_` only; others are dropped.
    pub id: Option<String>,
}

/// Why a delivery failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The message may go through later: the server was unreachable or slow, answered a
    /// temporary failure (SMTP 4xx, HTTP 5xx, Telegram 429), or refused our own credentials.
    /// `retry_after` is the wait the server asked for, when it said.
    #[error("temporary delivery failure: {reason}")]
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The message will never go through as it is: the recipient does not exist or blocked
    /// the bot, the address is malformed, or the channel is not configured.
    #[error("permanent delivery failure: {reason}")]
    Permanent { reason: String },
}

impl DeliveryError {
    pub fn retryable(reason: impl Into<String>) -> DeliveryError {
        DeliveryError::Retryable {
            reason: reason.into(),
            retry_after: None,
        }
    }

    pub fn retry_after(reason: impl Into<String>, after: Duration) -> DeliveryError {
        DeliveryError::Retryable {
            reason: reason.into(),
            retry_after: Some(after),
        }
    }

    pub fn permanent(reason: impl Into<String>) -> DeliveryError {
        DeliveryError::Permanent {
            reason: reason.into(),
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, DeliveryError::Retryable { .. })
    }

    /// How long the server asked us to wait before the next attempt, if it said.
    pub fn retry_hint(&self) -> Option<Duration> {
        match self {
            DeliveryError::Retryable { retry_after, .. } => *retry_after,
            DeliveryError::Permanent { .. } => None,
        }
    }

    /// The explanation, without the "temporary/permanent" prefix of `Display`.
    pub fn reason(&self) -> &str {
        match self {
            DeliveryError::Retryable { reason, .. } | DeliveryError::Permanent { reason } => reason,
        }
    }
}

/// Settings of both channels; a channel whose settings are absent is not configured.
#[derive(Debug, Clone, Default)]
pub struct NotifyConfig {
    /// `FERUM_SMTP_URL`, `FERUM_MAIL_FROM`, `FERUM_SMTP_TIMEOUT_SECS`.
    pub smtp: Option<mail::SmtpConfig>,
    /// `FERUM_TELEGRAM_BOT_TOKEN`, `FERUM_TELEGRAM_API_URL`, `FERUM_TELEGRAM_TIMEOUT_SECS`.
    pub telegram: Option<telegram::TelegramConfig>,
}

/// Sends e-mail.
#[derive(Debug, Clone)]
pub enum EmailSender {
    Smtp(mail::SmtpMailer),
    Recording(Recording),
}

/// Sends Telegram messages.
#[derive(Debug, Clone)]
pub enum TelegramSender {
    Bot(telegram::TelegramBot),
    Recording(Recording),
}

/// The configured channels. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    email: Option<EmailSender>,
    telegram: Option<TelegramSender>,
}

impl Notifier {
    pub fn new(email: Option<EmailSender>, telegram: Option<TelegramSender>) -> Notifier {
        Notifier { email, telegram }
    }

    /// Real clients for the channels `config` sets up; the others stay off.
    pub fn from_config(config: &NotifyConfig) -> anyhow::Result<Notifier> {
        Ok(Notifier {
            email: config
                .smtp
                .as_ref()
                .map(|c| mail::SmtpMailer::new(c).map(EmailSender::Smtp))
                .transpose()?,
            telegram: config
                .telegram
                .as_ref()
                .map(|c| TelegramSender::Bot(telegram::TelegramBot::new(c))),
        })
    }

    /// Both channels record into one [`Recording`], returned alongside for inspection.
    pub fn recording() -> (Notifier, Recording) {
        let r = Recording::default();
        let n = Notifier {
            email: Some(EmailSender::Recording(r.clone())),
            telegram: Some(TelegramSender::Recording(r.clone())),
        };
        (n, r)
    }

    /// Whether `channel` has a sender; sending on one that has not fails permanently.
    pub fn is_configured(&self, channel: Channel) -> bool {
        match channel {
            Channel::Email => self.email.is_some(),
            Channel::Telegram => self.telegram.is_some(),
        }
    }

    /// Delivers `message` on `channel`, once.
    pub async fn send(&self, channel: Channel, message: &Message) -> Result<(), DeliveryError> {
        match channel {
            Channel::Email => match &self.email {
                None => Err(not_configured(channel)),
                Some(EmailSender::Smtp(m)) => m.send(message).await,
                Some(EmailSender::Recording(r)) => r.record(channel, message),
            },
            Channel::Telegram => match &self.telegram {
                None => Err(not_configured(channel)),
                Some(TelegramSender::Bot(b)) => b.send(message).await,
                Some(TelegramSender::Recording(r)) => r.record(channel, message),
            },
        }
    }
}

fn not_configured(channel: Channel) -> DeliveryError {
    let setting = match channel {
        Channel::Email => "FERUM_SMTP_URL",
        Channel::Telegram => "FERUM_TELEGRAM_BOT_TOKEN",
    };
    DeliveryError::permanent(format!("{channel} is not configured (set {setting})"))
}

/// One message a [`Recording`] accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub channel: Channel,
    pub message: Message,
}

/// An in-memory sender: keeps every message it accepts, in order, and fails the next
/// deliveries on a channel when told to. Clones share the same record.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    inner: Arc<Mutex<RecordingState>>,
}

#[derive(Debug, Default)]
struct RecordingState {
    sent: Vec<Sent>,
    failures: HashMap<Channel, VecDeque<DeliveryError>>,
}

impl Recording {
    fn lock(&self) -> std::sync::MutexGuard<'_, RecordingState> {
        // A test that panicked while holding the lock leaves plain data behind: keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, channel: Channel, message: &Message) -> Result<(), DeliveryError> {
        let mut state = self.lock();
        if let Some(error) = state
            .failures
            .get_mut(&channel)
            .and_then(VecDeque::pop_front)
        {
            return Err(error);
        }
        state.sent.push(Sent {
            channel,
            message: message.clone(),
        });
        Ok(())
    }

    /// Everything accepted so far, oldest first.
    pub fn sent(&self) -> Vec<Sent> {
        self.lock().sent.clone()
    }

    /// The messages accepted on `channel`, oldest first.
    pub fn sent_on(&self, channel: Channel) -> Vec<Message> {
        self.lock()
            .sent
            .iter()
            .filter(|s| s.channel == channel)
            .map(|s| s.message.clone())
            .collect()
    }

    /// Forgets what was sent.
    pub fn clear(&self) {
        self.lock().sent.clear();
    }

    /// The next delivery on `channel` fails with `error` (queued after earlier ones), and
    /// records nothing.
    pub fn fail_next(&self, channel: Channel, error: DeliveryError) {
        self.lock()
            .failures
            .entry(channel)
            .or_default()
            .push_back(error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(to: &str) -> Message {
        Message {
            to: to.into(),
            subject: "Заявка №12 назначена".into(),
            text: "Инженер приедет завтра.".into(),
            ..Message::default()
        }
    }

    #[tokio::test]
    async fn an_unconfigured_channel_fails_permanently_and_names_its_setting() {
        let n = Notifier::default();
        for channel in Channel::ALL {
            assert!(!n.is_configured(channel));
            let e = n.send(channel, &message("x")).await.unwrap_err();
            assert!(!e.is_retryable(), "{e}");
            assert!(e.to_string().contains("not configured"), "{e}");
        }
        let e = n.send(Channel::Email, &message("x")).await.unwrap_err();
        assert!(e.reason().contains("FERUM_SMTP_URL"), "{e}");
    }

    #[tokio::test]
    async fn the_recording_keeps_messages_per_channel_and_fails_when_told() {
        let (n, r) = Notifier::recording();
        n.send(Channel::Email, &message("a@example.ru"))
            .await
            .unwrap();
        r.fail_next(
            Channel::Telegram,
            DeliveryError::retry_after("slow down", Duration::from_secs(7)),
        );
        let e = n.send(Channel::Telegram, &message("42")).await.unwrap_err();
        assert_eq!(e.retry_hint(), Some(Duration::from_secs(7)));
        n.send(Channel::Telegram, &message("42")).await.unwrap();
        assert_eq!(r.sent().len(), 2);
        assert_eq!(r.sent_on(Channel::Email)[0].to, "a@example.ru");
        assert_eq!(r.sent_on(Channel::Telegram)[0].to, "42");
        r.clear();
        assert!(r.sent().is_empty());
    }

    #[test]
    fn channels_round_trip_through_their_names() {
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
        }
        assert_eq!(Channel::parse("sms"), None);
    }
}
