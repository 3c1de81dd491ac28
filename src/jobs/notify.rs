//! Who hears about an event, and what they read: an event becomes one message per person
//! and channel, in the person's language, with a link to the record.
//!
//! People hear only about work that is theirs: an emergency reaches the site's engineers, the
//! project's manager and the administrators; a new request its engineer and the project's
//! manager; an assignment the engineer; a status change the customer's contact and its client
//! users (who read only the number, subject and status); a submitted act the project's
//! manager; an approved act its engineer; a project becoming active the customer's contact;
//! SLA warnings and breaches the heads of service and administrators; the day's overdue
//! requests of a project manager's projects that manager; repeated failed sign-ins the
//! administrators.

use crate::crypto::DataKeys;
use crate::domain::access::Role;
use crate::domain::event::{Deadline, Event};
use crate::error::Result;
use crate::notify::Channel;
use crate::store::outbox::Delivery;
use crate::store::recipients::{self, Person};
use crate::store::{Db, pii};
use crate::web::i18n::{Lang, Tr};

/// What the messages need besides the database.
#[derive(Clone)]
pub struct Composer {
    pub db: Db,
    /// The site's address for links (`FERUM_PUBLIC_URL`); messages carry no link without it.
    pub public_url: Option<String>,
    /// The company's time zone, for times in messages.
    pub tz: chrono_tz::Tz,
    /// The channels this site has configured; no message is queued for another (it could
    /// never be sent, and would only fill the outbox with dead rows).
    pub channels: Vec<Channel>,
}

/// One message before it is bound to an address.
struct Note {
    subject: String,
    text: String,
    link: Option<String>,
}

/// Who hears: users (each on e-mail, and on Telegram when linked), and plain addresses
/// (a customer's contact e-mail, written to in Russian).
#[derive(Default)]
struct Audience {
    users: Vec<i64>,
    roles: Vec<Role>,
    clients_of: Option<i64>,
    contact: Option<String>,
}

