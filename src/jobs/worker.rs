//! The worker: claims due rows of the outbox, turns events into messages and delivers
//! messages, retrying with back-off and giving up after the last attempt.
//!
//! An event row is expanded in one transaction: its messages are queued and the event marked
//! delivered together, so a crash queues them all or none. A message row is sent, then marked
//! delivered; a crash between the two sends it again after its lease ends (at least once).
//! Each message's de-duplication key (event, channel, address) keeps a re-expanded event from
//! queueing a message twice, so a duplicate can only come from that one window.

use super::notify::Composer;
use crate::clock::Clock;
use crate::domain::event::retry_delay;
use crate::error::Result;
use crate::notify::{Channel, DeliveryError, Message, Notifier};
use crate::store::Db;
use crate::store::outbox::{self, Claimed, Failure};
use std::sync::Arc;
use std::time::Duration;

/// How the worker paces itself (`FERUM_WORKER_*` variables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Rows claimed at once.
    pub batch: i64,
    /// How long a claim holds a row before another worker may take it.
    pub lease: chrono::Duration,
    /// Attempts before a row is dead.
    pub max_attempts: i64,
    /// The pause when nothing is due.
    pub idle: Duration,
    /// How often the SLA sweep runs (under a lease, once across instances).
    pub sweep_every: chrono::Duration,
    /// The share of a deadline's time after which the sweep warns, in percent.
    pub sla_warn_percent: u8,
    /// Rows worked at the same time within a batch.
    pub concurrency: usize,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            batch: 50,
            lease: chrono::Duration::minutes(2),
            max_attempts: 8,
            idle: Duration::from_millis(500),
            sweep_every: chrono::Duration::seconds(60),
            sla_warn_percent: 80,
            concurrency: 16,
        }
    }
}

/// One worker. Several may run against PostgreSQL; on SQLite one does.
#[derive(Clone)]
pub struct Worker {
    pub db: Db,
    pub notifier: Arc<Notifier>,
    pub composer: Composer,
    pub clock: Clock,
    /// Names this worker's claims (host and process, or a test's name).
    pub id: String,
    pub config: WorkerConfig,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub claimed: usize,
    pub delivered: usize,
    pub retried: usize,
    pub dead: usize,
}

impl Worker {
    /// A worker id unique to this process.
    pub fn process_id() -> String {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
        format!("{host}:{}", std::process::id())
    }

    /// Claims one batch and works it, up to `concurrency` rows at a time; stops early
    /// (releasing what it has not started) when `stop` turns true.
    pub async fn pass(&self, stop: &tokio::sync::watch::Receiver<bool>) -> Result<Pass> {
        let now = self.clock.now();
        let rows = outbox::claim(
            &self.db,
            &self.id,
            now,
            self.config.lease,
            self.config.batch,
        )
        .await?;
        let mut pass = Pass {
            claimed: rows.len(),
            ..Pass::default()
        };
        let slots = Arc::new(tokio::sync::Semaphore::new(self.config.concurrency.max(1)));
        let mut running = tokio::task::JoinSet::new();
        let mut rows = rows.into_iter();
        while let Some(row) = rows.next() {
            let permit = slots
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            if *stop.borrow() {
                let rest: Vec<i64> = std::iter::once(row.id)
                    .chain(rows.by_ref().map(|r| r.id))
                    .collect();
                outbox::release(&self.db, &self.id, &rest).await?;
                break;
            }
            let me = self.clone();
            running.spawn(async move {
                let outcome = me.attempt(&row).await;
                drop(permit);
                outcome
            });
        }
        while let Some(done) = running.join_next().await {
            match done.map_err(|e| crate::error::Error::Internal(e.into()))?? {
                None => pass.delivered += 1,
                Some(Failure::Dead) => pass.dead += 1,
                Some(Failure::RetryAt(_)) => pass.retried += 1,
            }
        }
        Ok(pass)
    }

