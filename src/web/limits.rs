//! Throttling of sign-in failures and of API use, on the shared limiter (Redis when
//! configured, memory otherwise).
//!
//! Only *failed* sign-ins spend the per-address and per-account budgets, so an office behind
//! one address is not locked out by its own successful morning logins. When the limiter's store
//! fails (Redis down), requests are let through and the failure is logged: an outage of the
//! cache must not become an outage of the service.

use super::AppState;
use crate::domain::ids::UserId;
use crate::error::{Error, Result};
use crate::store::{audit, outbox};
use crate::throttle::{Decision, Rule};

/// The configured limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Prefix of every key (lets tests share one Redis).
    pub namespace: String,
    /// Failed sign-ins per client address: a burst, refilled one per interval.
    pub login_ip: Rule,
    /// Failed sign-ins per account: a burst, refilled one per interval (a growing delay).
    pub login_account: Rule,
    /// Failed sign-ins per account per day before a hard stop.
    pub login_account_daily: u64,
    /// Failed sign-ins per account per day that raise an alert for administrators.
    pub alert_after: u64,
    /// API requests per user; `None` when switched off (`FERUM_API_REQUESTS_PER_MINUTE=off`,
    /// for benchmarks and trusted integrations).
    pub api_user: Option<Rule>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            namespace: String::new(),
            login_ip: Rule {
                burst: 10,
                per: chrono::Duration::minutes(1),
            },
            login_account: Rule {
                burst: 5,
                per: chrono::Duration::minutes(1),
            },
            login_account_daily: 100,
            alert_after: 10,
            api_user: Some(Rule {
                burst: 1200,
                per: chrono::Duration::milliseconds(50),
            }),
        }
    }
}

fn retry(d: Decision) -> Result<()> {
    match d {
        Decision::Allowed { .. } => Ok(()),
        Decision::Limited { retry_after } => Err(Error::TooManyRequests {
            retry_after: retry_after.num_seconds().max(1),
        }),
    }
}

fn soft<T: Default>(r: anyhow::Result<T>) -> T {
    r.unwrap_or_else(|e| {
        tracing::error!(error = %e, "rate limiter unavailable; letting the request through");
        T::default()
    })
}

impl Default for Decision {
    fn default() -> Self {
        Decision::Allowed { remaining: 0 }
    }
}

fn day() -> chrono::Duration {
    chrono::Duration::days(1)
}

/// Refuses a sign-in attempt while the address or the account is over its failure budget.
pub async fn before_login(s: &AppState, ip: &str, account: &str) -> Result<()> {
    let (l, n, now) = (&s.limits, &s.limits.namespace, s.clock.now());
    retry(soft(
        s.limiter
            .peek(&format!("{n}login:ip:{ip}"), l.login_ip, now)
            .await,
    ))?;
    retry(soft(
        s.limiter
            .peek(&format!("{n}login:acct:{account}"), l.login_account, now)
            .await,
    ))?;
    let today = soft(
        s.limiter
            .get_window(&format!("{n}login:day:{account}"), day(), now)
            .await,
    );
    if today >= l.login_account_daily {
        let until_midnight = 86_400 - now.timestamp().rem_euclid(86_400);
        return Err(Error::TooManyRequests {
            retry_after: until_midnight,
        });
    }
    Ok(())
}

/// Spends the failure budgets of a failed sign-in; repeated failures against one account raise
/// an alert for administrators through the outbox.
pub async fn after_failure(
    s: &AppState,
    ip: &str,
    account: &str,
    user: Option<UserId>,
) -> Result<()> {
    let (l, n, now) = (&s.limits, &s.limits.namespace, s.clock.now());
    soft(
        s.limiter
            .check(&format!("{n}login:ip:{ip}"), l.login_ip, now)
            .await,
    );
    soft(
        s.limiter
            .check(&format!("{n}login:acct:{account}"), l.login_account, now)
            .await,
    );
    let today = soft(
        s.limiter
            .incr_window(&format!("{n}login:day:{account}"), day(), now)
            .await,
    );
    if today == l.alert_after || today == l.login_account_daily {
        let payload = serde_json::json!({
            "event": "repeated_login_failures",
            "account": account,
            "failures_today": today,
            "last_ip": ip,
        });
        let mut tx = s.db.begin().await?;
        let alert = crate::domain::event::Event::LoginAlert {
            account: account.to_owned(),
            failures: today,
            day: now.format("%Y-%m-%d").to_string(),
        };
        outbox::push(&mut tx, &alert, now).await?;
        audit::insert(
            &mut tx,
            now,
            None,
            ip,
            "security_alert",
            "user",
            user.map(|u| u.0),
            None,
            Some(&payload),
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// The general per-user API limit.
pub async fn api(s: &AppState, user: UserId) -> Result<()> {
    let Some(rule) = s.limits.api_user else {
        return Ok(());
    };
    let n = &s.limits.namespace;
    retry(soft(
        s.limiter
            .check(&format!("{n}api:user:{}", user.0), rule, s.clock.now())
            .await,
    ))
}
