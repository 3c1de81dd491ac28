//! Value types parsed once at the edge: INN, e-mail, bounded text, money and quantities.

use crate::error::FieldError;
use rust_decimal::Decimal;
use std::str::FromStr;

/// Russian taxpayer number: 10 digits (organisations) or 12 (individuals) with valid check digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inn(String);

impl Inn {
    pub fn parse(field: &str, raw: &str) -> Result<Inn, FieldError> {
        let s = raw.trim();
        let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
        let bad = |msg: &str| Err(FieldError::new(field, "invalid_inn", msg));
        if digits.len() != s.chars().count() || !(digits.len() == 10 || digits.len() == 12) {
            return bad("INN must be 10 or 12 digits");
        }
        let check = |weights: &[u32]| -> u32 {
            let sum: u32 = weights.iter().zip(&digits).map(|(w, d)| w * d).sum();
            sum % 11 % 10
        };
        let ok = if digits.len() == 10 {
            check(&[2, 4, 10, 3, 5, 9, 4, 6, 8]) == digits[9]
        } else {
            check(&[7, 2, 4, 10, 3, 5, 9, 4, 6, 8]) == digits[10]
                && check(&[3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8]) == digits[11]
        };
        if !ok {
            return bad("INN check digits do not match");
        }
        Ok(Inn(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A login or contact e-mail, trimmed and lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(field: &str, raw: &str) -> Result<Email, FieldError> {
        let s = raw.trim().to_lowercase();
        let bad = || {
            Err(FieldError::new(
                field,
                "invalid_email",
                "not a valid e-mail address",
            ))
        };
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad();
        }
        match s.split_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.') =>
            {
                Ok(Email(s))
            }
            _ => bad(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Required single-line text: trimmed, not blank, at most `max` characters, no control characters.
pub fn required_line(field: &str, raw: &str, max: usize) -> Result<String, FieldError> {
    let s = optional_line(field, raw, max)?;
    if s.is_empty() {
        return Err(FieldError::new(field, "required", "must not be blank"));
    }
    Ok(s)
}

/// Optional single-line text (may be empty after trimming).
pub fn optional_line(field: &str, raw: &str, max: usize) -> Result<String, FieldError> {
    let s = raw.trim();
    if s.chars().count() > max {
        return Err(too_long(field, max));
    }
    if s.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "invalid_characters",
            "must be a single line of text",
        ));
    }
    Ok(s.to_owned())
}

/// Free text that may span lines: trimmed, at most `max` characters, no control characters but
/// line breaks and tabs.
pub fn multiline(field: &str, raw: &str, max: usize) -> Result<String, FieldError> {
    let s = raw.trim();
    if s.chars().count() > max {
        return Err(too_long(field, max));
    }
    if s.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(FieldError::new(
            field,
            "invalid_characters",
            "contains control characters",
        ));
    }
    Ok(s.to_owned())
}

/// A phone number: digits with the usual separators, 5 to 20 digits.
pub fn phone(field: &str, raw: &str) -> Result<String, FieldError> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(String::new());
    }
    let digits = s.chars().filter(char::is_ascii_digit).count();
    let allowed = s
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')'));
    if !allowed || !(5..=20).contains(&digits) || s.len() > 32 {
        return Err(FieldError::new(
            field,
            "invalid_phone",
            "not a valid phone number",
        ));
    }
    Ok(s.to_owned())
}

fn too_long(field: &str, max: usize) -> FieldError {
    FieldError::new(
        field,
        "too_long",
        format!("must be at most {max} characters"),
    )
}

/// Lower-cased text used for case-insensitive search on every backend (SQLite's `LIKE` folds
/// ASCII only; Russian text needs real Unicode folding, done here once).
pub fn search_key(parts: &[&str]) -> String {
    let mut s = String::new();
    for p in parts {
        if !p.is_empty() {
            if !s.is_empty() {
                s.push('\n');
            }
            s.push_str(&fold(p));
        }
    }
    s
}

/// Folds text for matching: Unicode lower case, `ё` as `е`.
pub fn fold(s: &str) -> String {
    s.to_lowercase().replace('ё', "е")
}

