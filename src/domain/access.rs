//! Roles and the access matrix of `PRODUCT.md`.
//!
//! Two questions are answered here: *may this actor do this kind of thing at all*
//! ([`can`]) and *which records of a resource exist for this actor* ([`Scope`]). The store turns a
//! scope into a `WHERE` clause, so invisible records never leave the database.

use super::ids::{CustomerId, UserId};
use crate::error::FieldError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Director,
    Accountant,
    DepartmentHead,
    ProjectManager,
    OfficeManager,
    Engineer,
    Client,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::Admin,
        Role::Director,
        Role::Accountant,
        Role::DepartmentHead,
        Role::ProjectManager,
        Role::OfficeManager,
        Role::Engineer,
        Role::Client,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Director => "director",
            Role::Accountant => "accountant",
            Role::DepartmentHead => "department_head",
            Role::ProjectManager => "project_manager",
            Role::OfficeManager => "office_manager",
            Role::Engineer => "engineer",
            Role::Client => "client",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Checks a set of roles and the customer link: a client is exactly one customer's and holds no
/// other role; staff hold no customer.
pub fn validate_roles(
    roles: &[Role],
    customer: Option<CustomerId>,
) -> Result<Vec<Role>, FieldError> {
    let mut r: Vec<Role> = Vec::new();
    for role in roles {
        if !r.contains(role) {
            r.push(*role);
        }
    }
    r.sort_by_key(|x| Role::ALL.iter().position(|y| y == x));
    if r.is_empty() {
        return Err(FieldError::new(
            "roles",
            "required",
            "at least one role is required",
        ));
    }
    if r.contains(&Role::Client) {
        if r.len() > 1 {
            return Err(FieldError::new(
                "roles",
                "client_exclusive",
                "a client user cannot hold staff roles",
            ));
        }
        if customer.is_none() {
            return Err(FieldError::new(
                "customer_id",
                "required",
                "a client user must belong to a customer",
            ));
        }
    } else if customer.is_some() {
        return Err(FieldError::new(
            "customer_id",
            "not_allowed",
            "only client users belong to a customer",
        ));
    }
    Ok(r)
}

pub fn roles_to_db(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub fn roles_from_db(s: &str) -> Vec<Role> {
    s.split(',').filter_map(Role::parse).collect()
}

/// Who is acting: the signed-in user with their roles and, for clients, their customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: UserId,
    pub roles: Vec<Role>,
    pub customer_id: Option<CustomerId>,
}

impl Actor {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn has_any(&self, roles: &[Role]) -> bool {
        roles.iter().any(|r| self.has(*r))
    }