impl Composer {
    /// The messages of an event: (channel, message) for each person and channel, addresses
    /// never repeated on a channel. An event about a record that no longer exists has none.
    pub async fn deliveries(
        &self,
        event_id: i64,
        event: &Event,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<(Channel, Delivery)>> {
        let Some((audience, write)) = self.plan(event, now).await? else {
            return Ok(Vec::new());
        };
        let mut people: Vec<Person> = recipients::people(&self.db, &audience.users).await?;
        for role in &audience.roles {
            people.extend(recipients::with_role(&self.db, *role).await?);
        }
        if let Some(customer) = audience.clients_of {
            people.extend(recipients::clients_of(&self.db, customer).await?);
        }
        let mut out: Vec<(Channel, Delivery)> = Vec::new();
        let channels = &self.channels;
        let mut push = |channel: Channel, to: String, note: Note| {
            if !channels.contains(&channel)
                || to.trim().is_empty()
                || out.iter().any(|(c, d)| *c == channel && d.to == to)
            {
                return;
            }
            out.push((
                channel,
                Delivery {
                    event_id,
                    to,
                    subject: note.subject,
                    text: note.text,
                    link: note.link,
                },
            ));
        };
        for p in people {
            let lang = Lang::parse(&p.lang).unwrap_or(Lang::Ru);
            if p.notify_email != 0 {
                push(Channel::Email, p.email.clone(), write(self, lang));
            }
            if let Some(chat) = p
                .telegram_chat_id
                .clone()
                .filter(|_| p.notify_telegram != 0)
            {
                // A chat message is its one line (and the link): no subject above it.
                let note = Note {
                    subject: String::new(),
                    ..write(self, lang)
                };
                push(Channel::Telegram, chat, note);
            }
        }
        if let Some(contact) = audience.contact {
            push(Channel::Email, contact, write(self, Lang::Ru));
        }
        Ok(out)
    }

    fn tr(&self, lang: Lang) -> Tr {
        Tr { lang, tz: self.tz }
    }

    fn link(&self, path: &str) -> Option<String> {
        self.public_url
            .as_deref()
            .map(|base| format!("{}{path}", base.trim_end_matches('/')))
    }

    fn contact(&self, stored: &str) -> Result<Option<String>> {
        if stored.is_empty() {
            return Ok(None);
        }
        let keys: &DataKeys = self.db.keys()?;
        let plain = pii::decrypt(keys, "customers", "contact_email", stored)?;
        Ok(Some(plain).filter(|p| !p.trim().is_empty()))
    }

    /// Who hears about `event`, and how to write it in a language; `None` when the record it
    /// is about is gone.
    #[allow(clippy::type_complexity)]
    async fn plan(
        &self,
        event: &Event,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<(Audience, Box<dyn Fn(&Composer, Lang) -> Note + Send + Sync>)>> {
        let request = |id: i64| recipients::request(&self.db, id);
        Ok(Some(match event.clone() {
            Event::RequestOpened {
                request: id,
                emergency,
            } => {
                let Some(r) = request(id.0).await? else {
                    return Ok(None);
                };
                let mut a = Audience {
                    users: [r.assigned_to, r.manager_id]
                        .into_iter()
                        .flatten()
                        .collect(),
                    ..Audience::default()
                };
                if emergency {
                    if let Some(object) = r.object_id {
                        a.users
                            .extend(recipients::object_engineers(&self.db, object).await?);
                    }
                    a.roles.push(Role::Admin);
                }
                let key = if emergency {
                    "notify.emergency_opened"
                } else {
                    "notify.request_opened"
                };
                (
                    a,
                    Box::new(move |c: &Composer, l: Lang| {
                        c.note(
                            l,
                            key,
                            &[("number", &r.number), ("subject", &r.subject)],
                            &format!("/requests/{}", r.id),
                        )
                    }),
                )
            }
            Event::RequestAssigned {
                request: id,
                engineer,
            } => {
                let Some(r) = request(id.0).await? else {
                    return Ok(None);
                };
                // Only while that engineer is still the one assigned.
                if r.assigned_to != Some(engineer.0) {
                    return Ok(None);
                }
                let a = Audience {
                    users: vec![engineer.0],
                    ..Audience::default()
                };
                (
                    a,
                    Box::new(move |c: &Composer, l: Lang| {
                        c.note(
                            l,
                            "notify.request_assigned",
                            &[("number", &r.number), ("subject", &r.subject)],
                            &format!("/requests/{}", r.id),
                        )
                    }),
                )
            }
            Event::StatusChanged {
                request: id, to, ..
            } => {
                let Some(r) = request(id.0).await? else {
                    return Ok(None);
                };
                let a = Audience {
                    clients_of: Some(r.customer_id),
                    contact: self.contact(&r.contact_email)?,
                    ..Audience::default()
                };
                (
                    a,
                    Box::new(move |c: &Composer, l: Lang| {
                        let status = c.tr(l).t(&format!("status.{}", to.as_str()));
                        c.note(
                            l,
                            "notify.status_changed",
                            &[
                                ("number", &r.number),
                                ("subject", &r.subject),
                                ("status", status),
                            ],
                            &format!("/requests/{}", r.id),
                        )
                    }),
                )
            }
            Event::ReportSubmitted {
                report,
                request: id,
            }
            | Event::ReportApproved {
                report,
                request: id,
            } => {
                let approved = matches!(event, Event::ReportApproved { .. });
                let Some(r) = request(id.0).await? else {
                    return Ok(None);
                };
                let Some((act, engineer)) = recipients::report(&self.db, report.0).await? else {
                    return Ok(None);
                };
                let (users, key) = if approved {
                    (vec![engineer], "notify.report_approved")
                } else {
                    (
                        r.manager_id.into_iter().collect(),
                        "notify.report_submitted",
                    )
                };
                let a = Audience {
                    users,
                    ..Audience::default()
                };
                (
                    a,
                    Box::new(move |c: &Composer, l: Lang| {
                        c.note(
                            l,
                            key,
                            &[
                                ("act", &act),
                                ("number", &r.number),
                                ("subject", &r.subject),
                            ],
                            &format!("/reports/{}", report.0),
                        )
                    }),
                )
            }
            Event::ProjectActivated { project } => {
                let Some(p) = recipients::project(&self.db, project.0).await? else {
                    return Ok(None);
                };
                let a = Audience {
                    contact: self.contact(&p.contact_email)?,
                    ..Audience::default()
                };
                (
                    a,
                    Box::new(move |c: &Composer, l: Lang| {
                        c.note(
                            l,
                            "notify.project_activated",
                            &[
                                ("customer", &p.customer_name),
                                ("project", &p.name),
                                ("start", &p.start_date),
                            ],
                            "/",
                        )
                    }),
                )
            }
            Event::SlaWarning {
                request: id,
                deadline,
                deadline_at,
            }
            | Event::SlaBreached {
                request: id,
                deadline,
                deadline_at,
            } => {
                let breached = matches!(event, Event::SlaBreached { .. });
                let Some(r) = request(id.0).await? else {
                    return Ok(None);
                };
                let a = Audience {
                    roles: vec![Role::DepartmentHead, Role::Admin],
                    ..Audience::default()
                };
                let key = if breached {
                    "notify.sla_breached"
                } else {
                    "notify.sla_warning"
                };
                (
                    a,
                    Box::new(move |c: &Composer, l: Lang| {
                        let t = c.tr(l);
                        let which = t.t(match deadline {
                            Deadline::Assign => "notify.deadline.assign",
                            Deadline::Close => "notify.deadline.close",
                        });
                        let at = crate::domain::time::from_db(&deadline_at)
                            .map(|at| at.with_timezone(&c.tz).format("%d.%m.%Y %H:%M").to_string())
                            .unwrap_or_default();
                        c.note(
                            l,
                            key,
                            &[
                                ("number", &r.number),
                                ("subject", &r.subject),
                                ("deadline", which),
                                ("at", &at),
                            ],
                            &format!("/requests/{}", r.id),
                        )
                    }),
                )
            }
            Event::OverdueDigest { manager, .. } => {
                let late =
                    crate::store::requests::overdue_of_manager(&self.db, manager, now).await?;
                if late.is_empty() {
                    return Ok(None);
                }
                let a = Audience {
                    users: vec![manager.0],
                    ..Audience::default()
                };
                (
                    a,
                    Box::new(move |c: &Composer, l: Lang| {
                        let shown: Vec<String> = late
                            .iter()
                            .take(20)
                            .map(|(number, subject)| format!("{number}: {subject}"))
                            .collect();
                        let count = late.len().to_string();
                        let mut note = c.note(
                            l,
                            "notify.overdue_digest",
                            &[("count", &count)],
                            "/requests?overdue=true",
                        );
                        note.text = format!("{}\n\n{}", note.text, shown.join("\n"));
                        note
                    }),
                )
            }
            Event::LoginAlert {
                account, failures, ..
            } => {
                let a = Audience {
                    roles: vec![Role::Admin],
                    ..Audience::default()
                };
                (
                    a,
                    Box::new(move |c: &Composer, l: Lang| {
                        c.note(
                            l,
                            "notify.login_alert",
                            &[("account", &account), ("failures", &failures.to_string())],
                            "/admin/audit",
                        )
                    }),
                )
            }
        }))
    }

    /// A message from the catalogue's `key` (its first line the subject), with `{name}`
    /// placeholders filled in.
    fn note(&self, lang: Lang, key: &str, values: &[(&str, &str)], path: &str) -> Note {
        let mut text = self.tr(lang).t(key).to_owned();
        for (name, value) in values {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        Note {
            subject: text.clone(),
            text,
            link: self.link(path),
        }
    }
}
