//! How lenient parsers read text: what a router or a query parser of another stack could take
//! a string for. Java's `equalsIgnoreCase` and .NET's `OrdinalIgnoreCase` fold `ı` and `İ`
//! onto `i`; routers that normalise Unicode read `／` as `/` and fullwidth letters as ASCII.
//! Both the authorize path (the HTTP side's `paths`) and the names of a flow return's parameters
//! ([`super::flow_return`]) are compared in this reading, so that no spelling another stack
//! would accept slips past a check made in ASCII.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// `text` in NFKC, each non-ASCII character that Unicode's full case mapping (to lower or to
/// upper case) turns into ASCII replaced by that ASCII in lower case, combining marks of the
/// mapping dropped (`İ` → `i̇` → `i`). ASCII stays as it is; characters with no ASCII reading
/// stay too.
pub fn loose(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for c in text.nfkc() {
        match c.is_ascii() {
            true => out.push(c),
            false => match ascii_reading(c) {
                Some(reading) => out.push_str(&reading),
                None => out.push(c),
            },
        }
    }
    Cow::Owned(out)
}

fn ascii_reading(c: char) -> Option<String> {
    let lower: String = c.to_lowercase().collect();
    let upper: String = c.to_uppercase().collect();
    [lower, upper].into_iter().find_map(|mapped| {
        let reading: String = mapped.nfkc().filter(|m| !is_combining_mark(*m)).collect();
        (!reading.is_empty() && reading.is_ascii()).then(|| reading.to_ascii_lowercase())
    })
}

/// Whether a lenient parser could read `name` as `wanted` (ASCII, lower case): any letter
/// case, and any Unicode spelling [`loose`] reads as it.
pub fn reads_as(name: &str, wanted: &str) -> bool {
    loose(name).eq_ignore_ascii_case(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_is_left_alone() {
        assert_eq!(
            loose("/OAuth2/authorize"),
            Cow::Borrowed("/OAuth2/authorize")
        );
    }

    #[test]
    fn dotless_and_dotted_i_read_as_i() {
        assert_eq!(loose("author\u{131}ze"), "authorize");
        assert_eq!(loose("AUTHOR\u{130}ZE"), "AUTHORiZE");
    }

    #[test]
    fn compatibility_forms_read_as_ascii() {
        // Fullwidth solidus and letters, the Kelvin sign, the long s, a ligature.
        assert_eq!(
            loose("\u{ff0f}oauth2\u{ff0f}\u{ff41}uthorize"),
            "/oauth2/authorize"
        );
        assert_eq!(loose("\u{212a}"), "K");
        assert_eq!(loose("\u{17f}tate"), "state");
        assert_eq!(loose("\u{fb00}"), "ff");
    }

    #[test]
    fn other_letters_stay() {
        assert_eq!(loose("caf\u{e9}"), "caf\u{e9}");
        assert_eq!(loose("\u{3b1}"), "\u{3b1}");
    }

    #[test]
    fn names_in_any_case_and_spelling() {
        for name in ["code", "CODE", "Code", "\u{ff43}ode", "\u{1d41c}ode"] {
            assert!(reads_as(name, "code"), "{name}");
        }
        for name in ["codes", "cod", "c\u{f6}de", "state"] {
            assert!(!reads_as(name, "code"), "{name}");
        }
    }
}
