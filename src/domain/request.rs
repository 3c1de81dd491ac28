//! Service requests: workflow, SLA deadlines, consistency of object/project/customer, numbers.

use super::access::{Actor, Role};
use super::ids::{CustomerId, ProjectId};
use crate::error::Error;
use chrono::{DateTime, Duration, Utc};

macro_rules! code_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $code:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $code),* }
            }
            pub fn parse(s: &str) -> Option<$name> {
                match s { $($code => Some($name::$variant),)* _ => None }
            }
        }
    };
}
pub(crate) use code_enum;

code_enum!(
    /// Request type; decides the SLA.
    RequestType { Maintenance = "maintenance", Emergency = "emergency" }
);

code_enum!(
    /// Where a request came from.
    Source {
        Web = "web",
        Portal = "portal",
        Api = "api",
        Bot = "bot",
        Phone = "phone",
        Email = "email",
        Schedule = "schedule",
    }
);

code_enum!(
    /// Workflow status.
    Status {
        Open = "open",
        InProgress = "in_progress",
        Completed = "completed",
        Closed = "closed",
        Cancelled = "cancelled",
    }
);

impl Status {
    /// The Russian label users see.
    pub fn label_ru(self) -> &'static str {
        match self {
            Status::Open => "Открыта",
            Status::InProgress => "В работе",
            Status::Completed => "Выполнена",
            Status::Closed => "Закрыта",
            Status::Cancelled => "Отменена",
        }
    }

    /// The moves the workflow table allows from this status, whoever asks.
    pub fn next(self) -> &'static [Status] {
        use Status::*;
        match self {
            Open => &[InProgress, Cancelled],
            InProgress => &[Completed],
            Completed => &[InProgress, Closed],
            Closed => &[Completed],
            Cancelled => &[],
        }
    }
}

/// SLA durations per request type (configurable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaPolicy {
    pub maintenance_assign: Duration,
    pub maintenance_close: Duration,
    pub emergency_assign: Duration,
    pub emergency_close: Duration,
}

impl Default for SlaPolicy {
    fn default() -> Self {
        Self {
            maintenance_assign: Duration::minutes(180),
            maintenance_close: Duration::hours(72),
            emergency_assign: Duration::minutes(15),
            emergency_close: Duration::hours(2),
        }
    }
}

impl SlaPolicy {
    /// `(assign_by, close_by)` for a request of `kind` created at `created_at`.
    pub fn deadlines(
        &self,
        kind: RequestType,
        created_at: DateTime<Utc>,
    ) -> (DateTime<Utc>, DateTime<Utc>) {
        match kind {
            RequestType::Maintenance => (
                created_at + self.maintenance_assign,
                created_at + self.maintenance_close,
            ),
            RequestType::Emergency => (
                created_at + self.emergency_assign,
                created_at + self.emergency_close,
            ),
        }
    }
}

/// A request is overdue while it is still being worked and a deadline has passed: unassigned
/// after `assign_by`, or not yet completed after `close_by`.
pub fn is_overdue(
    status: Status,
    assigned: bool,
    assign_by: DateTime<Utc>,
    close_by: DateTime<Utc>,
    now: DateTime<Utc>,
) -> bool {
    let active = matches!(status, Status::Open | Status::InProgress);
    active && (now > close_by || (!assigned && now > assign_by))
}

/// Requests opened and completed in each of `weeks` weeks starting on Monday `first`:
/// `(monday, opened, completed)`. Days outside the range are ignored.
pub fn per_week(
    first: chrono::NaiveDate,
    weeks: usize,
    opened: &[chrono::NaiveDate],
    completed: &[chrono::NaiveDate],
) -> Vec<(chrono::NaiveDate, u32, u32)> {
    let mut out: Vec<(chrono::NaiveDate, u32, u32)> = (0..weeks)
        .map(|w| (first + chrono::Duration::weeks(w as i64), 0, 0))
        .collect();
    let slot = |d: &chrono::NaiveDate| {
        let days = (*d - first).num_days();
        (days >= 0 && days < 7 * weeks as i64).then_some((days / 7) as usize)
    };
    for d in opened {
        if let Some(i) = slot(d) {
            out[i].1 += 1;
        }
    }
    for d in completed {
        if let Some(i) = slot(d) {
            out[i].2 += 1;
        }
    }
    out
}

