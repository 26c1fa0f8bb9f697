//! How lenient parsers read text: what a router or a query parser of another stack could take
//! a string for. Java's `equalsIgnoreCase` and .NET's `OrdinalIgnoreCase` fold `ı` and `İ`
//! onto `i`; routers that normalise Unicode read `／` as `/` and fullwidth letters as ASCII.
//! The authorize and token paths (the HTTP side's `paths`) and the parameter names the proxy
//! judges, in the authorization request ([`super::authorize`]), a flow return's `Location`
//! ([`super::flow_return`]) and a token body ([`super::token`]), are compared in this reading
//! ([`loose`], [`param_key`]), so that no spelling another stack would accept slips past a
//! check made in ASCII.

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

/// The longest name [`param_key`] reads: longer than every name the proxy judges.
const KEY_MAX: usize = 24;

/// A parameter name as the most lenient framework binds it: see [`param_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ParamKey {
    bytes: [u8; KEY_MAX],
    len: usize,
}

impl ParamKey {
    fn is(&self, name: &str) -> bool {
        &self.bytes[..self.len] == name.as_bytes()
    }

    #[cfg(test)]
    fn as_str(&self) -> &str {
        // Only ASCII is ever written into the buffer.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

/// The name a lenient framework binds a (percent-decoded) parameter name to, in lower case; `None`
/// when that is longer than any name the proxy judges, or not ASCII. Folded together:
/// - letter case (ASP.NET Core, Rails' `HashWithIndifferentAccess` in part, many hand-written
///   binders), and every Unicode spelling [`loose`] reads as ASCII;
/// - white space and control characters around the name (binders that trim, C parsers that
///   stop at NUL);
/// - PHP's mangling: `.`, ` ` and an unclosed `[` become `_`;
/// - a `[...]` suffix (PHP, Rails, Node's `qs`: `redirect_uri[]` binds to `redirect_uri`).
///
/// Over-reading is safe (a name read as a judged one is judged, or refused as a repeat);
/// under-reading is what lets a second `redirect_uri` past the check.
fn param_key(name: &str) -> Option<ParamKey> {
    let visible;
    let name = if name.is_ascii() {
        name
    } else {
        visible = without_ignorables(name);
        &visible
    };
    let read = loose(name);
    let name = read.trim_start_matches(|c: char| c.is_whitespace() || c.is_control());
    // Read up to the first control character: PHP and C parsers stop at a NUL
    // (`redirect_uri%00x` is `redirect_uri` to `$_GET`), line-oriented ones at a line break.
    let name = name.split(char::is_control).next().unwrap_or(name);
    let mut name = name.trim_end_matches(char::is_whitespace);
    if name.ends_with(']')
        && let Some(open) = name.find('[')
    {
        name = &name[..open];
    }
    if name.len() > KEY_MAX || !name.is_ascii() {
        return None;
    }
    let mut key = ParamKey {
        bytes: [0; KEY_MAX],
        len: name.len(),
    };
    for (slot, b) in key.bytes.iter_mut().zip(name.bytes()) {
        *slot = match b {
            b'.' | b' ' | b'[' => b'_',
            b => b.to_ascii_lowercase(),
        };
    }
    Some(key)
}

/// `text` without Unicode's default-ignorable code points (zero-width space and joiners, the
/// BOM, soft hyphen, variation selectors, bidi controls, tags): invisible, and dropped by
/// binders that trim or normalise, so `redirect\u{200B}_uri` names `redirect_uri` to them.
fn without_ignorables(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_default_ignorable) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.chars().filter(|c| !is_default_ignorable(*c)).collect())
}

/// Unicode's `Default_Ignorable_Code_Point` (DerivedCoreProperties.txt, Unicode 15.1).
fn is_default_ignorable(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x034F | 0x061C | 0x115F..=0x1160 | 0x17B4..=0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFF8 | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
        | 0xE0000..=0xE0FFF)
}

/// The first of `judged` (ASCII, lower case) that some lenient reader binds `name` to: by
/// [`param_key`], or, for a name with a `.` or a `[`, by the part before it (Node's `qs` nests
/// `code[x` under `code`, and with `allowDots`, as Koa's body parser runs it, `code.x` too,
/// where PHP reads `code_x`). Over-reading is safe; each reading is judged.
pub fn read_as<'j>(name: &str, judged: &[&'j str]) -> Option<&'j str> {
    // Only letters, digits, `_` and `-` (most names): nothing to trim, fold, mangle or cut, so
    // every reading is the name in lower case (on every inspected `Location`; the general
    // reading cost about 420 instructions for one such name, issue 31).
    if name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return judged
            .iter()
            .copied()
            .find(|j| name.eq_ignore_ascii_case(j));
    }
    read_as_lenient(name, judged)
}

/// [`read_as`] for any name.
fn read_as_lenient<'j>(name: &str, judged: &[&'j str]) -> Option<&'j str> {
    let find = |key: ParamKey| judged.iter().copied().find(|j| key.is(j));
    if let Some(found) = param_key(name).and_then(find) {
        return Some(found);
    }
    let cut = name.bytes().position(|b| b == b'.' || b == b'[')?;
    param_key(&name[..cut]).filter(|_| cut > 0).and_then(find)
}

/// Whether a lenient parser could read `name` as `wanted` (ASCII, lower case): see
/// [`read_as`].
pub fn reads_as(name: &str, wanted: &str) -> bool {
    read_as(name, &[wanted]).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The plain names' shortcut reads as the general reading does.
        #[test]
        fn a_plain_name_reads_as_the_lenient_reading_has_it(
            name in "[A-Za-z0-9_-]{0,30}|(?i:code|state|error|iss|redirect_uri|client_id|max_age|medmij-request-id)",
        ) {
            let judged = ["code", "state", "error", "iss", "redirect_uri", "client_id", "max_age", "medmij-request-id"];
            proptest::prop_assert_eq!(read_as(&name, &judged), read_as_lenient(&name, &judged));
        }
    }

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
        for name in ["codes", "cod", "c\u{f6}de", "state", "co_de", "xcode"] {
            assert!(!reads_as(name, "code"), "{name}");
        }
    }

    #[test]
    fn names_as_lenient_binders_read_them() {
        for name in [
            "redirect_uri",
            "REDIRECT_URI",
            "Redirect_Uri",
            "redirect_uri ",
            " redirect_uri",
            "redirect_uri\t",
            "redirect_uri\0",
            "redirect_uri\0x",
            "redirect_uri\0\0",
            "redirect_uri\nx",
            "\u{1}redirect_uri",
            "redirect\u{200b}_uri",
            "\u{feff}redirect_uri",
            "redirect_\u{ad}uri",
            "redirect.uri",
            "redirect uri",
            "redirect[uri",
            "redirect_uri[]",
            "redirect_uri[0]",
            "redirect_uri.x",
            "redirect_uri[a][b]",
            "redirect_uri[x",
            "REDIRECT_UR\u{130}",
            "redirect_ur\u{131}",
        ] {
            assert!(reads_as(name, "redirect_uri"), "{name:?}");
        }
        for name in [
            "redirect-uri",
            "redirecturi",
            "redirect_uri_x",
            "[redirect_uri]",
            "x\0redirect_uri",
        ] {
            assert!(!reads_as(name, "redirect_uri"), "{name:?}");
        }
        assert_eq!(param_key(&"a".repeat(25)), None);
        assert_eq!(
            param_key("MedMij_Geboortedatum").unwrap().as_str(),
            "medmij_geboortedatum"
        );
    }
}