/// A `LIKE` pattern matching `q` anywhere, with `%`, `_` and `\` escaped (use `ESCAPE '\'`).
pub fn like_pattern(q: &str) -> String {
    let mut p = String::from("%");
    for c in fold(q.trim()).chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// A Telegram chat id: a whole number (negative for groups and channels) of at most 20
/// characters, as the Bot API gives it.
pub fn telegram_chat_id(field: &str, raw: &str) -> Result<String, FieldError> {
    let s = raw.trim();
    let digits = s.strip_prefix('-').unwrap_or(s);
    if s.len() > 20 || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldError::new(
            field,
            "invalid_value",
            "a Telegram chat id is a whole number, e.g. 123456789 or -1001234567890",
        ));
    }
    Ok(s.to_owned())
}

/// Exact money in kopecks. Roubles on the wire as a decimal string with at most two decimals.
///
/// Arithmetic on money is checked: [`Money::checked_add`], [`line_amount`] and [`sum`] refuse
/// (return `None`) rather than wrap, and never give a value past [`MAX_MONEY_KOPECKS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Money(pub i64);

/// The largest amount of money accepted or computed anywhere, inclusive: 1 000 000 000.00 ₽
/// (a billion roubles is beyond any contract here). It bounds unit prices, line amounts,
/// report totals, contract values and bonuses alike; with it no sum of [`MAX_ITEMS`] lines
/// comes anywhere near `i64`.
///
/// [`MAX_ITEMS`]: crate::domain::report::MAX_ITEMS
pub const MAX_MONEY_KOPECKS: i64 = 100_000_000_000;

/// [`MAX_MONEY_KOPECKS`] as the wire writes it.
pub const MAX_MONEY_TEXT: &str = "1000000000.00";

impl Money {
    /// The largest amount accepted or computed, [`MAX_MONEY_KOPECKS`].
    pub const MAX: Money = Money(MAX_MONEY_KOPECKS);

    /// Roubles as a decimal string with at most two decimals, from zero to [`Money::MAX`].
    pub fn parse(field: &str, raw: &str) -> Result<Money, FieldError> {
        let kopecks = parse_fixed(field, raw, 2)?;
        if kopecks < 0 {
            return Err(FieldError::new(field, "negative", "must not be negative"));
        }
        Money::new(kopecks).ok_or_else(|| too_much(field))
    }

    /// `kopecks` as money when it is within `0..=MAX_MONEY_KOPECKS`.
    pub fn new(kopecks: i64) -> Option<Money> {
        (0..=MAX_MONEY_KOPECKS)
            .contains(&kopecks)
            .then_some(Money(kopecks))
    }

    /// The exact sum, or `None` when it would be negative or past [`Money::MAX`].
    pub fn checked_add(self, other: Money) -> Option<Money> {
        Money::new(self.0.checked_add(other.0)?)
    }

    pub fn kopecks(self) -> i64 {
        self.0
    }
}

/// The refusal of an amount past [`Money::MAX`].
pub fn too_much(field: &str) -> FieldError {
    FieldError::new(
        field,
        "too_large",
        format!("must be at most {MAX_MONEY_TEXT} roubles"),
    )
}

/// The exact sum of amounts, or `None` when it (or any part of it) is negative or past
/// [`Money::MAX`].
pub fn sum(amounts: impl IntoIterator<Item = Money>) -> Option<Money> {
    amounts
        .into_iter()
        .try_fold(Money(0), |acc, a| acc.checked_add(Money::new(a.0)?))
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_fixed(f, self.0, 2)
    }
}

impl Money {
    /// As people read amounts: `1 250,50 ₽` in Russian (narrow no-break spaces between
    /// thousands, a comma before kopecks), `1,250.50 ₽` in English.
    pub fn display(self, russian: bool) -> String {
        let (group, point) = if russian {
            ('\u{202f}', ',')
        } else {
            (',', '.')
        };
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let roubles = (abs / 100).to_string();
        let mut grouped = String::new();
        for (i, c) in roubles.chars().enumerate() {
            if i > 0 && (roubles.len() - i).is_multiple_of(3) {
                grouped.push(group);
            }
            grouped.push(c);
        }
        format!("{sign}{grouped}{point}{:02}\u{a0}₽", abs % 100)
    }
}