/// Mean seconds from start to end over `spans` (reported → completed), or `None` without any.
/// Spans that end before they start count as zero.
pub fn mean_resolution_seconds(spans: &[(DateTime<Utc>, DateTime<Utc>)]) -> Option<f64> {
    if spans.is_empty() {
        return None;
    }
    let total: i64 = spans
        .iter()
        .map(|(start, end)| (*end - *start).num_seconds().max(0))
        .sum();
    Some(total as f64 / spans.len() as f64)
}

/// `actual_end − actual_start` in hours, two decimals, when both are set.
pub fn duration_hours(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> Option<String> {
    let (s, e) = (start?, end?);
    let secs = (e - s).num_seconds();
    // Round half away from zero to 1/100 hour (36 s).
    let hundredths = (secs * 100 + secs.signum() * 1800) / 3600;
    let sign = if hundredths < 0 { "-" } else { "" };
    let h = hundredths.abs();
    Some(format!("{sign}{}.{:02}", h / 100, h % 100))
}

/// `SR-2026-00042`.
pub fn request_number(year: i32, seq: i64) -> String {
    format!("SR-{year}-{seq:05}")
}

/// `ACT-2026-00017`.
pub fn report_number(year: i32, seq: i64) -> String {
    format!("ACT-{year}-{seq:05}")
}

/// What the store knows about a chosen object, for deriving and checking the request's links.
#[derive(Debug, Clone)]
pub struct ObjectFacts {
    pub customer_id: CustomerId,
    pub archived: bool,
    /// Projects containing the object that are `active`.
    pub active_projects: Vec<ProjectId>,
    /// Every project containing the object.
    pub projects: Vec<ProjectId>,
}

/// Resolves customer/project/object of a request. An object fills the project (the active one
/// containing it) and the customer; a project fills the customer; mismatches are refused.
pub fn resolve_links(
    customer: Option<CustomerId>,
    project: Option<(ProjectId, CustomerId)>,
    object: Option<&ObjectFacts>,
) -> Result<(CustomerId, Option<ProjectId>), Error> {
    let mut customer_id = customer;
    let mut project_id = project.map(|p| p.0);
    if let Some((_, pcust)) = project {
        if customer_id.is_some_and(|c| c != pcust) {
            return Err(Error::field(
                "project_id",
                "customer_mismatch",
                "the project belongs to another customer",
            ));
        }
        customer_id = Some(pcust);
    }
    if let Some(obj) = object {
        if obj.archived {
            return Err(Error::field(
                "object_id",
                "archived",
                "the object is archived",
            ));
        }
        if customer_id.is_some_and(|c| c != obj.customer_id) {
            let field = if project.is_some() {
                "object_id"
            } else {
                "customer_id"
            };
            return Err(Error::field(
                field,
                "customer_mismatch",
                "the object belongs to another customer",
            ));
        }
        customer_id = Some(obj.customer_id);
        match project_id {
            Some(pid) if !obj.projects.contains(&pid) => {
                return Err(Error::field(
                    "object_id",
                    "not_in_project",
                    "the object is not part of the project",
                ));
            }
            Some(_) => {}
            None => {
                if obj.active_projects.len() == 1 {
                    project_id = Some(obj.active_projects[0]);
                } else if obj.active_projects.len() > 1 {
                    return Err(Error::field(
                        "project_id",
                        "ambiguous_project",
                        "the object is in several active projects; choose one",
                    ));
                }
            }
        }
    }
    let customer_id = customer_id.ok_or_else(|| {
        Error::field(
            "customer_id",
            "required",
            "choose a customer, a project or an object",
        )
    })?;
    Ok((customer_id, project_id))
}

/// The facts a transition depends on.
#[derive(Debug, Clone, Copy)]
pub struct TransitionFacts {
    pub from: Status,
    pub to: Status,
    pub is_assignee: bool,
    pub has_engineer: bool,
    pub has_submitted_report: bool,
}

/// Timestamps a transition sets or clears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransitionEffects {
    pub set_actual_start: bool,
    pub set_actual_end: bool,
    pub set_completed_at: bool,
    pub clear_completion: bool,
}

