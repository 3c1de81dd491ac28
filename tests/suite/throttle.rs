//! Rate limits: every scenario runs on the memory store and on a real Redis, as two tests.
//! Redis must be reachable in CI; elsewhere its half is skipped with a note when it is not.

use chrono::{DateTime, Duration, TimeZone, Utc};
use ferum::throttle::{Decision, Limiter, Rule};
use std::sync::atomic::{AtomicUsize, Ordering};

const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Runs each body once on the memory store and once on Redis, as `<name>::memory` and
/// `<name>::redis`; `$s` is the [`Store`] under test.
macro_rules! both_stores {
    ($(async fn $name:ident($s:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                let $s = Store::memory();
                $body
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                let Some($s) = Store::redis().await else { return };
                $body
            }
        }
    )*};
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

fn rule(burst: u32, per_secs: i64) -> Rule {
    Rule {
        burst,
        per: Duration::seconds(per_secs),
    }
}

fn allowed(remaining: u32) -> Decision {
    Decision::Allowed { remaining }
}

fn limited(d: Duration) -> Decision {
    Decision::Limited { retry_after: d }
}

/// A limiter under test with its own key namespace, so tests in parallel (and repeated runs
/// against one Redis) never see each other's state. Its Redis keys are deleted on drop,
/// even when the test fails.
struct Store {
    limiter: Limiter,
    prefix: String,
    redis: bool,
}

impl Store {
    fn memory() -> Store {
        Store {
            limiter: Limiter::memory(),
            prefix: unique_prefix(),
            redis: false,
        }
    }