/// An exact quantity in thousandths of a unit; on the wire a decimal string with at most three
/// decimals, strictly positive and at most [`MAX_QUANTITY_MILLI`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(pub i64);

/// The largest quantity accepted, inclusive, in thousandths: 1 000 000 units.
pub const MAX_QUANTITY_MILLI: i64 = 1_000_000_000;

/// [`MAX_QUANTITY_MILLI`] as the wire writes it.
pub const MAX_QUANTITY_TEXT: &str = "1000000";

impl Quantity {
    pub fn parse(field: &str, raw: &str) -> Result<Quantity, FieldError> {
        let milli = parse_fixed(field, raw, 3)?;
        if milli <= 0 {
            return Err(FieldError::new(
                field,
                "not_positive",
                "must be greater than zero",
            ));
        }
        if milli > MAX_QUANTITY_MILLI {
            return Err(FieldError::new(
                field,
                "too_large",
                format!("must be at most {MAX_QUANTITY_TEXT}"),
            ));
        }
        Ok(Quantity(milli))
    }

    pub fn milli(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Quantities print with as few decimals as they need, but at least none: "2", "1.5".
        let mut s = String::new();
        use std::fmt::Write;
        write!(s, "{}", FixedDisplay(self.0, 3))?;
        if s.contains('.') {
            let t = s.trim_end_matches('0').trim_end_matches('.');
            f.write_str(t)
        } else {
            f.write_str(&s)
        }
    }
}

struct FixedDisplay(i64, u32);
impl std::fmt::Display for FixedDisplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_fixed(f, self.0, self.1)
    }
}

fn write_fixed(f: &mut std::fmt::Formatter<'_>, units: i64, scale: u32) -> std::fmt::Result {
    let d = Decimal::new(units, scale);
    write!(f, "{d:.prec$}", prec = scale as usize)
}

/// Parses a plain decimal string ("1250", "1250.5", "0.125") into integer units of 10^-scale.
fn parse_fixed(field: &str, raw: &str, scale: u32) -> Result<i64, FieldError> {
    let s = raw.trim();
    let plain = !s.is_empty()
        && s.len() <= 24
        && s.chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
        && s.chars().filter(|&c| c == '.').count() <= 1
        && !s.ends_with('.')
        && !s.starts_with('.');
    let not_number = || {
        FieldError::new(
            field,
            "invalid_decimal",
            "must be a decimal number such as \"1250.00\"",
        )
    };
    if !plain {
        return Err(not_number());
    }
    let d = Decimal::from_str(s).map_err(|_| not_number())?;
    if d.normalize().scale() > scale {
        return Err(FieldError::new(
            field,
            "too_precise",
            format!("must have at most {scale} decimal places"),
        ));
    }
    use rust_decimal::prelude::ToPrimitive;
    d.checked_mul(Decimal::from(10_i64.pow(scale)))
        .and_then(|units| units.to_i64())
        .ok_or_else(|| FieldError::new(field, "too_large", "number is too large"))
}

