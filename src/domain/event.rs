//! What happened, for the outside world: the events a write leaves in the outbox, in its own
//! transaction, for the worker to turn into notifications.
//!
//! An event names records by id only; the worker reads what it needs when it delivers, so an
//! event never carries data its recipients may not see. Each event has a de-duplication key:
//! the outbox keeps one event per key, so a retried write or a sweep that runs twice queues it
//! once.

use super::ids::{ProjectId, ReportId, RequestId, UserId};
use super::request::Status;
use serde::{Deserialize, Serialize};

/// Which deadline of a request an SLA event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deadline {
    /// Assign an engineer by `assign_by`.
    Assign,
    /// Close the request by `close_by`.
    Close,
}

/// Something that happened that people may need to hear about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A request was opened (`emergency` for the emergency type).
    RequestOpened { request: RequestId, emergency: bool },
    /// An engineer was assigned to a request (at opening or later).
    RequestAssigned {
        request: RequestId,
        engineer: UserId,
    },
    /// A request moved in its workflow; `seq` is the history entry, so each move is its own
    /// event.
    StatusChanged {
        request: RequestId,
        from: Status,
        to: Status,
        seq: i64,
    },
    /// An act was submitted (which completes its request).
    ReportSubmitted {
        report: ReportId,
        request: RequestId,
    },
    /// An act was approved by the head of service.
    ReportApproved {
        report: ReportId,
        request: RequestId,
    },
    /// A project became active: its customer gets the welcome message.
    ProjectActivated { project: ProjectId },
    /// A request used a large share of the time before a deadline (`deadline_at` in the
    /// database's text form, which keys the event to that deadline).
    SlaWarning {
        request: RequestId,
        deadline: Deadline,
        deadline_at: String,
    },
    /// A request passed a deadline.
    SlaBreached {
        request: RequestId,
        deadline: Deadline,
        deadline_at: String,
    },
    /// The day's list of overdue requests in a project manager's projects (`day` in the
    /// company's calendar), once a day.
    OverdueDigest { manager: UserId, day: String },
    /// Repeated failed sign-ins on one account (the 10th and 100th of a day by default).
    LoginAlert {
        account: String,
        failures: u64,
        day: String,
    },
}

impl Event {
    /// The event's kind, as stored in the outbox's `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::RequestOpened { .. } => "request_opened",
            Event::RequestAssigned { .. } => "request_assigned",
            Event::StatusChanged { .. } => "status_changed",
            Event::ReportSubmitted { .. } => "report_submitted",
            Event::ReportApproved { .. } => "report_approved",
            Event::ProjectActivated { .. } => "project_activated",
            Event::SlaWarning { .. } => "sla_warning",
            Event::SlaBreached { .. } => "sla_breached",
            Event::OverdueDigest { .. } => "overdue_digest",
            Event::LoginAlert { .. } => "login_alert",
        }
    }

    /// The de-duplication key: the same happening always gives the same key.
    pub fn dedup_key(&self) -> String {
        let kind = self.kind();
        match self {
            Event::RequestOpened { request, .. } => format!("{kind}:{request}"),
            Event::RequestAssigned { request, engineer } => {
                format!("{kind}:{request}:{engineer}")
            }
            Event::StatusChanged { request, seq, .. } => format!("{kind}:{request}:{seq}"),
            Event::ReportSubmitted { report, .. } | Event::ReportApproved { report, .. } => {
                format!("{kind}:{report}")
            }
            Event::ProjectActivated { project } => format!("{kind}:{project}"),
            Event::SlaWarning {
                request,
                deadline,
                deadline_at,
            }
            | Event::SlaBreached {
                request,
                deadline,
                deadline_at,
            } => format!("{kind}:{request}:{deadline:?}:{deadline_at}"),
            Event::OverdueDigest { manager, day } => format!("{kind}:{manager}:{day}"),
            Event::LoginAlert {
                account,
                failures,
                day,
            } => format!("{kind}:{account}:{day}:{failures}"),
        }
    }
}

/// The events of a new request: opened, and assigned when it was opened with an engineer.
pub fn request_opened(request: RequestId, emergency: bool, engineer: Option<UserId>) -> Vec<Event> {
    let mut events = vec![Event::RequestOpened { request, emergency }];
    if let Some(engineer) = engineer {
        events.push(Event::RequestAssigned { request, engineer });
    }
    events
}