/// Whether a user with these roles may make this move (the workflow table is checked separately).
pub fn role_may_move(actor: &Actor, from: Status, to: Status, is_assignee: bool) -> bool {
    use Status::*;
    actor.roles.iter().any(|role| match role {
        Role::Admin | Role::DepartmentHead | Role::ProjectManager => true,
        Role::OfficeManager => (from, to) == (Open, Cancelled),
        Role::Engineer => {
            is_assignee && matches!((from, to), (Open, InProgress) | (InProgress, Completed))
        }
        Role::Client => (from, to) == (Open, Cancelled),
        Role::Director | Role::Accountant => false,
    })
}

/// The moves this actor may make from `from` right now (ignoring preconditions).
pub fn moves_for(actor: &Actor, from: Status, is_assignee: bool) -> Vec<Status> {
    from.next()
        .iter()
        .copied()
        .filter(|to| role_may_move(actor, from, *to, is_assignee))
        .collect()
}

/// Decides a status change: the workflow table, who may make it, and its preconditions.
pub fn transition(actor: &Actor, f: TransitionFacts) -> Result<TransitionEffects, Error> {
    use Status::*;
    let allowed = moves_for(actor, f.from, f.is_assignee);
    if !f.from.next().contains(&f.to) || !allowed.contains(&f.to) {
        let names: Vec<String> = allowed.iter().map(|s| s.as_str().to_owned()).collect();
        let list = if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        };
        return Err(Error::Conflict {
            code: "transition_not_allowed",
            message: format!(
                "cannot move a request from {} to {}; allowed moves: {list}",
                f.from.as_str(),
                f.to.as_str()
            ),
            fields: vec!["status".into()],
            allowed: Some(names),
        });
    }
    let mut fx = TransitionEffects::default();
    match (f.from, f.to) {
        (Open, InProgress) => {
            if !f.has_engineer {
                return Err(Error::conflict_on(
                    "engineer_required",
                    "assigned_to",
                    "assign an engineer before starting work",
                ));
            }
            fx.set_actual_start = true;
        }
        (InProgress, Completed) => {
            if !f.has_submitted_report {
                return Err(Error::conflict_on(
                    "report_required",
                    "status",
                    "a submitted service report is needed to complete the request",
                ));
            }
            fx.set_actual_end = true;
            fx.set_completed_at = true;
        }
        (Completed, InProgress) => fx.clear_completion = true,
        _ => {}
    }
    Ok(fx)
}

#[cfg(test)]
mod tests {
    #[test]
    fn per_week_counts_opened_and_completed_by_monday() {
        let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let monday = d("2026-11-02");
        let weeks = super::per_week(
            monday,
            2,
            &[
                d("2026-11-02"),
                d("2026-11-08"),
                d("2026-11-09"),
                d("2026-10-31"),
                d("2026-11-16"),
            ],
            &[d("2026-11-15")],
        );
        assert_eq!(weeks, vec![(monday, 2, 0), (d("2026-11-09"), 1, 1)]);
    }

    #[test]
    fn mean_resolution_seconds_averages_spans_and_ignores_negative_ones() {
        let t = |h: i64| chrono::DateTime::UNIX_EPOCH + chrono::Duration::hours(h);
        assert_eq!(super::mean_resolution_seconds(&[]), None);
        assert_eq!(
            super::mean_resolution_seconds(&[(t(0), t(2)), (t(10), t(14))]),
            Some(3.0 * 3600.0)
        );
        assert_eq!(
            super::mean_resolution_seconds(&[(t(5), t(1)), (t(0), t(1))]),
            Some(1800.0)
        );
    }

