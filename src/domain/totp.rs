//! Time-based one-time passwords (RFC 6238, via `totp-rs`): codes, drift, replay and lockout
//! rules, over plain data. Time and secrets are parameters.

use totp_rs::{Algorithm, Secret, TOTP};

/// Seconds per code.
pub const STEP: i64 = 30;
/// Wrong codes in a row before the second factor locks.
pub const MAX_FAILURES: i64 = 3;

fn totp(secret: &[u8], account: &str) -> Option<TOTP> {
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        STEP as u64,
        secret.to_vec(),
        Some("Ferum".into()),
        account.to_owned(),
    )
    .ok()
}

/// A fresh random secret, base32.
pub fn new_secret_base32(random: [u8; 20]) -> String {
    Secret::Raw(random.to_vec()).to_encoded().to_string()
}

/// The secret's bytes from its base32 form.
pub fn secret_bytes(base32: &str) -> Option<Vec<u8>> {
    Secret::Encoded(base32.to_owned()).to_bytes().ok()
}

/// The `otpauth://` URI an authenticator app scans.
pub fn otpauth_uri(secret_base32: &str, account: &str) -> Option<String> {
    Some(totp(&secret_bytes(secret_base32)?, account)?.get_url())
}

/// The code for a time, for tests and tools.
pub fn code_at(secret_base32: &str, unix: i64) -> Option<String> {
    Some(totp(&secret_bytes(secret_base32)?, "x")?.generate(unix.max(0) as u64))
}

/// The time step of a moment.
pub fn step_of(unix: i64) -> i64 {
    unix.div_euclid(STEP)
}

/// Checks a code allowing one step of drift either way. Each step's code is accepted once:
/// only steps after `last_step` count, so a replay within its window fails. Returns the step
/// that matched.
pub fn verify(secret_base32: &str, code: &str, now_unix: i64, last_step: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let t = totp(&secret_bytes(secret_base32)?, "x")?;
    let now = step_of(now_unix);
    (now - 1..=now + 1)
        .filter(|s| *s > last_step)
        .find(|s| constant_time_eq(t.generate((*s * STEP) as u64).as_bytes(), code.as_bytes()))
}

/// Compares secrets in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// After a wrong code: the new failure count and, at the limit, when the lock ends — the end
/// of the current time window.
pub fn after_failure(failures: i64, now_unix: i64) -> (i64, Option<i64>) {
    let failures = failures + 1;
    if failures >= MAX_FAILURES {
        (0, Some((step_of(now_unix) + 1) * STEP))
    } else {
        (failures, None)
    }
}

/// A recovery code as users type it: groups of letters and digits, any case, dashes optional.
pub fn normalise_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Formats 16 random base32 characters as `ABCD-EFGH-IJKL-MNOP` (80 bits).
pub fn recovery_code(random: [u8; 16]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let chars: Vec<char> = random
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

    #[test]
    fn codes_drift_and_replay() {
        let t = 1_700_000_000;
        let code = code_at(SECRET, t).unwrap();
        let step = step_of(t);
        assert_eq!(verify(SECRET, &code, t, 0), Some(step));
        // One step of drift either way, not two.
        assert_eq!(verify(SECRET, &code, t + STEP, 0), Some(step));
        assert_eq!(verify(SECRET, &code, t - STEP, 0), Some(step));
        assert_eq!(verify(SECRET, &code, t + 2 * STEP, 0), None);
        // Replay of an accepted step fails.
        assert_eq!(verify(SECRET, &code, t, step), None);
        assert_eq!(verify(SECRET, "000000x", t, 0), None);
        assert_eq!(verify(SECRET, "", t, 0), None);
    }

    #[test]
    fn three_failures_lock_until_the_window_ends() {
        let t = 1_700_000_010;
        assert_eq!(after_failure(0, t), (1, None));
        assert_eq!(after_failure(1, t), (2, None));
        let (n, until) = after_failure(2, t);
        assert_eq!(n, 0);
        assert_eq!(until, Some((step_of(t) + 1) * STEP));
        assert!(until.unwrap() > t);
    }

    #[test]
    fn secrets_uris_and_recovery_codes() {
        let s = new_secret_base32([7; 20]);
        assert_eq!(secret_bytes(&s).unwrap(), vec![7; 20]);
        let uri = otpauth_uri(&s, "ivan@example.ru").unwrap();
        assert!(
            uri.starts_with("otpauth://totp/Ferum:ivan%40example.ru?secret="),
            "{uri}"
        );
        let rc = recovery_code([200; 16]);
        assert_eq!(rc.len(), 19);
        assert_eq!(
            normalise_recovery_code(&rc.to_lowercase()),
            rc.replace('-', "")
        );
    }
}
