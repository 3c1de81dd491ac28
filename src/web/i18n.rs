//! Message catalogs for the web pages: `locales/ru.txt` and `locales/en.txt`, one
//! `key = text` per line, embedded in the binary. Russian is the default.

use std::collections::HashMap;
use std::sync::OnceLock;

/// A language of the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ru,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ru => "ru",
            Lang::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim() {
            "ru" => Some(Lang::Ru),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The language a browser prefers, from its `Accept-Language` header: the supported
    /// language with the highest weight (`ru-RU` counts as `ru`), none when neither is asked
    /// for. Ties go to the one listed first.
    pub fn from_accept_language(header: &str) -> Option<Lang> {
        let mut best: Option<(Lang, u16)> = None;
        for part in header.split(',') {
            let mut pieces = part.split(';');
            let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let primary = tag.split('-').next().unwrap_or("");
            let Some(lang) = Lang::parse(primary) else {
                continue;
            };
            // Weights are 0..1 with up to three decimals; kept as thousandths.
            let weight = pieces
                .filter_map(|p| p.trim().strip_prefix("q="))
                .next()
                .map_or(Some(1000), |q| {
                    q.trim()
                        .parse::<f32>()
                        .ok()
                        .filter(|q| (0.0..=1.0).contains(q))
                        .map(|q| (q * 1000.0).round() as u16)
                })
                .unwrap_or(0);
            if weight > 0 && best.is_none_or(|(_, w)| weight > w) {
                best = Some((lang, weight));
            }
        }
        best.map(|(lang, _)| lang)
    }

    /// The other language, for the switch.
    pub fn other(self) -> Lang {
        match self {
            Lang::Ru => Lang::En,
            Lang::En => Lang::Ru,
        }
    }
}

pub const RU: &str = include_str!("../../locales/ru.txt");
pub const EN: &str = include_str!("../../locales/en.txt");

/// Parses a catalog; a line without ` = ` or a repeated key is an error naming the line.
pub fn parse_catalog(text: &'static str) -> Result<HashMap<&'static str, &'static str>, String> {
    let mut map = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line
            .split_once(" = ")
            .ok_or_else(|| format!("line {}: expected `key = text`", n + 1))?;
        if map.insert(k.trim(), v.trim()).is_some() {
            return Err(format!("line {}: {} is defined twice", n + 1, k.trim()));
        }
    }
    Ok(map)
}

fn catalog(lang: Lang) -> &'static HashMap<&'static str, &'static str> {
    static RU_MAP: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    static EN_MAP: OnceLock<HashMap<&'static str, &'static str>> = OnceLock::new();
    match lang {
        Lang::Ru => RU_MAP.get_or_init(|| parse_catalog(RU).expect("locales/ru.txt parses")),
        Lang::En => EN_MAP.get_or_init(|| parse_catalog(EN).expect("locales/en.txt parses")),
    }
}

/// Looks texts up in one language; what templates call as `t.t("key")`.
#[derive(Debug, Clone, Copy)]
pub struct Tr {
    pub lang: Lang,
    /// The company's time zone, in which times are shown.
    pub tz: chrono_tz::Tz,
}