    use super::*;
    use crate::domain::ids::UserId;
    use chrono::TimeZone;

    fn actor(roles: &[Role]) -> Actor {
        Actor {
            user_id: UserId(1),
            roles: roles.to_vec(),
            customer_id: roles.contains(&Role::Client).then_some(CustomerId(1)),
        }
    }

    fn facts(from: Status, to: Status) -> TransitionFacts {
        TransitionFacts {
            from,
            to,
            is_assignee: true,
            has_engineer: true,
            has_submitted_report: true,
        }
    }

    #[test]
    fn workflow_table_is_exact() {
        use Status::*;
        let admin = actor(&[Role::Admin]);
        let allowed = [
            (Open, InProgress),
            (Open, Cancelled),
            (InProgress, Completed),
            (Completed, InProgress),
            (Completed, Closed),
            (Closed, Completed),
        ];
        for from in Status::ALL {
            for to in Status::ALL {
                let ok = transition(&admin, facts(*from, *to)).is_ok();
                assert_eq!(ok, allowed.contains(&(*from, *to)), "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn refusal_names_the_allowed_moves() {
        let e =
            transition(&actor(&[Role::Admin]), facts(Status::Open, Status::Closed)).unwrap_err();
        match e {
            Error::Conflict {
                code,
                allowed,
                message,
                ..
            } => {
                assert_eq!(code, "transition_not_allowed");
                assert_eq!(allowed.unwrap(), vec!["in_progress", "cancelled"]);
                assert!(message.contains("in_progress, cancelled"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn start_needs_engineer_and_sets_actual_start() {
        let a = actor(&[Role::ProjectManager]);
        let mut f = facts(Status::Open, Status::InProgress);
        assert!(transition(&a, f).unwrap().set_actual_start);
        f.has_engineer = false;
        assert!(matches!(
            transition(&a, f),
            Err(Error::Conflict {
                code: "engineer_required",
                ..
            })
        ));
    }

    #[test]
    fn completion_needs_submitted_report() {
        let a = actor(&[Role::Engineer]);
        let mut f = facts(Status::InProgress, Status::Completed);
        let fx = transition(&a, f).unwrap();
        assert!(fx.set_actual_end && fx.set_completed_at);
        f.has_submitted_report = false;
        assert!(matches!(
            transition(&a, f),
            Err(Error::Conflict {
                code: "report_required",
                ..
            })
        ));
    }

    #[test]
    fn return_to_work_clears_completion() {
        let fx = transition(
            &actor(&[Role::DepartmentHead]),
            facts(Status::Completed, Status::InProgress),
        )
        .unwrap();
        assert!(fx.clear_completion);
    }

    #[test]
    fn who_may_move() {
        use Status::*;
        // Reopen: admin, department head, project manager only.
        for r in [Role::Admin, Role::DepartmentHead, Role::ProjectManager] {
            assert!(
                role_may_move(&actor(&[r]), Closed, Completed, true),
                "{r:?}"
            );
        }
        for r in [
            Role::OfficeManager,
            Role::Engineer,
            Role::Client,
            Role::Director,
            Role::Accountant,
        ] {
            assert!(
                !role_may_move(&actor(&[r]), Closed, Completed, true),
                "{r:?}"
            );
        }
        // Office manager: cancel, not complete or close.
        let om = actor(&[Role::OfficeManager]);
        assert!(role_may_move(&om, Open, Cancelled, false));
        assert!(!role_may_move(&om, InProgress, Completed, false));
        assert!(!role_may_move(&om, Completed, Closed, false));
        // Engineer: only own requests, start and complete.
        let eng = actor(&[Role::Engineer]);
        assert!(role_may_move(&eng, Open, InProgress, true));
        assert!(!role_may_move(&eng, Open, InProgress, false));
        assert!(!role_may_move(&eng, Completed, Closed, true));
        // Client: cancel while open only.
        let cl = actor(&[Role::Client]);
        assert!(role_may_move(&cl, Open, Cancelled, false));
        assert!(!role_may_move(&cl, InProgress, Completed, false));
        assert!(!role_may_move(
            &actor(&[Role::Director]),
            Open,
            Cancelled,
            false
        ));
        assert!(role_may_move(
            &actor(&[Role::DepartmentHead]),
            Completed,
            Closed,
            false
        ));
    }

    #[test]
    fn sla_deadlines_by_type() {
        let t = Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap();
        let p = SlaPolicy::default();
        assert_eq!(
            p.deadlines(RequestType::Maintenance, t),
            (t + Duration::minutes(180), t + Duration::hours(72))
        );
        assert_eq!(
            p.deadlines(RequestType::Emergency, t),
            (t + Duration::minutes(15), t + Duration::hours(2))
        );
    }

    #[test]
    fn overdue_rules() {
        let t = Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap();
        let (a, c) = (t + Duration::minutes(15), t + Duration::hours(2));
        let at = |m| t + Duration::minutes(m);
        assert!(!is_overdue(Status::Open, false, a, c, at(10)));
        assert!(is_overdue(Status::Open, false, a, c, at(16)));
        assert!(!is_overdue(Status::Open, true, a, c, at(16)));
        assert!(is_overdue(Status::InProgress, true, a, c, at(121)));
        assert!(!is_overdue(Status::Completed, true, a, c, at(500)));
        assert!(!is_overdue(Status::Cancelled, false, a, c, at(500)));
    }

    #[test]
    fn duration_in_hours() {
        let t = Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap();
        assert_eq!(
            duration_hours(Some(t), Some(t + Duration::minutes(90))).unwrap(),
            "1.50"
        );
        assert_eq!(
            duration_hours(Some(t), Some(t + Duration::seconds(3600 * 26 + 20))).unwrap(),
            "26.01"
        );
        assert_eq!(duration_hours(Some(t), None), None);
        assert_eq!(duration_hours(None, Some(t)), None);
    }

    #[test]
    fn numbers() {
        assert_eq!(request_number(2026, 42), "SR-2026-00042");
        assert_eq!(report_number(2026, 17), "ACT-2026-00017");
        assert_eq!(request_number(2026, 123_456), "SR-2026-123456");
    }

    #[test]
    fn links_are_derived_and_checked() {
        let (c1, c2) = (CustomerId(1), CustomerId(2));
        let (p1, p2) = (ProjectId(10), ProjectId(20));
        let obj = ObjectFacts {
            customer_id: c1,
            archived: false,
            active_projects: vec![p1],
            projects: vec![p1, p2],
        };
        // Object fills the active project and the customer.
        assert_eq!(
            resolve_links(None, None, Some(&obj)).unwrap(),
            (c1, Some(p1))
        );
        // Project fills the customer.
        assert_eq!(
            resolve_links(None, Some((p2, c2)), None).unwrap(),
            (c2, Some(p2))
        );
        // Object of another customer.
        assert!(resolve_links(Some(c2), None, Some(&obj)).is_err());
        // Object not in the project.
        let other = ObjectFacts {
            customer_id: c1,
            archived: false,
            active_projects: vec![],
            projects: vec![],
        };
        assert!(resolve_links(None, Some((p1, c1)), Some(&other)).is_err());
        // Project of another customer.
        assert!(resolve_links(Some(c1), Some((p2, c2)), None).is_err());
        // Nothing chosen.
        assert!(resolve_links(None, None, None).is_err());
        // Archived object.
        let arch = ObjectFacts {
            archived: true,
            ..obj.clone()
        };
        assert!(resolve_links(None, None, Some(&arch)).is_err());
        // Explicit project containing the object is kept.
        assert_eq!(
            resolve_links(Some(c1), Some((p2, c1)), Some(&obj)).unwrap(),
            (c1, Some(p2))
        );
    }
}