/// The event of a changed assignment: only when a different engineer is now assigned.
pub fn assignment_changed(
    request: RequestId,
    before: Option<UserId>,
    after: Option<UserId>,
) -> Option<Event> {
    match after {
        Some(engineer) if before != Some(engineer) => {
            Some(Event::RequestAssigned { request, engineer })
        }
        _ => None,
    }
}

/// The event of a project's status change: the welcome message goes out when it becomes
/// active, from any other status, and only then.
pub fn project_status_changed(project: ProjectId, before: &str, after: &str) -> Option<Event> {
    (after == "active" && before != "active").then_some(Event::ProjectActivated { project })
}

/// What the SLA sweep knows of an open request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaFacts {
    pub request: RequestId,
    pub status: Status,
    pub assigned: bool,
    /// When the clock started (the request's creation).
    pub since: chrono::DateTime<chrono::Utc>,
    pub assign_by: chrono::DateTime<chrono::Utc>,
    pub close_by: chrono::DateTime<chrono::Utc>,
}

/// The SLA events due for a request at `now`: for each deadline still running, a breach once
/// it has passed, else a warning once `warn_percent` of its time is used. The assignment
/// deadline runs while the request is open without an engineer, the closing one while it is
/// open or in progress. Keys carry the deadline, so each is raised once per deadline.
pub fn sla_events(
    f: &SlaFacts,
    now: chrono::DateTime<chrono::Utc>,
    warn_percent: u8,
) -> Vec<Event> {
    let mut out = Vec::new();
    let running = [
        (
            Deadline::Assign,
            f.assign_by,
            f.status == Status::Open && !f.assigned,
        ),
        (
            Deadline::Close,
            f.close_by,
            matches!(f.status, Status::Open | Status::InProgress),
        ),
    ];
    for (deadline, at, is_running) in running {
        if !is_running {
            continue;
        }
        let deadline_at = super::time::to_db(at);
        let span = (at - f.since).num_seconds().max(0);
        let warn_at =
            f.since + chrono::Duration::seconds(span * i64::from(warn_percent.min(100)) / 100);
        if now >= at {
            out.push(Event::SlaBreached {
                request: f.request,
                deadline,
                deadline_at,
            });
        } else if now >= warn_at {
            out.push(Event::SlaWarning {
                request: f.request,
                deadline,
                deadline_at,
            });
        }
    }
    out
}

