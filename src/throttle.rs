//! Rate limits: a GCRA token bucket and fixed-window counters, kept in process memory for a
//! single instance or in Redis when several instances must share one budget.
//!
//! Time is always a parameter (`now`), never read here, so tests can move it. In Redis the
//! state is stored relative to that `now` (theoretical arrival times in milliseconds, window
//! numbers in key names) and every key gets a TTL, so nothing depends on the Redis clock and
//! nothing lives forever.

use anyhow::{Context, bail};
use chrono::{DateTime, Duration, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

/// Prefix of every key this module writes to Redis.
pub const REDIS_PREFIX: &str = "ferum:rl:";

/// Largest `burst × per` accepted (about 35 years in ms): keeps the arithmetic exact in
/// Redis Lua, whose numbers are doubles.
const MAX_SPAN_MS: i64 = 1 << 50;

/// A token bucket: up to `burst` tokens, one refilled every `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub burst: u32,
    pub per: Duration,
}

impl Rule {
    /// Refuses a rule the limiter cannot enforce (below a millisecond, or spanning decades),
    /// so configuration catches it at start-up instead of every check failing open.
    pub fn validate(&self) -> anyhow::Result<()> {
        rule_ms(*self).map(|_| ())
    }
}

/// The answer of [`Limiter::check`] and [`Limiter::peek`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead; `remaining` tokens are left after this call.
    Allowed { remaining: u32 },
    /// Refused; a token will be available after `retry_after` (always positive).
    Limited { retry_after: Duration },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }
}

/// Where limiter state lives.
#[derive(Debug, Clone)]
pub enum LimiterStore {
    /// This process only: right for a single instance and for tests.
    Memory(Arc<MemoryStore>),
    /// Shared by every instance connected to the same Redis.
    Redis(ConnectionManager),
}

/// Rate limiter over either store; cheap to clone (clones share state).
#[derive(Debug, Clone)]
pub struct Limiter {
    store: LimiterStore,
}

impl Limiter {
    /// Redis when `redis_url` is given, process memory otherwise. A bad or unreachable Redis
    /// is an error: silently falling back to memory would multiply the limits by the number
    /// of instances.
    pub async fn connect(redis_url: Option<&str>) -> anyhow::Result<Limiter> {
        let Some(url) = redis_url else {
            return Ok(Limiter::memory());
        };
        // The URL may hold a password: keep it out of error messages.
        let client = redis::Client::open(url).context("invalid Redis URL")?;
        // Fail fast rather than stall logins while Redis is down.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
            .set_response_timeout(Some(std::time::Duration::from_secs(2)));
        let mut conn = ConnectionManager::new_with_config(client, config)
            .await
            .context("cannot connect to Redis")?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .context("Redis did not answer PING")?;
        Ok(Limiter {
            store: LimiterStore::Redis(conn),
        })
    }

    /// A limiter in process memory.
    pub fn memory() -> Limiter {
        Limiter {
            store: LimiterStore::Memory(Arc::new(MemoryStore::default())),
        }
    }

    pub fn store(&self) -> &LimiterStore {
        &self.store
    }

