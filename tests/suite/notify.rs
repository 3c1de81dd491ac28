//! Notifications over the real protocols: SMTP to a local sink, the Bot API to a local fake.

use crate::fakes::{FakeTelegram, SilentServer, SmtpSink, TelegramFailure, closed_port};
use ferum::config::Secret;
use ferum::notify::mail::{self, SmtpConfig, SmtpMailer, SmtpServer};
use ferum::notify::telegram::{self, TelegramBot, TelegramConfig};
use ferum::notify::{Channel, DeliveryError, EmailSender, Message, Notifier, TelegramSender};
use std::time::Duration;

const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

fn mailer(url: &str, timeout: Duration) -> Notifier {
    let config = SmtpConfig {
        server: SmtpServer::parse(url).unwrap(),
        from: mail::parse_from("Ферум <noreply@ferum.example.ru>").unwrap(),
        timeout,
        hello_name: Some("ferum.example.ru".into()),
    };
    Notifier::new(
        Some(EmailSender::Smtp(SmtpMailer::new(&config).unwrap())),
        None,
    )
}

fn bot(api_url: &str, timeout: Duration) -> Notifier {
    let config = TelegramConfig {
        token: telegram::parse_token(TOKEN).unwrap(),
        api_url: telegram::parse_api_url(api_url).unwrap(),
        timeout,
    };
    Notifier::new(None, Some(TelegramSender::Bot(TelegramBot::new(&config))))
}

fn letter(to: &str) -> Message {
    Message {
        to: to.into(),
        subject: "Заявка №42: замена огнетушителя ОП-4 в «Ромашке» — срочно".into(),
        text:
            "Здравствуйте, Иван!\n\nЗаявка назначена на инженера Петрова.\n.точка в начале строки"
                .into(),
        html: Some("<p>Здравствуйте, Иван!</p><p>Заявка назначена на <b>Петрова</b>.</p>".into()),
        link: Some("https://ferum.example.ru/requests/42".into()),
        id: Some("outbox-42".into()),
    }
}

#[tokio::test]
async fn a_letter_with_a_russian_subject_and_both_bodies_arrives_intact() {
    let sink = SmtpSink::start().await;
    let notifier = mailer(&sink.url(), Duration::from_secs(10));
    let m = letter("Иван Петров <ivan@example.ru>");
    notifier.send(Channel::Email, &m).await.unwrap();

    let got = sink.received();
    assert_eq!(got.len(), 1);
    let got = &got[0];
    assert_eq!(got.helo, "ferum.example.ru");
    assert_eq!(got.mail_from, "noreply@ferum.example.ru");
    assert_eq!(got.rcpt_to, ["ivan@example.ru"]);
    assert_eq!(got.auth, None);
    assert_eq!(got.subject().as_deref(), Some(m.subject.as_str()));
    assert_eq!(
        got.header("From").as_deref(),
        Some("Ферум <noreply@ferum.example.ru>")
    );
    assert_eq!(
        got.header("Message-ID").as_deref(),
        Some("<outbox-42@ferum.example.ru>")
    );
    assert!(
        got.header("Content-Type")
            .unwrap()
            .starts_with("multipart/alternative"),
        "{}",
        got.data
    );
    let text = got.part("text/plain").unwrap();
    assert_eq!(
        text.replace("\r\n", "\n"),
        format!("{}\n\nhttps://ferum.example.ru/requests/42\n", m.text)
    );
    assert_eq!(got.part("text/html").unwrap(), m.html.unwrap());
}

#[tokio::test]
async fn a_plain_letter_is_single_part_and_credentials_are_percent_decoded() {
    let sink = SmtpSink::start().await;
    let url = format!("smtp://robot%40ferum:p%40ss%3Aw%20rd@{}?tls=off", sink.addr);
    let notifier = mailer(&url, Duration::from_secs(10));
    let m = Message {
        to: "ivan@example.ru".into(),
        subject: "Отчёт".into(),
        text: "Отчёт за март готов.".into(),
        ..Message::default()
    };
    notifier.send(Channel::Email, &m).await.unwrap();
    let got = &sink.received()[0];
    assert_eq!(
        got.auth,
        Some(("robot@ferum".to_owned(), "p@ss:w rd".to_owned()))
    );
    let parts = got.parts();
    assert_eq!(parts.len(), 1, "{}", got.data);
    assert_eq!(parts[0].content_type, "text/plain");
    assert_eq!(parts[0].body.trim_end(), "Отчёт за март готов.");
    assert!(
        got.header("Message-ID")
            .unwrap()
            .ends_with("@ferum.example.ru>")
    );
}

#[tokio::test]
async fn a_refused_recipient_is_a_permanent_failure_that_does_not_repeat_the_address() {
    let sink = SmtpSink::start().await;
    sink.refuse(
        "nobody@example.ru",
        550,
        "5.1.1 <nobody@example.ru>: Recipient address rejected: User unknown",
    );
    let notifier = mailer(&sink.url(), Duration::from_secs(10));
    let e = notifier
        .send(Channel::Email, &letter("nobody@example.ru"))
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.reason().contains("550"), "{e}");
    assert!(!e.to_string().contains("nobody@"), "{e}");
    assert!(sink.received().is_empty());

    // A temporary refusal (greylisting) may pass later.
    sink.refuse("grey@example.ru", 451, "4.7.1 greylisted, try again later");
    let e = notifier
        .send(Channel::Email, &letter("grey@example.ru"))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
}