    /// The Redis store, or `None` (with a note) when Redis is unreachable outside CI.
    async fn redis() -> Option<Store> {
        match Limiter::connect(Some(REDIS_URL)).await {
            Ok(limiter) => Some(Store {
                limiter,
                prefix: unique_prefix(),
                redis: true,
            }),
            Err(e) if ci() => panic!("CI is set but Redis at {REDIS_URL} is unreachable: {e:#}"),
            Err(e) => {
                eprintln!("note: skipping the Redis half, {REDIS_URL} is unreachable: {e:#}");
                None
            }
        }
    }

    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// A second limiter as another instance would have: on Redis a new connection to the
    /// same server, in memory a store of its own.
    async fn other_instance(&self) -> Limiter {
        if self.redis {
            Limiter::connect(Some(REDIS_URL)).await.unwrap()
        } else {
            Limiter::memory()
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if self.redis {
            let removed = delete_keys(&format!("ferum:rl:*{}:*", self.prefix));
            if let Err(e) = removed {
                eprintln!(
                    "note: could not clean up Redis keys for {}: {e}",
                    self.prefix
                );
            }
        }
    }
}

fn unique_prefix() -> String {
    format!(
        "throttle-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Redis keys matching `pattern`, over a plain blocking connection (usable from `Drop`).
fn redis_keys(con: &mut redis::Connection, pattern: &str) -> redis::RedisResult<Vec<String>> {
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query(con)?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

fn redis_connection() -> redis::RedisResult<redis::Connection> {
    redis::Client::open(REDIS_URL)?.get_connection_with_timeout(std::time::Duration::from_secs(2))
}

fn delete_keys(pattern: &str) -> redis::RedisResult<()> {
    let mut con = redis_connection()?;
    let keys = redis_keys(&mut con, pattern)?;
    if !keys.is_empty() {
        redis::cmd("DEL").arg(&keys).query::<i64>(&mut con)?;
    }
    Ok(())
}

both_stores! {
    async fn burst_is_allowed_then_limited(s) {
        let (ip, rule) = (s.key("ip"), rule(3, 10));
        for remaining in [2, 1, 0] {
            assert_eq!(s.limiter.check(&ip, rule, t0()).await.unwrap(), allowed(remaining));
        }
        let d = s.limiter.check(&ip, rule, t0()).await.unwrap();
        assert_eq!(d, limited(Duration::seconds(10)));
        let Decision::Limited { retry_after } = d else { unreachable!() };
        assert!(retry_after > Duration::zero());
        // Still limited a moment later, for correspondingly less time.
        assert_eq!(
            s.limiter.check(&ip, rule, t0() + Duration::seconds(4)).await.unwrap(),
            limited(Duration::seconds(6))
        );
        // Other keys have their own buckets.
        assert_eq!(s.limiter.check(&s.key("other"), rule, t0()).await.unwrap(), allowed(2));
    }

    async fn time_moving_forward_refills(s) {
        let (ip, rule) = (s.key("ip"), rule(2, 60));
        s.limiter.check(&ip, rule, t0()).await.unwrap();
        s.limiter.check(&ip, rule, t0()).await.unwrap();
        assert!(!s.limiter.check(&ip, rule, t0()).await.unwrap().is_allowed());
        let almost = t0() + Duration::seconds(60) - Duration::milliseconds(1);
        assert_eq!(s.limiter.check(&ip, rule, almost).await.unwrap(), limited(Duration::milliseconds(1)));
        let one_later = t0() + Duration::seconds(60);
        assert_eq!(s.limiter.check(&ip, rule, one_later).await.unwrap(), allowed(0));
        assert!(!s.limiter.check(&ip, rule, one_later).await.unwrap().is_allowed());
        // Long idle: full again, capped at the burst.
        let much_later = t0() + Duration::hours(5);
        assert_eq!(s.limiter.check(&ip, rule, much_later).await.unwrap(), allowed(1));
    }

    async fn peek_does_not_consume(s) {
        let (ip, rule) = (s.key("ip"), rule(2, 30));
        for _ in 0..5 {
            assert_eq!(s.limiter.peek(&ip, rule, t0()).await.unwrap(), allowed(2));
        }
        assert_eq!(s.limiter.check(&ip, rule, t0()).await.unwrap(), allowed(1));
        assert_eq!(s.limiter.peek(&ip, rule, t0()).await.unwrap(), allowed(1));
        assert_eq!(s.limiter.check(&ip, rule, t0()).await.unwrap(), allowed(0));
        for _ in 0..3 {
            assert_eq!(s.limiter.peek(&ip, rule, t0()).await.unwrap(), limited(Duration::seconds(30)));
        }
        // Peeking while limited did not push the bucket out.
        let later = t0() + Duration::seconds(30);
        assert_eq!(s.limiter.peek(&ip, rule, later).await.unwrap(), allowed(1));
        assert_eq!(s.limiter.check(&ip, rule, later).await.unwrap(), allowed(0));
    }

    async fn reset_refills_the_bucket(s) {
        let (ip, rule) = (s.key("ip"), rule(1, 3600));
        assert!(s.limiter.check(&ip, rule, t0()).await.unwrap().is_allowed());
        assert!(!s.limiter.check(&ip, rule, t0()).await.unwrap().is_allowed());
        s.limiter.reset(&ip).await.unwrap();
        assert_eq!(s.limiter.peek(&ip, rule, t0()).await.unwrap(), allowed(1));
        assert!(s.limiter.check(&ip, rule, t0()).await.unwrap().is_allowed());
        // Resetting an unknown key is fine.
        s.limiter.reset(&s.key("never-seen")).await.unwrap();
    }

    async fn window_counts_and_resets_after_the_window(s) {
        let (acct, day) = (s.key("acct"), Duration::days(1));
        assert_eq!(s.limiter.get_window(&acct, day, t0()).await.unwrap(), 0);
        for n in 1..=3 {
            assert_eq!(s.limiter.incr_window(&acct, day, t0()).await.unwrap(), n);
        }
        assert_eq!(s.limiter.get_window(&acct, day, t0()).await.unwrap(), 3);
        // Fixed UTC days: the count holds until midnight, then starts over.
        let before_midnight = Utc.with_ymd_and_hms(2026, 3, 2, 23, 59, 59).unwrap();
        assert_eq!(s.limiter.incr_window(&acct, day, before_midnight).await.unwrap(), 4);
        let next_day = Utc.with_ymd_and_hms(2026, 3, 3, 0, 0, 0).unwrap();
        assert_eq!(s.limiter.get_window(&acct, day, next_day).await.unwrap(), 0);
        assert_eq!(s.limiter.incr_window(&acct, day, next_day).await.unwrap(), 1);
        assert_eq!(s.limiter.get_window(&acct, day, next_day).await.unwrap(), 1);
        // Other keys and other window lengths count separately.
        assert_eq!(s.limiter.get_window(&s.key("acct2"), day, t0()).await.unwrap(), 0);
        assert_eq!(s.limiter.get_window(&acct, Duration::hours(1), t0()).await.unwrap(), 0);
    }

    async fn invalid_rules_and_windows_are_errors(s) {
        let ip = s.key("ip");
        assert!(s.limiter.check(&ip, rule(0, 10), t0()).await.is_err());
        assert!(s.limiter.peek(&ip, rule(3, 0), t0()).await.is_err());
        assert!(s.limiter.incr_window(&ip, Duration::zero(), t0()).await.is_err());
        assert!(s.limiter.get_window(&ip, Duration::seconds(-1), t0()).await.is_err());
    }

    async fn instances_share_limits_only_through_redis(s) {
        let other = s.other_instance().await;
        let (ip, acct, rule) = (s.key("ip"), s.key("acct"), rule(2, 60));
        s.limiter.check(&ip, rule, t0()).await.unwrap();
        s.limiter.check(&ip, rule, t0()).await.unwrap();
        s.limiter.incr_window(&acct, Duration::days(1), t0()).await.unwrap();
        let theirs = other.check(&ip, rule, t0()).await.unwrap();
        let their_count = other.incr_window(&acct, Duration::days(1), t0()).await.unwrap();
        if s.redis {
            assert_eq!(theirs, limited(Duration::seconds(60)));
            assert_eq!(their_count, 2);
            other.reset(&ip).await.unwrap();
            assert_eq!(s.limiter.peek(&ip, rule, t0()).await.unwrap(), allowed(2));
        } else {
            assert_eq!(theirs, allowed(1));
            assert_eq!(their_count, 1);
        }
    }

    async fn concurrent_checks_never_exceed_the_burst(s) {
        // On Redis half the calls come from a second instance.
        let peer = if s.redis { s.other_instance().await } else { s.limiter.clone() };
        let (ip, rule) = (s.key("ip"), rule(10, 60));
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let l = if i % 2 == 0 { s.limiter.clone() } else { peer.clone() };
                let ip = ip.clone();
                tokio::spawn(async move { l.check(&ip, rule, t0()).await.unwrap() })
            })
            .collect();
        let mut granted = 0;
        for t in tasks {
            if t.await.unwrap().is_allowed() {
                granted += 1;
            }
        }
        assert_eq!(granted, 10);
    }
}

#[tokio::test]
async fn bad_redis_url_is_an_error_not_a_fallback() {
    assert!(Limiter::connect(Some("not a url")).await.is_err());
    assert!(
        Limiter::connect(Some("http://127.0.0.1:6379"))
            .await
            .is_err()
    );
    // Nothing listens on port 1.
    let err = Limiter::connect(Some("redis://127.0.0.1:1"))
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("Redis"), "{err:#}");
    // The password must not leak into the message.
    let err = Limiter::connect(Some("redis://:hunter2secret@127.0.0.1:1"))
        .await
        .unwrap_err();
    assert!(
        !format!("{err:#} {err:?}").contains("hunter2secret"),
        "{err:#}"
    );
}

#[tokio::test]
async fn no_url_means_memory() {
    let l = Limiter::connect(None).await.unwrap();
    assert!(matches!(
        l.store(),
        ferum::throttle::LimiterStore::Memory(_)
    ));
}

/// On Redis every key is under `ferum:rl:` and carries a TTL, so nothing outlives its use.
#[tokio::test]
async fn redis_keys_are_prefixed_and_expire() {
    let Some(s) = Store::redis().await else {
        return;
    };
    let (ip, acct) = (s.key("ip"), s.key("acct"));
    s.limiter.check(&ip, rule(5, 60), t0()).await.unwrap();
    s.limiter
        .incr_window(&acct, Duration::days(1), t0())
        .await
        .unwrap();
    let mut con = redis_connection().unwrap();
    let keys = redis_keys(&mut con, &format!("*{}:*", s.prefix)).unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    for k in &keys {
        assert!(k.starts_with("ferum:rl:"), "{k}");
        let ttl: i64 = redis::cmd("PTTL").arg(k).query(&mut con).unwrap();
        assert!(ttl > 0, "{k} has PTTL {ttl}");
    }
    // The bucket lives until it would be full again: one token used of a 60 s refill.
    let bucket = keys.iter().find(|k| k.ends_with(":ip")).unwrap();
    let ttl: i64 = redis::cmd("PTTL").arg(bucket).query(&mut con).unwrap();
    assert!(ttl <= 60_000 && ttl > 50_000, "{ttl}");
    // The window lives until the end of its (test-time) day: 15 h after 09:00.
    let window = keys.iter().find(|k| k.ends_with(":acct")).unwrap();
    let ttl: i64 = redis::cmd("PTTL").arg(window).query(&mut con).unwrap();
    assert!(
        ttl <= 15 * 3_600_000 && ttl > 15 * 3_600_000 - 10_000,
        "{ttl}"
    );
    // Dropping the store cleans up after the test.
    let pattern = format!("*{}:*", s.prefix);
    drop(s);
    assert_eq!(
        redis_keys(&mut con, &pattern).unwrap(),
        Vec::<String>::new()
    );
}