    /// Takes a token for `key` if one is available.
    pub async fn check(
        &self,
        key: &str,
        rule: Rule,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Decision> {
        self.bucket(key, rule, now, true).await
    }

    /// Answers as [`Limiter::check`] would without taking a token; `remaining` counts the
    /// tokens available now. For refusing work while a budget is spent without charging for
    /// work that turns out fine (e.g. a successful login).
    pub async fn peek(
        &self,
        key: &str,
        rule: Rule,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Decision> {
        self.bucket(key, rule, now, false).await
    }

    /// Refills the bucket for `key`. Window counters are left alone.
    pub async fn reset(&self, key: &str) -> anyhow::Result<()> {
        match &self.store {
            LimiterStore::Memory(m) => {
                m.lock().buckets.remove(key);
                Ok(())
            }
            LimiterStore::Redis(conn) => {
                redis::cmd("DEL")
                    .arg(bucket_key(key))
                    .query_async::<i64>(&mut conn.clone())
                    .await
                    .context("Redis DEL of a rate-limit bucket")?;
                Ok(())
            }
        }
    }

    /// Adds one to `key`'s counter for the fixed window containing `now` and returns the new
    /// count. Windows are aligned to the Unix epoch, so a one-day window is a UTC day.
    pub async fn incr_window(
        &self,
        key: &str,
        window: Duration,
        now: DateTime<Utc>,
    ) -> anyhow::Result<u64> {
        let w = Window::at(window, now)?;
        match &self.store {
            LimiterStore::Memory(m) => {
                let mut s = m.lock();
                s.maybe_prune(w.now_ms);
                let slot = s
                    .windows
                    .entry((key.to_owned(), w.len_ms))
                    .or_insert((w.index, 0));
                if slot.0 != w.index {
                    *slot = (w.index, 0);
                }
                slot.1 += 1;
                Ok(slot.1)
            }
            LimiterStore::Redis(conn) => {
                let k = w.redis_key(key);
                // MULTI/EXEC: the counter never exists without its expiry.
                let (count,): (u64,) = redis::pipe()
                    .atomic()
                    .cmd("INCR")
                    .arg(&k)
                    .cmd("PEXPIRE")
                    .arg(&k)
                    .arg(w.ttl_ms())
                    .ignore()
                    .query_async(&mut conn.clone())
                    .await
                    .context("Redis INCR of a rate-limit window")?;
                Ok(count)
            }
        }
    }

    /// The count for `key` in the fixed window containing `now` (0 when none).
    pub async fn get_window(
        &self,
        key: &str,
        window: Duration,
        now: DateTime<Utc>,
    ) -> anyhow::Result<u64> {
        let w = Window::at(window, now)?;
        match &self.store {
            LimiterStore::Memory(m) => {
                Ok(match m.lock().windows.get(&(key.to_owned(), w.len_ms)) {
                    Some(&(index, count)) if index == w.index => count,
                    _ => 0,
                })
            }
            LimiterStore::Redis(conn) => {
                let count: Option<u64> = redis::cmd("GET")
                    .arg(w.redis_key(key))
                    .query_async(&mut conn.clone())
                    .await
                    .context("Redis GET of a rate-limit window")?;
                Ok(count.unwrap_or(0))
            }
        }
    }

    async fn bucket(
        &self,
        key: &str,
        rule: Rule,
        now: DateTime<Utc>,
        consume: bool,
    ) -> anyhow::Result<Decision> {
        let (burst, per) = rule_ms(rule)?;
        let now_ms = now.timestamp_millis();
        match &self.store {
            LimiterStore::Memory(m) => {
                let mut s = m.lock();
                s.maybe_prune(now_ms);
                let (decision, new_tat) =
                    gcra(s.buckets.get(key).copied(), now_ms, burst, per, consume);
                if let Some(tat) = new_tat {
                    s.buckets.insert(key.to_owned(), tat);
                }
                Ok(decision)
            }
            LimiterStore::Redis(conn) => {
                let (allowed, value): (i64, i64) = GCRA_SCRIPT
                    .key(bucket_key(key))
                    .arg(now_ms)
                    .arg(per)
                    .arg(burst)
                    .arg(i64::from(consume))
                    .invoke_async(&mut conn.clone())
                    .await
                    .context("Redis GCRA script")?;
                decode(allowed, value)
            }
        }
    }
}

/// The GCRA check in Lua, so that read-compute-write is one atomic step on the server even
/// with many instances. It mirrors [`gcra`]; `now` comes from the caller, not Redis TIME.
/// KEYS[1]: bucket. ARGV: now ms, per ms, burst, consume (1/0).
/// Returns {1, remaining} or {0, retry_after ms}.
static GCRA_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local now = tonumber(ARGV[1])
local per = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local consume = ARGV[4] == '1'
local tat = now
local stored = redis.call('GET', KEYS[1])
if stored then
  tat = math.max(tonumber(stored), now)
end
local new_tat = tat + per
local allow_at = new_tat - burst * per
if now < allow_at then
  return {0, allow_at - now}
end
local left = math.floor((now - allow_at) / per)
if consume then
  redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', string.format('%d', new_tat - now))
  return {1, left}
end
return {1, left + 1}
",
    )
});

fn bucket_key(key: &str) -> String {
    format!("{REDIS_PREFIX}b:{key}")
}

/// Turns the script's reply into a [`Decision`], rejecting nonsense instead of panicking.
fn decode(allowed: i64, value: i64) -> anyhow::Result<Decision> {
    match allowed {
        1 => Ok(Decision::Allowed {
            remaining: u32::try_from(value).context("Redis GCRA script: bad remaining")?,
        }),
        0 if value > 0 => Ok(Decision::Limited {
            retry_after: Duration::milliseconds(value),
        }),
        _ => bail!("Redis GCRA script: unexpected reply {{{allowed}, {value}}}"),
    }
}