#[tokio::test]
async fn a_mail_server_that_is_down_or_silent_is_a_retryable_failure() {
    let down = closed_port().await;
    let notifier = mailer(&format!("smtp://{down}?tls=off"), Duration::from_secs(10));
    let e = notifier
        .send(Channel::Email, &letter("ivan@example.ru"))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");

    let silent = SilentServer::start().await;
    let notifier = mailer(
        &format!("smtp://{}?tls=off", silent.addr),
        Duration::from_secs(1),
    );
    let started = std::time::Instant::now();
    let e = notifier
        .send(Channel::Email, &letter("ivan@example.ru"))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_telegram_message_arrives_with_its_chat_id_and_escaped_text() {
    let api = FakeTelegram::start().await;
    let notifier = bot(&api.url(), Duration::from_secs(10));
    let m = Message {
        to: "-1001234567890".into(),
        subject: "Заявка <№42> & срочно".into(),
        text: "Клиент: \"a < b\"".into(),
        link: Some("https://ferum.example.ru/requests/42".into()),
        ..Message::default()
    };
    notifier.send(Channel::Telegram, &m).await.unwrap();
    let calls = api.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].token, TOKEN);
    assert_eq!(calls[0].method, "sendMessage");
    let body = &calls[0].body;
    assert_eq!(body["chat_id"], -1001234567890i64);
    assert_eq!(body["parse_mode"], "HTML");
    assert_eq!(body["disable_web_page_preview"], true);
    assert_eq!(
        body["text"],
        "<b>Заявка &lt;№42&gt; &amp; срочно</b>\n\nКлиент: &quot;a &lt; b&quot;\n\n\
         <a href=\"https://ferum.example.ru/requests/42\">https://ferum.example.ru/requests/42</a>"
    );
}

#[tokio::test]
async fn telegram_failures_are_sorted_and_never_show_the_token() {
    let api = FakeTelegram::start().await;
    let notifier = bot(&api.url(), Duration::from_secs(10));
    let m = Message {
        to: "42".into(),
        text: "Проверка".into(),
        ..Message::default()
    };
    let mut errors: Vec<DeliveryError> = Vec::new();

    api.fail_next(1, TelegramFailure::TooManyRequests { retry_after: 31 });
    let e = notifier.send(Channel::Telegram, &m).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(e.retry_hint(), Some(Duration::from_secs(31)));
    errors.push(e);

    api.fail_next(1, TelegramFailure::ServerError);
    let e = notifier.send(Channel::Telegram, &m).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(e.retry_hint(), None);
    errors.push(e);

    api.fail_next(1, TelegramFailure::Blocked);
    let e = notifier.send(Channel::Telegram, &m).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.reason().contains("bot was blocked by the user"), "{e}");
    errors.push(e);

    api.fail_next(1, TelegramFailure::ChatNotFound);
    let e = notifier.send(Channel::Telegram, &m).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    errors.push(e);

    // After the failures, the next call goes through.
    notifier.send(Channel::Telegram, &m).await.unwrap();
    assert_eq!(api.calls().len(), 5);
    assert_eq!(api.delivered().len(), 1);

    let down = closed_port().await;
    let e = bot(&format!("http://{down}"), Duration::from_secs(10))
        .send(Channel::Telegram, &m)
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    errors.push(e);

    let silent = SilentServer::start().await;
    let e = bot(&format!("http://{}", silent.addr), Duration::from_secs(1))
        .send(Channel::Telegram, &m)
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    errors.push(e);

    let secret_part = TOKEN.split_once(':').unwrap().1;
    for e in &errors {
        for shown in [e.to_string(), format!("{e:?}"), format!("{e:#?}")] {
            assert!(!shown.contains(secret_part), "{shown}");
        }
    }
    assert!(!format!("{notifier:?}").contains(secret_part));
}

#[test]
fn secrets_print_as_stars() {
    assert_eq!(format!("{:?}", Secret::new("hunter22")), "***");
    let config = TelegramConfig {
        token: telegram::parse_token(TOKEN).unwrap(),
        api_url: telegram::parse_api_url(telegram::DEFAULT_API_URL).unwrap(),
        timeout: telegram::DEFAULT_TIMEOUT,
    };
    assert!(!format!("{config:?}").contains(TOKEN.split_once(':').unwrap().1));
}

#[test]
fn check_refuses_a_bad_smtp_url_without_printing_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferum"))
        .arg("check")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FERUM_DATA_DIR", dir.path().join("data"))
        .env("FERUM_LOG", "warn")
        .env("FERUM_SMTP_URL", "http://robot:hunter22@mail.example.ru")
        .env("FERUM_MAIL_FROM", "noreply@example.ru")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("FERUM_SMTP_URL"), "{all}");
    assert!(all.contains("unsupported scheme"), "{all}");
    assert!(!all.contains("hunter22"), "{all}");
}