impl Tr {
    /// The text for `key`; `?` when it is missing (a test keeps none missing).
    pub fn t(&self, key: &str) -> &'static str {
        catalog(self.lang).get(key).copied().unwrap_or_else(|| {
            tracing::warn!(key, lang = self.lang.code(), "missing message");
            "?"
        })
    }

    /// The text for `key`, if the catalog has one.
    pub fn get(&self, key: &str) -> Option<&'static str> {
        catalog(self.lang).get(key).copied()
    }

    /// A span of time, rounded to what matters at its size: `45 мин`, `2 ч 15 мин`,
    /// `3 дн 4 ч` (`45 min`, `2 h 15 min`, `3 d 4 h`).
    pub fn span(&self, minutes: i64) -> String {
        let m = minutes.max(0);
        let (d, h, min) = (m / 1440, m % 1440 / 60, m % 60);
        let unit = |n: i64, key: &str| format!("{n}\u{a0}{}", self.t(key));
        match (d, h) {
            (0, 0) => unit(min, "time.min"),
            (0, _) if min == 0 => unit(h, "time.h"),
            (0, _) => format!("{} {}", unit(h, "time.h"), unit(min, "time.min")),
            (_, 0) => unit(d, "time.d"),
            _ => format!("{} {}", unit(d, "time.d"), unit(h, "time.h")),
        }
    }

    /// `t(key)` with `{}` replaced by `arg`.
    pub fn t1(&self, key: &str, arg: impl std::fmt::Display) -> String {
        self.t(key).replacen("{}", &arg.to_string(), 1)
    }

    pub fn lang(&self) -> &'static str {
        self.lang.code()
    }

    /// A moment as the company reads it: `27.11.2026 08:15` in its time zone.
    pub fn when(&self, at: chrono::DateTime<chrono::Utc>) -> String {
        at.with_timezone(&self.tz)
            .format("%d.%m.%Y %H:%M")
            .to_string()
    }

    /// The same moment in RFC 3339 with the zone's offset, for `<time datetime>`.
    pub fn when_iso(&self, at: chrono::DateTime<chrono::Utc>) -> String {
        at.with_timezone(&self.tz)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_catalogs_parse_and_have_the_same_keys() {
        let ru = parse_catalog(RU).unwrap();
        let en = parse_catalog(EN).unwrap();
        let mut only_ru: Vec<_> = ru.keys().filter(|k| !en.contains_key(*k)).collect();
        let mut only_en: Vec<_> = en.keys().filter(|k| !ru.contains_key(*k)).collect();
        only_ru.sort();
        only_en.sort();
        assert!(only_ru.is_empty(), "missing in en.txt: {only_ru:?}");
        assert!(only_en.is_empty(), "missing in ru.txt: {only_en:?}");
    }

    #[test]
    fn every_key_used_in_templates_and_code_exists() {
        let ru = parse_catalog(RU).unwrap();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut missing = Vec::new();
        let mut dirs = vec![root.join("templates"), root.join("src/web")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if path.ends_with("i18n.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for marker in ["t.t(\"", "t.t1(\""] {
                    for piece in text.split(marker).skip(1) {
                        let key = piece.split('"').next().unwrap();
                        if !ru.contains_key(key) {
                            missing.push(format!("{}: {key}", path.display()));
                        }
                    }
                }
            }
        }
        assert!(missing.is_empty(), "keys not in the catalogs: {missing:?}");
    }

    #[test]
    fn russian_status_labels_are_the_products() {
        let ru = parse_catalog(RU).unwrap();
        for st in crate::domain::request::Status::ALL {
            assert_eq!(
                ru[format!("status.{}", st.as_str()).as_str()],
                st.label_ru()
            );
        }
    }

    #[test]
    fn times_are_shown_in_the_company_zone() {
        let t = Tr {
            lang: Lang::Ru,
            tz: chrono_tz::Asia::Yekaterinburg,
        };
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-27T21:30:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(t.when(at), "28.11.2026 02:30");
        assert_eq!(t.when_iso(at), "2026-11-28T02:30:00+05:00");
    }

    #[test]
    fn the_browser_language_is_read_from_accept_language() {
        let pick = Lang::from_accept_language;
        assert_eq!(pick("en-US,en;q=0.9"), Some(Lang::En));
        assert_eq!(pick("ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7"), Some(Lang::Ru));
        assert_eq!(pick("de-DE,en;q=0.5,ru;q=0.7"), Some(Lang::Ru));
        assert_eq!(pick("fr, en;q=0.3"), Some(Lang::En));
        assert_eq!(
            pick("en;q=0, ru;q=0.1"),
            Some(Lang::Ru),
            "q=0 means not wanted"
        );
        assert_eq!(pick("EN-gb"), Some(Lang::En));
        assert_eq!(pick("de, fr;q=0.8"), None);
        assert_eq!(pick(""), None);
        assert_eq!(
            pick("en;q=abc"),
            None,
            "a malformed weight counts as not wanted"
        );
        assert_eq!(
            pick("en;q=0.5, ru;q=0.5"),
            Some(Lang::En),
            "ties go to the first"
        );
    }

    #[test]
    fn spans_of_time_read_as_people_say_them() {
        let ru = Tr {
            lang: Lang::Ru,
            tz: chrono_tz::UTC,
        };
        let en = Tr {
            lang: Lang::En,
            ..ru
        };
        assert_eq!(ru.span(0), "0\u{a0}мин");
        assert_eq!(ru.span(45), "45\u{a0}мин");
        assert_eq!(ru.span(120), "2\u{a0}ч");
        assert_eq!(ru.span(135), "2\u{a0}ч 15\u{a0}мин");
        assert_eq!(
            ru.span(3 * 1440 + 4 * 60 + 59),
            "3\u{a0}дн 4\u{a0}ч",
            "minutes do not matter over a day"
        );
        assert_eq!(ru.span(2 * 1440), "2\u{a0}дн");
        assert_eq!(en.span(135), "2\u{a0}h 15\u{a0}min");
        assert_eq!(en.span(-5), "0\u{a0}min", "never negative");
    }

    #[test]
    fn catalogs_refuse_malformed_lines() {
        assert!(
            parse_catalog("a = b\nbroken\n")
                .unwrap_err()
                .contains("line 2")
        );
        assert!(
            parse_catalog("a = b\na = c\n")
                .unwrap_err()
                .contains("twice")
        );
    }
}