/// Validates a rule and returns (burst, per) in milliseconds.
fn rule_ms(rule: Rule) -> anyhow::Result<(i64, i64)> {
    let per = rule.per.num_milliseconds();
    let burst = i64::from(rule.burst);
    if burst < 1 || per < 1 {
        bail!("rate-limit rule needs burst ≥ 1 and per ≥ 1 ms, got {rule:?}");
    }
    if burst.checked_mul(per).is_none_or(|span| span > MAX_SPAN_MS) {
        bail!("rate-limit rule spans too long a time: {rule:?}");
    }
    Ok((burst, per))
}

/// GCRA: the bucket is a single "theoretical arrival time" (TAT); a request is allowed when
/// it does not come more than `burst × per` before the TAT it would push the bucket to.
/// All times in ms. Returns the decision and, when a token was taken, the TAT to store.
fn gcra(
    stored_tat: Option<i64>,
    now: i64,
    burst: i64,
    per: i64,
    consume: bool,
) -> (Decision, Option<i64>) {
    let tat = stored_tat.map_or(now, |t| t.max(now));
    let new_tat = tat + per;
    let allow_at = new_tat - burst * per;
    if now < allow_at {
        return (
            Decision::Limited {
                retry_after: Duration::milliseconds(allow_at - now),
            },
            None,
        );
    }
    let left = (now - allow_at) / per;
    let (remaining, stored) = if consume {
        (left, Some(new_tat))
    } else {
        (left + 1, None)
    };
    // At most `burst`, which came from a u32.
    let remaining = u32::try_from(remaining).unwrap_or(u32::MAX);
    (Decision::Allowed { remaining }, stored)
}

/// The fixed window containing an instant.
struct Window {
    len_ms: i64,
    index: i64,
    now_ms: i64,
}

impl Window {
    fn at(window: Duration, now: DateTime<Utc>) -> anyhow::Result<Window> {
        let len_ms = window.num_milliseconds();
        if !(1..=MAX_SPAN_MS).contains(&len_ms) {
            bail!("rate-limit window must be between 1 ms and ~35 years, got {window}");
        }
        let now_ms = now.timestamp_millis();
        Ok(Window {
            len_ms,
            index: now_ms.div_euclid(len_ms),
            now_ms,
        })
    }

    /// The window's number is in the key, so a new window starts from zero whatever the TTL.
    fn redis_key(&self, key: &str) -> String {
        format!("{REDIS_PREFIX}w:{}:{}:{key}", self.len_ms, self.index)
    }

    /// Time left in the window: relative, so the Redis clock need not agree with `now`.
    fn ttl_ms(&self) -> i64 {
        self.len_ms - self.now_ms.rem_euclid(self.len_ms)
    }
}