/// `quantity × unit price`, exact, rounded half up to whole kopecks; `None` when a factor is
/// negative or the amount is past [`Money::MAX`] (never a wrapped or clamped number).
pub fn line_amount(q: Quantity, price: Money) -> Option<Money> {
    if q.0 < 0 || price.0 < 0 {
        return None;
    }
    // In thousandths of a kopeck; i64 × i64 always fits in i128.
    let prod = i128::from(q.0).checked_mul(i128::from(price.0))?;
    let rounded = prod.checked_add(500)? / 1000;
    Money::new(i64::try_from(rounded).ok()?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn money_reads_as_people_write_it() {
        assert_eq!(super::Money(125050).display(true), "1\u{202f}250,50\u{a0}₽");
        assert_eq!(super::Money(125050).display(false), "1,250.50\u{a0}₽");
        assert_eq!(super::Money(5).display(true), "0,05\u{a0}₽");
        assert_eq!(
            super::Money(123456789012).display(true),
            "1\u{202f}234\u{202f}567\u{202f}890,12\u{a0}₽"
        );
        assert_eq!(super::Money(-100000).display(false), "-1,000.00\u{a0}₽");
    }

    use super::*;

    #[test]
    fn inn_accepts_valid_10_and_12_digits() {
        assert!(Inn::parse("inn", "7707083893").is_ok()); // Sberbank
        assert!(Inn::parse("inn", "500100732259").is_ok());
        assert!(Inn::parse("inn", " 7736050003 ").is_ok());
    }

    #[test]
    fn inn_rejects_bad_check_digits_and_lengths() {
        for bad in [
            "7707083894",
            "500100732258",
            "500100732269",
            "123",
            "77070838931",
            "77070838a3",
            "",
        ] {
            let e = Inn::parse("inn", bad).unwrap_err();
            assert_eq!(e.code, "invalid_inn", "{bad}");
        }
    }

    #[test]
    fn email_is_normalised_and_checked() {
        assert_eq!(
            Email::parse("e", " Ivan@Example.RU ").unwrap().as_str(),
            "ivan@example.ru"
        );
        for bad in [
            "ivan", "ivan@", "@x.ru", "a b@x.ru", "a@x", "a@@x.ru", "a@x.",
        ] {
            assert!(Email::parse("e", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_limits() {
        assert_eq!(required_line("f", "  hi ", 5).unwrap(), "hi");
        assert_eq!(required_line("f", "   ", 5).unwrap_err().code, "required");
        assert_eq!(
            required_line("f", "ёёёёёё", 5).unwrap_err().code,
            "too_long"
        );
        assert!(required_line("f", "ёёёёё", 5).is_ok());
        assert_eq!(
            required_line("f", "a\nb", 5).unwrap_err().code,
            "invalid_characters"
        );
        assert_eq!(multiline("f", "a\nb", 5).unwrap(), "a\nb");
        assert_eq!(
            multiline("f", "a\u{0}b", 5).unwrap_err().code,
            "invalid_characters"
        );
    }

    #[test]
    fn money_parses_exactly() {
        assert_eq!(Money::parse("p", "1250.00").unwrap(), Money(125_000));
        assert_eq!(Money::parse("p", "1250.5").unwrap(), Money(125_050));
        assert_eq!(Money::parse("p", "0").unwrap(), Money(0));
        assert_eq!(Money::parse("p", "0.10").unwrap(), Money(10));
        assert_eq!(Money::parse("p", "1.230").unwrap(), Money(123));
        assert_eq!(Money::parse("p", "-1").unwrap_err().code, "negative");
        assert_eq!(Money::parse("p", "1.001").unwrap_err().code, "too_precise");
        assert_eq!(
            Money::parse("p", "1e3").unwrap_err().code,
            "invalid_decimal"
        );
        assert_eq!(
            Money::parse("p", "abc").unwrap_err().code,
            "invalid_decimal"
        );
        assert_eq!(
            Money::parse("p", "NaN").unwrap_err().code,
            "invalid_decimal"
        );
        assert_eq!(
            Money::parse("p", "99999999999999999999").unwrap_err().code,
            "too_large"
        );
        assert_eq!(Money(125_000).to_string(), "1250.00");
        assert_eq!(Money(5).to_string(), "0.05");
    }

    #[test]
    fn quantity_must_be_positive() {
        assert_eq!(Quantity::parse("q", "1.5").unwrap(), Quantity(1500));
        assert_eq!(Quantity::parse("q", "0").unwrap_err().code, "not_positive");
        assert_eq!(Quantity::parse("q", "-2").unwrap_err().code, "not_positive");
        assert_eq!(
            Quantity::parse("q", "0.0001").unwrap_err().code,
            "too_precise"
        );
        assert_eq!(Quantity(1500).to_string(), "1.5");
        assert_eq!(Quantity(2000).to_string(), "2");
        assert_eq!(Quantity(125).to_string(), "0.125");
    }

    #[test]
    fn telegram_chat_ids_are_whole_numbers() {
        assert_eq!(telegram_chat_id("t", " 123456789 ").unwrap(), "123456789");
        assert_eq!(
            telegram_chat_id("t", "-1001234567890").unwrap(),
            "-1001234567890"
        );
        for bad in ["", "-", "12a", "@name", "1 2", "123456789012345678901"] {
            assert!(telegram_chat_id("t", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn line_amount_is_exact_and_rounds_half_up() {
        let amount = |q, p| line_amount(Quantity(q), Money(p)).unwrap();
        assert_eq!(amount(3000, 125_000), Money(375_000));
        assert_eq!(amount(1500, 33), Money(50)); // 0.495 -> 0.50
        assert_eq!(amount(1, 1), Money(0));
        // 0.1 + 0.2 style sums stay exact.
        let a = amount(1000, 10);
        let b = amount(1000, 20);
        assert_eq!(a.checked_add(b).unwrap().to_string(), "0.30");
    }

    #[test]
    fn money_arithmetic_refuses_past_the_maximum() {
        // The largest quantity at the largest price: far past the maximum, refused.
        assert_eq!(
            line_amount(Quantity(MAX_QUANTITY_MILLI), Money(MAX_MONEY_KOPECKS)),
            None
        );
        assert_eq!(
            line_amount(Quantity(1_000_000_000), Money(100_000)),
            Some(Money::MAX)
        );
        assert_eq!(line_amount(Quantity(1_000_000_000), Money(100_001)), None);
        assert_eq!(line_amount(Quantity(i64::MAX), Money(i64::MAX)), None);
        assert_eq!(line_amount(Quantity(-1000), Money(100)), None);
        assert_eq!(Money::MAX.checked_add(Money(0)), Some(Money::MAX));
        assert_eq!(Money::MAX.checked_add(Money(1)), None);
        assert_eq!(Money(i64::MAX).checked_add(Money(1)), None);
        assert_eq!(sum([Money(1), Money(2)]), Some(Money(3)));
        assert_eq!(sum([]), Some(Money(0)));
        // 93 lines of 10^17 kopecks used to wrap to a negative total.
        assert_eq!(sum(vec![Money(100_000_000_000_000_000); 93]), None);
        assert_eq!(sum([Money::MAX, Money(1)]), None);
        assert_eq!(sum([Money(-1), Money(1)]), None);
        assert_eq!(Money::MAX.to_string(), MAX_MONEY_TEXT);
        assert_eq!(Quantity(MAX_QUANTITY_MILLI).to_string(), MAX_QUANTITY_TEXT);
        assert_eq!(Money::parse("p", MAX_MONEY_TEXT), Ok(Money::MAX));
        assert_eq!(
            Money::parse("p", "1000000000.01").unwrap_err().code,
            "too_large"
        );
        assert_eq!(
            Quantity::parse("q", "1000000.001").unwrap_err().code,
            "too_large"
        );
    }

    #[test]
    fn like_pattern_escapes_wildcards_and_folds() {
        assert_eq!(like_pattern("Ёлка_50%"), "%елка\\_50\\%%");
        assert_eq!(search_key(&["SR-1", "", "Пожар"]), "sr-1\nпожар");
    }
}

/// Property tests of the parsers of outside input: they never panic, accept exactly what the
/// rules allow, and money arithmetic is exact or a refusal, never a wrong number.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// A reference reading of a plain decimal (`-`? digits (`.` digits)?), in units of
    /// 10^-scale, in i128: `None` for anything else, longer than 24 characters or too precise.
    fn reference_fixed(raw: &str, scale: u32) -> Option<i128> {
        let s = raw.trim();
        if s.len() > 24 {
            return None;
        }
        let (negative, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int, frac) = match body.split_once('.') {
            Some((i, f)) => (i, f),
            None => (body, ""),
        };
        let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty()
            || !digits(int)
            || !digits(frac)
            || (body.contains('.') && frac.is_empty())
        {
            return None;
        }
        let frac = frac.trim_end_matches('0');
        if frac.len() > scale as usize {
            return None;
        }
        let mut v: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            v = v * 10 + i128::from(b - b'0');
        }
        v *= 10_i128.pow(scale - frac.len() as u32);
        Some(if negative { -v } else { v })
    }

    /// Strings that look like numbers, and near misses.
    fn numberish() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ ]?-?[0-9]{0,14}(\\.[0-9]{0,5})?[ ]?",
            "[-0-9.,e+ _]{0,30}",
            any::<String>(),
        ]
    }

    /// `quantity × price` rounded half up, by long division in i128.
    fn reference_amount(q: i64, price: i64) -> i128 {
        let exact = i128::from(q) * i128::from(price);
        exact / 1000 + i128::from(exact % 1000 >= 500)
    }

    /// The INN check digits, computed independently of [`Inn::parse`].
    fn inn_check(digits: &[u32], weights: &[u32]) -> u32 {
        weights.iter().zip(digits).map(|(w, d)| w * d).sum::<u32>() % 11 % 10
    }

    fn inn_residue(digits: &[u32], weights: &[u32]) -> u32 {
        weights.iter().zip(digits).map(|(w, d)| w * d).sum::<u32>() % 11
    }

    const W10: [u32; 9] = [2, 4, 10, 3, 5, 9, 4, 6, 8];
    const W11: [u32; 10] = [7, 2, 4, 10, 3, 5, 9, 4, 6, 8];
    const W12: [u32; 11] = [3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8];

    fn reference_inn_ok(raw: &str) -> bool {
        let s = raw.trim();
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        let d: Vec<u32> = s.bytes().map(|b| u32::from(b - b'0')).collect();
        match d.len() {
            10 => inn_check(&d, &W10) == d[9],
            12 => inn_check(&d, &W11) == d[10] && inn_check(&d, &W12) == d[11],
            _ => false,
        }
    }

    /// A valid INN: random digits with their check digits computed.
    fn valid_inn() -> impl Strategy<Value = Vec<u32>> {
        prop_oneof![
            proptest::collection::vec(0..10_u32, 9).prop_map(|mut d| {
                d.push(inn_check(&d, &W10));
                d
            }),
            proptest::collection::vec(0..10_u32, 10).prop_map(|mut d| {
                d.push(inn_check(&d, &W11));
                d.push(inn_check(&d, &W12));
                d
            }),
        ]
    }

    fn text(d: &[u32]) -> String {
        d.iter()
            .map(|x| char::from_digit(*x, 10).unwrap())
            .collect()
    }

    proptest! {
        #[test]
        fn money_parse_accepts_exactly_plain_decimals_in_range(s in numberish()) {
            let expected = reference_fixed(&s, 2)
                .filter(|k| (0..=i128::from(MAX_MONEY_KOPECKS)).contains(k))
                .map(|k| Money(k as i64));
            let got = Money::parse("p", &s);
            prop_assert_eq!(got.as_ref().ok().copied(), expected, "{:?} -> {:?}", s, got);
            if let Err(e) = got {
                prop_assert_eq!(e.field, "p");
            }
        }

        #[test]
        fn quantity_parse_accepts_exactly_plain_positive_decimals_in_range(s in numberish()) {
            let expected = reference_fixed(&s, 3)
                .filter(|m| (1..=i128::from(MAX_QUANTITY_MILLI)).contains(m))
                .map(|m| Quantity(m as i64));
            let got = Quantity::parse("q", &s);
            prop_assert_eq!(got.as_ref().ok().copied(), expected, "{:?} -> {:?}", s, got);
        }

        #[test]
        fn money_round_trips(k in 0..=MAX_MONEY_KOPECKS) {
            let m = Money(k);
            prop_assert_eq!(Money::parse("p", &m.to_string()), Ok(m));
            prop_assert_eq!(Money::new(k), Some(m));
            // People's spelling keeps every digit.
            let shown: String = m.display(false).chars().filter(char::is_ascii_digit).collect();
            let digits = k.to_string();
            prop_assert_eq!(shown.trim_start_matches('0'), digits.trim_start_matches('0'));
        }

        #[test]
        fn money_past_the_maximum_is_refused(k in (MAX_MONEY_KOPECKS + 1)..=i64::MAX) {
            prop_assert_eq!(Money::new(k), None);
            prop_assert_eq!(Money::parse("p", &Money(k).to_string()).unwrap_err().code, "too_large");
        }

        #[test]
        fn quantity_round_trips(m in 1..=MAX_QUANTITY_MILLI) {
            let q = Quantity(m);
            prop_assert_eq!(Quantity::parse("q", &q.to_string()), Ok(q));
        }

        #[test]
        fn quantity_outside_the_range_is_refused(
            m in prop_oneof![i64::MIN..=0, (MAX_QUANTITY_MILLI + 1)..=i64::MAX]
        ) {
            let text = FixedDisplay(m, 3).to_string();
            prop_assert!(Quantity::parse("q", &text).is_err(), "{}", text);
        }

        #[test]
        fn line_amount_is_exact_or_refused(
            q in prop_oneof![0..=MAX_QUANTITY_MILLI, any::<i64>()],
            p in prop_oneof![0..=MAX_MONEY_KOPECKS, 0..=1_000_000_i64, any::<i64>()],
        ) {
            let got = line_amount(Quantity(q), Money(p));
            if q < 0 || p < 0 {
                prop_assert_eq!(got, None);
            } else {
                let want = reference_amount(q, p);
                if want <= i128::from(MAX_MONEY_KOPECKS) {
                    prop_assert_eq!(got, Some(Money(want as i64)));
                    // Half up: within half a kopeck of the exact product.
                    let diff = i128::from(got.unwrap().0) * 1000 - i128::from(q) * i128::from(p);
                    prop_assert!(-500 < diff && diff <= 500);
                } else {
                    prop_assert_eq!(got, None);
                }
            }
        }

        #[test]
        fn sums_are_exact_or_refused(
            amounts in proptest::collection::vec(
                prop_oneof![
                    0..=MAX_MONEY_KOPECKS,
                    (MAX_MONEY_KOPECKS / 4)..=MAX_MONEY_KOPECKS,
                    any::<i64>(),
                ],
                0..60,
            )
        ) {
            let got = sum(amounts.iter().copied().map(Money));
            let all_in_range = amounts.iter().all(|a| (0..=MAX_MONEY_KOPECKS).contains(a));
            let exact: i128 = amounts.iter().map(|a| i128::from(*a)).sum();
            if all_in_range && exact <= i128::from(MAX_MONEY_KOPECKS) {
                prop_assert_eq!(got, Some(Money(exact as i64)));
            } else {
                prop_assert_eq!(got, None);
            }
        }

        #[test]
        fn inn_parse_never_panics_and_follows_the_rules(
            s in prop_oneof!["[ ]?[0-9]{8,13}[ ]?", "[0-9a٣ ]{0,14}", any::<String>()]
        ) {
            let got = Inn::parse("inn", &s);
            prop_assert_eq!(got.is_ok(), reference_inn_ok(&s), "{:?}", s);
            match got {
                Ok(inn) => prop_assert_eq!(inn.as_str(), s.trim()),
                Err(e) => {
                    prop_assert_eq!(e.field, "inn");
                    prop_assert_eq!(e.code, "invalid_inn");
                }
            }
        }

        #[test]
        fn valid_inns_are_accepted_and_single_digit_changes_refused(
            d in valid_inn(),
            pos in any::<proptest::sample::Index>(),
            delta in 1..10_u32,
        ) {
            prop_assert!(Inn::parse("inn", &text(&d)).is_ok(), "{}", text(&d));
            let i = pos.index(d.len());
            let mut changed = d.clone();
            changed[i] = (d[i] + delta) % 10;
            let accepted = Inn::parse("inn", &text(&changed)).is_ok();
            let check_digit = if d.len() == 10 { i == 9 } else { i >= 10 };
            // A changed check digit never matches.
            prop_assert!(!(check_digit && accepted), "{} -> {}", text(&d), text(&changed));
            if accepted {
                // The only changes the checksum cannot see: `% 11 % 10` maps residues 10 and
                // 0 to the same check digit, so a body change moving every residue between 0
                // and 10 keeps the number valid. Anything else accepted is a bug.
                let weights: &[&[u32]] = if d.len() == 10 { &[&W10] } else { &[&W11, &W12] };
                for w in weights {
                    let (a, b) = (inn_residue(&d, w), inn_residue(&changed, w));
                    prop_assert!(
                        a == b || (a % 10 == 0 && b % 10 == 0),
                        "{} -> {}", text(&d), text(&changed)
                    );
                }
                prop_assert!(reference_inn_ok(&text(&changed)));
            }
        }
    }
}