    /// Works one row and records a failure; `None` when it was delivered.
    async fn attempt(&self, row: &Claimed) -> Result<Option<Failure>> {
        let Err(e) = self.work(row).await else {
            return Ok(None);
        };
        let failure = self.failure(row, &e);
        tracing::warn!(
            outbox_id = row.id,
            kind = %row.kind,
            attempts = row.attempts,
            error = %e.reason(),
            dead = failure == Failure::Dead,
            "outbox {} ({}) failed: {}",
            row.id,
            row.kind,
            e.reason()
        );
        outbox::fail(&self.db, row.id, &self.id, e.reason(), failure).await?;
        Ok(Some(failure))
    }

    /// Runs passes until `stop` turns true; what it holds at that moment is finished or
    /// given back.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        tracing::info!(worker = %self.id, "the worker is delivering events");
        let mut next_sweep = self.clock.now();
        loop {
            if *stop.borrow() {
                break;
            }
            let now = self.clock.now();
            if now >= next_sweep {
                next_sweep = now + self.config.sweep_every;
                let swept = super::sweep::sweep(
                    &self.db,
                    &self.id,
                    now,
                    self.config.sweep_every,
                    self.config.sla_warn_percent,
                    self.composer.tz,
                )
                .await;
                match swept {
                    Ok(Some(n)) if n > 0 => tracing::info!(events = n, "SLA sweep queued events"),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "the SLA sweep failed"),
                }
            }
            let idle = match self.pass(&stop).await {
                Ok(p) => p.claimed == 0,
                Err(e) => {
                    tracing::error!(error = %e, "the worker could not read the outbox");
                    true
                }
            };
            if idle {
                tokio::select! {
                    _ = stop.changed() => {}
                    () = tokio::time::sleep(self.config.idle) => {}
                }
            }
        }
        tracing::info!(worker = %self.id, "the worker stopped");
    }

    fn failure(&self, row: &Claimed, e: &DeliveryError) -> Failure {
        if !e.is_retryable() || row.attempts >= self.config.max_attempts {
            return Failure::Dead;
        }
        use rand::Rng;
        let jitter = rand::thread_rng().r#gen::<f64>();
        let mut delay = retry_delay(row.attempts, jitter);
        if let Some(hint) = e
            .retry_hint()
            .and_then(|h| chrono::Duration::from_std(h).ok())
        {
            delay = delay.max(hint);
        }
        Failure::RetryAt(self.clock.now() + delay)
    }

    async fn work(&self, row: &Claimed) -> std::result::Result<(), DeliveryError> {
        let internal = |e: crate::error::Error| DeliveryError::retryable(e.to_string());
        let channel = Channel::parse(&row.kind);
        let now = self.clock.now();
        let Some(channel) = channel else {
            // An event: queue its messages and mark it done, together.
            let event = row
                .event()
                .map_err(|e| DeliveryError::permanent(format!("unreadable event: {e}")))?;
            let messages = self
                .composer
                .deliveries(row.id, &event, now)
                .await
                .map_err(internal)?;
            let mut tx = self.db.begin().await.map_err(internal)?;
            for (channel, d) in &messages {
                outbox::push_delivery(&mut tx, channel.as_str(), d, now)
                    .await
                    .map_err(internal)?;
            }
            if outbox::complete(&mut tx, row.id, &self.id, now)
                .await
                .map_err(internal)?
            {
                tx.commit().await.map_err(|e| internal(e.into()))?;
            }
            return Ok(());
        };
        let d = row
            .delivery()
            .map_err(|e| DeliveryError::permanent(format!("unreadable message: {e}")))?;
        let message = Message {
            to: d.to,
            subject: d.subject,
            text: d.text,
            html: None,
            link: d.link,
            id: Some(format!("ferum-outbox-{}", row.id)),
        };
        self.notifier.send(channel, &message).await?;
        let mut tx = self.db.begin().await.map_err(internal)?;
        outbox::complete(&mut tx, row.id, &self.id, now)
            .await
            .map_err(internal)?;
        tx.commit().await.map_err(|e| internal(e.into()))?;
        Ok(())
    }
}