    /// The customer of a client user; `None` for staff.
    pub fn client_customer(&self) -> Option<CustomerId> {
        if self.has(Role::Client) {
            self.customer_id
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Customers,
    Objects,
    Projects,
    Requests,
    Reports,
    Users,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Create,
    Update,
    Delete,
    /// Workflow transitions (requests) or approval (reports).
    Transition,
}

/// The access matrix, one role at a time. Record-level limits (own customer, assigned requests)
/// are [`Scope`]s, not part of this table.
pub fn role_allows(role: Role, resource: Resource, action: Action) -> bool {
    use Action::*;
    use Resource::*;
    use Role::*;
    let ops: &[Action] = match (resource, role) {
        (Customers, Admin) => &[Read, Create, Update, Delete],
        (Customers, ProjectManager | OfficeManager) => &[Read, Create, Update],
        (Customers, Director | Accountant | DepartmentHead | Engineer | Client) => &[Read],

        (Objects, Admin | ProjectManager) => &[Read, Create, Update, Delete],
        (Objects, DepartmentHead | OfficeManager) => &[Read, Create, Update],
        (Objects, Director | Accountant | Engineer | Client) => &[Read],

        (Projects, Admin) => &[Read, Create, Update, Delete],
        (Projects, ProjectManager) => &[Read, Create, Update],
        (Projects, Director | Accountant | DepartmentHead | OfficeManager | Engineer | Client) => {
            &[Read]
        }

        (Requests, Admin) => &[Read, Create, Update, Delete, Transition],
        (Requests, ProjectManager | OfficeManager) => &[Read, Create, Update, Transition],
        (Requests, DepartmentHead | Engineer) => &[Read, Update, Transition],
        (Requests, Client) => &[Read, Create, Transition],
        (Requests, Director | Accountant) => &[Read],

        (Reports, Admin) => &[Read, Create, Update, Delete, Transition],
        (Reports, DepartmentHead) => &[Read, Update, Transition],
        (Reports, ProjectManager | Engineer) => &[Read, Create, Update],
        (Reports, Director | Accountant | OfficeManager | Client) => &[Read],

        (Users, Admin) => &[Read, Create, Update, Delete],
        (Users, Director | DepartmentHead | ProjectManager | OfficeManager) => &[Read],
        (Users, Accountant | Engineer | Client) => &[],
    };
    ops.contains(&action)
}

/// Whether any of the actor's roles allows the action.
pub fn can(actor: &Actor, resource: Resource, action: Action) -> bool {
    actor
        .roles
        .iter()
        .any(|r| role_allows(*r, resource, action))
}

/// Entries of the audit log about the service's operations.
pub const OPERATIONAL_ENTITIES: [&str; 5] = ["customer", "object", "project", "request", "report"];
/// Entries of the audit log about money.
pub const FINANCIAL_ENTITIES: [&str; 2] = ["invoice", "payroll"];

/// The part of the audit log an actor reads (the access matrix's last row): everything for
/// administrators and the director; the financial entries for the accountant; the
/// operational ones for the head of service; a project manager's own projects, with their
/// requests and acts. A user with several roles reads the union.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditScope {
    All,
    Parts {
        operational: bool,
        financial: bool,
        /// The projects this user manages.
        projects_of: Option<UserId>,
    },
    Nothing,
}

pub fn audit_scope(actor: &Actor) -> AuditScope {
    if actor.has_any(&[Role::Admin, Role::Director]) {
        return AuditScope::All;
    }
    let operational = actor.has(Role::DepartmentHead);
    let financial = actor.has(Role::Accountant);
    let projects_of = actor.has(Role::ProjectManager).then_some(actor.user_id);
    if operational || financial || projects_of.is_some() {
        AuditScope::Parts {
            operational,
            financial,
            projects_of,
        }
    } else {
        AuditScope::Nothing
    }
}

/// Whether the actor reads any of the audit log.
pub fn may_read_audit(actor: &Actor) -> bool {
    audit_scope(actor) != AuditScope::Nothing
}

/// Which records of a resource exist for an actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every record.
    All,
    /// Records related to requests assigned to this engineer.
    Assigned(UserId),
    /// Records of this customer.
    Customer(CustomerId),
    /// Nothing at all.
    Nothing,
}