/// When a retry of a failed delivery is due: exponential back-off from 30 s, doubled per
/// attempt, capped at an hour, with `jitter` (0.0–1.0, from the caller) spreading it by up to
/// a fifth so that many failures do not retry in step.
pub fn retry_delay(attempts: i64, jitter: f64) -> chrono::Duration {
    let base = 30_i64.saturating_mul(1_i64 << attempts.clamp(1, 20).saturating_sub(1));
    let capped = base.min(3600);
    let spread = (capped as f64 * 0.2 * jitter.clamp(0.0, 1.0)) as i64;
    chrono::Duration::seconds(capped + spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_their_stored_form() {
        let all = [
            Event::RequestOpened {
                request: RequestId(1),
                emergency: true,
            },
            Event::RequestAssigned {
                request: RequestId(1),
                engineer: UserId(7),
            },
            Event::StatusChanged {
                request: RequestId(1),
                from: Status::Open,
                to: Status::InProgress,
                seq: 3,
            },
            Event::ReportSubmitted {
                report: ReportId(2),
                request: RequestId(1),
            },
            Event::ReportApproved {
                report: ReportId(2),
                request: RequestId(1),
            },
            Event::ProjectActivated {
                project: ProjectId(4),
            },
            Event::SlaWarning {
                request: RequestId(1),
                deadline: Deadline::Assign,
                deadline_at: "2026-03-02T09:15:00.000000Z".into(),
            },
            Event::SlaBreached {
                request: RequestId(1),
                deadline: Deadline::Close,
                deadline_at: "2026-03-02T11:00:00.000000Z".into(),
            },
            Event::OverdueDigest {
                manager: UserId(3),
                day: "2026-03-02".into(),
            },
            Event::LoginAlert {
                account: "a@example.ru".into(),
                failures: 10,
                day: "2026-03-02".into(),
            },
        ];
        let mut keys = std::collections::HashSet::new();
        for e in all {
            let stored = serde_json::to_value(&e).unwrap();
            assert_eq!(stored["kind"], e.kind());
            assert_eq!(serde_json::from_value::<Event>(stored).unwrap(), e);
            assert!(keys.insert(e.dedup_key()), "{e:?}");
        }
    }

    #[test]
    fn each_move_and_each_deadline_is_its_own_event_and_repeats_are_one() {
        let moved = |seq| Event::StatusChanged {
            request: RequestId(1),
            from: Status::Open,
            to: Status::InProgress,
            seq,
        };
        assert_ne!(moved(1).dedup_key(), moved(2).dedup_key());
        assert_eq!(moved(1).dedup_key(), moved(1).dedup_key());
        let warn = |at: &str| Event::SlaWarning {
            request: RequestId(1),
            deadline: Deadline::Assign,
            deadline_at: at.into(),
        };
        assert_ne!(warn("a").dedup_key(), warn("b").dedup_key());
    }

    #[test]
    fn a_new_request_is_opened_and_assigned_only_with_an_engineer() {
        assert_eq!(request_opened(RequestId(1), false, None).len(), 1);
        let both = request_opened(RequestId(1), true, Some(UserId(5)));
        assert_eq!(both[1].kind(), "request_assigned");
        assert_eq!(
            assignment_changed(RequestId(1), Some(UserId(5)), Some(UserId(5))),
            None
        );
        assert_eq!(
            assignment_changed(RequestId(1), Some(UserId(5)), None),
            None
        );
        assert!(assignment_changed(RequestId(1), None, Some(UserId(5))).is_some());
        assert!(assignment_changed(RequestId(1), Some(UserId(4)), Some(UserId(5))).is_some());
    }

    #[test]
    fn only_becoming_active_welcomes() {
        assert!(project_status_changed(ProjectId(1), "planned", "active").is_some());
        assert!(project_status_changed(ProjectId(1), "active", "active").is_none());
        assert!(project_status_changed(ProjectId(1), "active", "completed").is_none());
    }

    #[test]
    fn sla_warnings_come_at_the_share_and_breaches_at_the_deadline_while_it_runs() {
        use chrono::TimeZone;
        let t0 = chrono::Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
        let f = SlaFacts {
            request: RequestId(1),
            status: Status::Open,
            assigned: false,
            since: t0,
            assign_by: t0 + chrono::Duration::minutes(15),
            close_by: t0 + chrono::Duration::minutes(120),
        };
        let at = |m: i64| t0 + chrono::Duration::minutes(m);
        let kinds = |f: &SlaFacts, m| -> Vec<(&'static str, Deadline)> {
            sla_events(f, at(m), 80)
                .into_iter()
                .map(|e| match e {
                    Event::SlaWarning { deadline, .. } => ("warning", deadline),
                    Event::SlaBreached { deadline, .. } => ("breach", deadline),
                    _ => unreachable!(),
                })
                .collect()
        };
        assert!(kinds(&f, 11).is_empty());
        assert_eq!(kinds(&f, 12), [("warning", Deadline::Assign)]);
        assert_eq!(kinds(&f, 15), [("breach", Deadline::Assign)]);
        assert_eq!(
            kinds(&f, 96),
            [("breach", Deadline::Assign), ("warning", Deadline::Close)]
        );
        assert_eq!(
            kinds(&f, 120),
            [("breach", Deadline::Assign), ("breach", Deadline::Close)]
        );
        // An engineer stops the assignment clock; work done stops the closing one.
        let assigned = SlaFacts {
            assigned: true,
            ..f
        };
        assert_eq!(kinds(&assigned, 15), Vec::<(&str, Deadline)>::new());
        let working = SlaFacts {
            status: Status::InProgress,
            assigned: true,
            ..f
        };
        assert_eq!(kinds(&working, 130), [("breach", Deadline::Close)]);
        for done in [Status::Completed, Status::Closed, Status::Cancelled] {
            assert!(kinds(&SlaFacts { status: done, ..f }, 500).is_empty());
        }
        // The same deadline gives the same key at every sweep.
        assert_eq!(
            sla_events(&f, at(12), 80)[0].dedup_key(),
            sla_events(&f, at(13), 80)[0].dedup_key()
        );
    }

    #[test]
    fn retries_back_off_exponentially_with_a_cap_and_bounded_jitter() {
        assert_eq!(retry_delay(1, 0.0).num_seconds(), 30);
        assert_eq!(retry_delay(2, 0.0).num_seconds(), 60);
        assert_eq!(retry_delay(3, 0.0).num_seconds(), 120);
        assert_eq!(retry_delay(50, 0.0).num_seconds(), 3600);
        assert_eq!(retry_delay(1, 1.0).num_seconds(), 36);
        assert_eq!(retry_delay(50, 1.0).num_seconds(), 4320);
        assert_eq!(retry_delay(0, 5.0).num_seconds(), 36);
    }
}
