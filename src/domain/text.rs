//! Text that may cross the boundary.
//!
//! PostgreSQL cannot store NUL in text, and HTML cannot show the other control characters, so
//! text carrying them is refused where it enters (JSON bodies, forms, query strings) on both
//! backends alike, before any lookup or search sees it. Tabs and line breaks are ordinary text.

/// Whether `s` holds a character no stored or shown text may hold: NUL, the other C0 and C1
/// control characters and DEL, except tab, line feed and carriage return.
pub fn has_forbidden_control(s: &str) -> bool {
    s.chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

/// Where to go after signing in or switching the language: `next` when it is a path on this
/// site written in plain URL characters, else `/`.
///
/// Browsers drop tabs and line breaks inside URLs and read `\` as `/`, so `/\t/evil.example`
/// would become `//evil.example`, another site. Only a path that starts with one `/` and holds
/// nothing but letters, digits and the URL punctuation below (percent-escapes stay escaped) is
/// kept; it then also fits a `Location` header as it is.
pub fn local_path(next: Option<&str>) -> String {
    const PUNCTUATION: &str = "-._~/?#[]@!$&'()*+,;=%:";
    match next {
        Some(n)
            if n.len() <= 2000
                && n.starts_with('/')
                && !n.starts_with("//")
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || PUNCTUATION.contains(c)) =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_plain_local_paths_are_followed() {
        for good in [
            "/",
            "/requests/42",
            "/requests?status=open&q=%D0%B0",
            "/login/recovery?next=%2F",
        ] {
            assert_eq!(local_path(Some(good)), good);
        }
        for bad in [
            "",
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\nSet-Cookie: x=1",
            "/\u{7f}",
            "https://evil.example",
            "evil.example",
            "/\u{0}",
            "/ ",
            "/путь",
            "/%09\t",
        ] {
            assert_eq!(local_path(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(local_path(None), "/");
        assert_eq!(local_path(Some(&format!("/{}", "a".repeat(2000)))), "/");
    }

    proptest! {
        // Whatever comes in, what goes out is a same-site path a browser cannot turn into
        // another site, and a valid header value.
        #[test]
        fn the_result_is_always_a_safe_local_path(s in any::<String>()) {
            let out = local_path(Some(&s));
            prop_assert!(out.starts_with('/'));
            prop_assert!(!out.starts_with("//"));
            prop_assert!(out.bytes().all(|b| b.is_ascii_graphic() && b != b'\\'));
            prop_assert!(out == "/" || out == s);
        }

        #[test]
        fn plain_paths_are_kept(s in "/[a-z0-9/?=&%-]{0,60}") {
            prop_assume!(!s.starts_with("//"));
            prop_assert_eq!(local_path(Some(&s)), s);
        }
    }

    #[test]
    fn nul_and_other_controls_are_refused_line_breaks_are_not() {
        for bad in [
            "\0",
            "a\u{0}b",
            "\u{1}",
            "\u{1b}[31m",
            "\u{7f}",
            "\u{85}",
            "x\u{9f}",
        ] {
            assert!(has_forbidden_control(bad), "{bad:?}");
        }
        for good in ["", "Склад №1", "a\tb", "line\r\nline", "ёЁ €", "\u{a0}"] {
            assert!(!has_forbidden_control(good), "{good:?}");
        }
    }

    proptest! {
        #[test]
        fn agrees_with_a_char_by_char_reading(s in any::<String>()) {
            let expected = s.chars().any(|c| {
                let n = u32::from(c);
                (n < 0x20 && !matches!(n, 0x09 | 0x0a | 0x0d)) || (0x7f..=0x9f).contains(&n)
            });
            prop_assert_eq!(has_forbidden_control(&s), expected);
        }
    }
}