/// The read scope of an actor on a resource: the widest any of their roles grants.
pub fn scope(actor: &Actor, resource: Resource) -> Scope {
    if !can(actor, resource, Action::Read) {
        return Scope::Nothing;
    }
    let staff_sees_all = actor.roles.iter().any(|r| {
        !matches!(r, Role::Engineer | Role::Client) && role_allows(*r, resource, Action::Read)
    });
    if staff_sees_all {
        Scope::All
    } else if actor.has(Role::Engineer) {
        Scope::Assigned(actor.user_id)
    } else if let Some(c) = actor.client_customer() {
        Scope::Customer(c)
    } else {
        Scope::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_reads_its_part_of_the_audit_log() {
        use AuditScope::*;
        let part = |operational, financial, projects_of| Parts {
            operational,
            financial,
            projects_of,
        };
        assert_eq!(audit_scope(&actor(&[Role::Admin])), All);
        assert_eq!(audit_scope(&actor(&[Role::Director])), All);
        assert_eq!(
            audit_scope(&actor(&[Role::Accountant])),
            part(false, true, None)
        );
        assert_eq!(
            audit_scope(&actor(&[Role::DepartmentHead])),
            part(true, false, None)
        );
        assert_eq!(
            audit_scope(&actor(&[Role::ProjectManager])),
            part(false, false, Some(UserId(7)))
        );
        assert_eq!(
            audit_scope(&actor(&[Role::ProjectManager, Role::Accountant])),
            part(false, true, Some(UserId(7))),
            "several roles read the union"
        );
        assert_eq!(
            audit_scope(&actor(&[Role::Accountant, Role::Director])),
            All
        );
        for nobody in [Role::OfficeManager, Role::Engineer, Role::Client] {
            assert_eq!(audit_scope(&actor(&[nobody])), Nothing, "{nobody:?}");
            assert!(!may_read_audit(&actor(&[nobody])));
        }
    }

    fn actor(roles: &[Role]) -> Actor {
        Actor {
            user_id: UserId(7),
            roles: roles.to_vec(),
            customer_id: if roles.contains(&Role::Client) {
                Some(CustomerId(3))
            } else {
                None
            },
        }
    }

    #[test]
    fn matrix_spot_checks() {
        use Action::*;
        use Resource::*;
        assert!(role_allows(Role::Admin, Customers, Delete));
        assert!(!role_allows(Role::ProjectManager, Customers, Delete));
        assert!(role_allows(Role::OfficeManager, Customers, Create));
        assert!(!role_allows(Role::Director, Customers, Update));
        assert!(role_allows(Role::DepartmentHead, Objects, Create));
        assert!(!role_allows(Role::DepartmentHead, Projects, Create));
        assert!(role_allows(Role::Client, Requests, Create));
        assert!(!role_allows(Role::Client, Requests, Update));
        assert!(!role_allows(Role::Engineer, Requests, Create));
        assert!(role_allows(Role::Engineer, Reports, Create));
        assert!(!role_allows(Role::OfficeManager, Reports, Create));
        assert!(role_allows(Role::DepartmentHead, Reports, Transition));
        assert!(!role_allows(Role::ProjectManager, Reports, Transition));
        assert!(!role_allows(Role::Accountant, Users, Read));
        assert!(!role_allows(Role::Director, Requests, Transition));
    }

    #[test]
    fn scopes_follow_the_footnotes() {
        assert_eq!(
            scope(&actor(&[Role::Director]), Resource::Requests),
            Scope::All
        );
        assert_eq!(
            scope(&actor(&[Role::Engineer]), Resource::Requests),
            Scope::Assigned(UserId(7))
        );
        assert_eq!(
            scope(&actor(&[Role::Engineer]), Resource::Customers),
            Scope::Assigned(UserId(7))
        );
        assert_eq!(
            scope(&actor(&[Role::Client]), Resource::Reports),
            Scope::Customer(CustomerId(3))
        );
        assert_eq!(
            scope(&actor(&[Role::Client]), Resource::Users),
            Scope::Nothing
        );
        // Several staff roles: the widest wins.
        assert_eq!(
            scope(
                &actor(&[Role::Engineer, Role::ProjectManager]),
                Resource::Requests
            ),
            Scope::All
        );
        assert_eq!(
            scope(&actor(&[Role::Accountant]), Resource::Users),
            Scope::Nothing
        );
    }

    #[test]
    fn client_roles_are_exclusive_and_need_a_customer() {
        assert!(validate_roles(&[Role::Client], Some(CustomerId(1))).is_ok());
        assert_eq!(
            validate_roles(&[Role::Client], None).unwrap_err().code,
            "required"
        );
        assert_eq!(
            validate_roles(&[Role::Client, Role::Engineer], Some(CustomerId(1)))
                .unwrap_err()
                .code,
            "client_exclusive"
        );
        assert_eq!(
            validate_roles(&[Role::Engineer], Some(CustomerId(1)))
                .unwrap_err()
                .code,
            "not_allowed"
        );
        assert_eq!(validate_roles(&[], None).unwrap_err().code, "required");
        assert_eq!(
            validate_roles(&[Role::Engineer, Role::Admin, Role::Engineer], None).unwrap(),
            vec![Role::Admin, Role::Engineer]
        );
    }
}