/// In-process state. Entries are dropped once expired, checked in sweeps whose cost is
/// amortised over inserts, so memory tracks live keys rather than every key ever seen.
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<MemoryState>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            state: Mutex::new(MemoryState {
                buckets: HashMap::new(),
                windows: HashMap::new(),
                prune_at: PRUNE_MIN,
            }),
        }
    }
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        // The state is plain numbers, consistent after any panic: keep going.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Live entries (buckets plus windows), for tests and metrics.
    pub fn len(&self) -> usize {
        let s = self.lock();
        s.buckets.len() + s.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Sweep no sooner than this many entries.
const PRUNE_MIN: usize = 1024;

#[derive(Debug)]
struct MemoryState {
    /// Key → TAT in ms; a TAT not after now means a full bucket, so the entry is dead.
    buckets: HashMap<String, i64>,
    /// (key, window ms) → (window number, count); dead once that window has ended.
    windows: HashMap<(String, i64), (i64, u64)>,
    /// Sweep when the entry count reaches this.
    prune_at: usize,
}

impl MemoryState {
    fn maybe_prune(&mut self, now_ms: i64) {
        if self.buckets.len() + self.windows.len() < self.prune_at {
            return;
        }
        self.buckets.retain(|_, tat| *tat > now_ms);
        self.windows
            .retain(|(_, len), (index, _)| (*index + 1).saturating_mul(*len) > now_ms);
        // Doubling keeps sweeps amortised O(1) per insert and the map within 2× live entries.
        self.prune_at = (2 * (self.buckets.len() + self.windows.len())).max(PRUNE_MIN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const PER: i64 = 10_000;
    const T0: i64 = 1_772_442_000_000;

    fn allowed(remaining: u32) -> Decision {
        Decision::Allowed { remaining }
    }

    fn limited(ms: i64) -> Decision {
        Decision::Limited {
            retry_after: Duration::milliseconds(ms),
        }
    }

    /// One consuming check at `now`, keeping the TAT as a store would.
    fn take(tat: &mut Option<i64>, now: i64, burst: i64) -> Decision {
        let (d, new) = gcra(*tat, now, burst, PER, true);
        if new.is_some() {
            *tat = new;
        }
        d
    }

    #[test]
    fn burst_is_allowed_then_limited_for_one_interval() {
        let mut tat = None;
        assert_eq!(take(&mut tat, T0, 3), allowed(2));
        assert_eq!(take(&mut tat, T0, 3), allowed(1));
        assert_eq!(take(&mut tat, T0, 3), allowed(0));
        assert_eq!(take(&mut tat, T0, 3), limited(PER));
        assert_eq!(take(&mut tat, T0 + 2_500, 3), limited(PER - 2_500));
        // Refusals do not push the bucket further out.
        assert_eq!(tat, Some(T0 + 3 * PER));
    }

    #[test]
    fn tokens_refill_over_time() {
        let mut tat = None;
        for _ in 0..3 {
            take(&mut tat, T0, 3);
        }
        assert_eq!(take(&mut tat, T0 + PER - 1, 3), limited(1));
        assert_eq!(take(&mut tat, T0 + PER, 3), allowed(0));
        assert_eq!(take(&mut tat, T0 + PER, 3), limited(PER));
        // Long after: full again, but never more than the burst.
        assert_eq!(take(&mut tat, T0 + 100 * PER, 3), allowed(2));
    }

    #[test]
    fn peek_does_not_consume() {
        let mut tat = None;
        for _ in 0..5 {
            assert_eq!(gcra(tat, T0, 3, PER, false), (allowed(3), None));
        }
        take(&mut tat, T0, 3);
        assert_eq!(gcra(tat, T0, 3, PER, false), (allowed(2), None));
        take(&mut tat, T0, 3);
        take(&mut tat, T0, 3);
        assert_eq!(gcra(tat, T0, 3, PER, false), (limited(PER), None));
        assert_eq!(gcra(tat, T0 + PER, 3, PER, false), (allowed(1), None));
    }

    #[test]
    fn burst_of_one_spaces_requests() {
        let mut tat = None;
        assert_eq!(take(&mut tat, T0, 1), allowed(0));
        assert_eq!(take(&mut tat, T0 + 1, 1), limited(PER - 1));
        assert_eq!(take(&mut tat, T0 + PER, 1), allowed(0));
    }

    #[test]
    fn rules_are_validated() {
        let ok = Rule {
            burst: 5,
            per: Duration::seconds(1),
        };
        assert_eq!(rule_ms(ok).unwrap(), (5, 1000));
        assert!(rule_ms(Rule { burst: 0, ..ok }).is_err());
        assert!(
            rule_ms(Rule {
                per: Duration::zero(),
                ..ok
            })
            .is_err()
        );
        assert!(
            rule_ms(Rule {
                per: Duration::microseconds(10),
                ..ok
            })
            .is_err()
        );
        assert!(
            rule_ms(Rule {
                burst: u32::MAX,
                per: Duration::days(365)
            })
            .is_err()
        );
    }

    #[test]
    fn script_replies_are_checked() {
        assert_eq!(decode(1, 4).unwrap(), allowed(4));
        assert_eq!(decode(0, 250).unwrap(), limited(250));
        assert!(decode(0, 0).is_err());
        assert!(decode(1, -1).is_err());
        assert!(decode(7, 1).is_err());
    }

    #[test]
    fn windows_align_to_the_epoch() {
        let now = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
        let w = Window::at(Duration::days(1), now).unwrap();
        assert_eq!(w.ttl_ms(), 15 * 3_600_000);
        assert!(w.redis_key("acct:7").starts_with("ferum:rl:w:86400000:"));
        assert!(Window::at(Duration::zero(), now).is_err());
    }

    #[tokio::test]
    async fn memory_store_prunes_expired_entries() {
        let limiter = Limiter::memory();
        let LimiterStore::Memory(m) = limiter.store() else {
            unreachable!()
        };
        let rule = Rule {
            burst: 2,
            per: Duration::seconds(1),
        };
        let t = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
        for i in 0..3 * PRUNE_MIN {
            limiter.check(&format!("ip{i}"), rule, t).await.unwrap();
            limiter
                .incr_window(&format!("acct{i}"), Duration::minutes(1), t)
                .await
                .unwrap();
        }
        assert_eq!(m.len(), 6 * PRUNE_MIN);
        // An hour on, everything has expired; keep inserting and the sweeps clear it.
        let later = t + Duration::hours(1);
        for i in 0..3 * PRUNE_MIN {
            limiter
                .check(&format!("new{i}"), rule, later)
                .await
                .unwrap();
        }
        assert!(m.len() <= 4 * PRUNE_MIN, "{} entries", m.len());
    }
}