/// Property tests of the `Accept-Language` reading: any header, however malformed, gives a
/// supported language (or none, and the pages fall back to Russian) and never panics.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Header-like lists of tags with weights, well- and ill-formed, and arbitrary text.
    fn header() -> impl Strategy<Value = String> {
        let tag = prop_oneof![
            Just("ru".to_owned()),
            Just("en".to_owned()),
            "(RU|EN|ru|en)-[A-Za-z]{2}",
            "[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})?",
            Just("*".to_owned()),
        ];
        let weight = prop_oneof![
            Just(String::new()),
            "; ?q=(0|1|0\\.[0-9]{1,4}|1\\.0{1,3})",
            ";q=[-+0-9.eEaNinf]{0,8}",
            ";[ a-z=0-9.;]{0,10}",
        ];
        prop_oneof![
            proptest::collection::vec((tag, weight), 0..8).prop_map(|parts| {
                parts
                    .into_iter()
                    .map(|(t, w)| format!("{t}{w}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
            "[a-zA-Z0-9,;=.* -]{0,60}",
            any::<String>(),
        ]
    }

    proptest! {
        #[test]
        fn any_header_gives_a_supported_language(h in header()) {
            let got = Lang::from_accept_language(&h);
            if let Some(lang) = got {
                // It was asked for: some entry's primary tag names it.
                let asked = h.split(',').any(|part| {
                    let tag = part.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
                    tag.split('-').next() == Some(lang.code())
                });
                prop_assert!(asked, "{:?} -> {:?}", h, lang);
            }
            // A supported language listed first without a weight always wins.
            for lang in [Lang::Ru, Lang::En] {
                let first = format!("{},{h}", lang.code());
                prop_assert_eq!(Lang::from_accept_language(&first), Some(lang));
            }
            // Through the pages' own reading of the request, always Russian or English.
            if let Ok(value) = axum::http::HeaderValue::from_str(&h) {
                let mut headers = axum::http::HeaderMap::new();
                headers.insert(axum::http::header::ACCEPT_LANGUAGE, value);
                let lang = crate::web::session::lang_of(&headers);
                prop_assert_eq!(lang, got.unwrap_or(Lang::Ru));
                prop_assert!(matches!(lang, Lang::Ru | Lang::En));
            }
        }

        #[test]
        fn headers_without_russian_or_english_give_none(
            tags in proptest::collection::vec("(de|fr|zh|ja|ruu|eng|r|e)(-[A-Z]{2})?(;q=0\\.[0-9])?", 0..6)
        ) {
            prop_assert_eq!(Lang::from_accept_language(&tags.join(", ")), None);
        }
    }
}
