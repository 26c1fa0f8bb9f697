//! URI syntax the proxy reads in more than one place, written once: percent-encoding (RFC 3986
//! §2.1), dot segments (§5.2.4) and the parts of an authority (§3.2). Every reader of a path, a
//! query or a URI in the proxy goes through these, so that two checks can never disagree on
//! what an escape or a host is. Strict on purpose: `%` must be followed by exactly two hex
//! digits (`u8::from_str_radix` would also take `%+a`), and callers refuse what does not read.

/// The value of one hex digit.
pub fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte an escape stands for: `bytes` starts with `%` and two hex digits.
pub fn escape(bytes: &[u8]) -> Option<u8> {
    match bytes {
        [b'%', hi, lo, ..] => Some(hex(*hi)? << 4 | hex(*lo)?),
        _ => None,
    }
}

/// Every escape in `s` decoded (`+` stays `+`: that is the form decoder's rule, not the
/// URI's); `None` when a `%` does not start an escape.
pub fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(escape(&bytes[i..])?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Whether `s` holds only valid escapes where it holds a `%`.
pub fn escapes_are_valid(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    while let Some(at) = memchr::memchr(b'%', &bytes[i..]) {
        if escape(&bytes[i + at..]).is_none() {
            return false;
        }
        i += at + 3;
    }
    true
}

/// `..` and `.` segments resolved over segments already split at `/` (RFC 3986 §5.2.4 on an
/// absolute path): `..` drops the segment before it, never above the root. Empty segments are
/// kept: whether they count is the caller's rule. Returns the segments and whether the path
/// ends in a directory (its last segment was `.` or `..`).
pub fn resolve_dots<'a>(segments: impl Iterator<Item = &'a str>) -> (Vec<&'a str>, bool) {
    let mut out: Vec<&str> = Vec::new();
    let mut directory = false;
    for segment in segments {
        directory = matches!(segment, "." | "..");
        match segment {
            "." => {}
            ".." => {
                out.pop();
            }
            _ => out.push(segment),
        }
    }
    (out, directory)
}

/// An authority (`userinfo@host:port`) in its parts. A `:` inside an IP literal (`[::1]`) is
/// not a port separator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authority<'a> {
    pub userinfo: Option<&'a str>,
    pub host: &'a str,
    pub port: Option<&'a str>,
}

impl<'a> Authority<'a> {
    pub fn split(authority: &'a str) -> Self {
        // One pass from the end (issue 31: this runs twice on every flow; `str::rfind`
        // cost four times as much): the last `@` ends the userinfo; the last `:` after it is
        // the port's, unless a `]` follows it (an IP literal's own colons).
        let bytes = authority.as_bytes();
        let (mut at, mut colon, mut bracket) = (None, None, false);
        for (i, &b) in bytes.iter().enumerate().rev() {
            match b {
                b'@' => {
                    at = Some(i);
                    break;
                }
                b':' if colon.is_none() && !bracket => colon = Some(i),
                b']' if colon.is_none() => bracket = true,
                _ => {}
            }
        }
        let (userinfo, host_start) = match at {
            Some(i) => (Some(&authority[..i]), i + 1),
            None => (None, 0),
        };
        let (host, port) = match colon {
            Some(i) => (&authority[host_start..i], Some(&authority[i + 1..])),
            None => (&authority[host_start..], None),
        };
        Authority {
            userinfo,
            host,
            port,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_need_two_hex_digits() {
        assert_eq!(escape(b"%41"), Some(b'A'));
        assert_eq!(escape(b"%7e"), Some(b'~'));
        for bad in [&b"%+a"[..], b"%-1", b"% 1", b"%4", b"%", b"%g0", b"41"] {
            assert_eq!(escape(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn percent_plus_a_is_not_an_escape() {
        assert_eq!(percent_decode("/a%+a"), None);
        assert!(!escapes_are_valid("a%+ab"));
        assert!(escapes_are_valid("a%2Bb%7e"));
        assert_eq!(percent_decode("a%2Fb+c").unwrap(), b"a/b+c");
    }

    #[test]
    fn dots_resolve_without_climbing_above_the_root() {
        fn resolve(p: &str) -> (Vec<&str>, bool) {
            resolve_dots(p.split('/').skip(1))
        }
        assert_eq!(resolve("/a/./b/../c"), (vec!["a", "c"], false));
        assert_eq!(resolve("/../a"), (vec!["a"], false));
        assert_eq!(resolve("/a/b/.."), (vec!["a"], true));
        assert_eq!(resolve("/a//b"), (vec!["a", "", "b"], false));
    }

    /// The one-pass split reads every authority as `rfind` does (the reading it replaced),
    /// over every string of up to six of the bytes that matter.
    #[test]
    fn authorities_split_as_rfind_reads_them_exhaustively() {
        fn by_rfind(authority: &str) -> Authority<'_> {
            let (userinfo, host_port) = match authority.rfind('@') {
                Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
                None => (None, authority),
            };
            let (host, port) = match host_port.rfind(':') {
                Some(i) if !host_port[i..].contains(']') => {
                    (&host_port[..i], Some(&host_port[i + 1..]))
                }
                _ => (host_port, None),
            };
            Authority {
                userinfo,
                host,
                port,
            }
        }
        let alphabet = ['a', '@', ':', '[', ']'];
        let mut texts = vec![String::new()];
        for _ in 0..6 {
            let longer: Vec<String> = texts
                .iter()
                .filter(|t| t.len() == texts.last().map_or(0, String::len))
                .flat_map(|t| alphabet.iter().map(move |c| format!("{t}{c}")))
                .collect();
            texts.extend(longer);
        }
        assert_eq!(texts.len(), (0..=6).map(|n| 5usize.pow(n)).sum::<usize>());
        for text in &texts {
            assert_eq!(Authority::split(text), by_rfind(text), "{text:?}");
        }
    }

    #[test]
    fn authorities_split_into_userinfo_host_and_port() {
        assert_eq!(
            Authority::split("u:p@h.nl:8443"),
            Authority {
                userinfo: Some("u:p"),
                host: "h.nl",
                port: Some("8443")
            }
        );
        assert_eq!(Authority::split("[::1]").host, "[::1]");
        assert_eq!(Authority::split("[::1]:80").port, Some("80"));
        assert_eq!(Authority::split("a@b@c").host, "c");
    }

    proptest::proptest! {
        #[test]
        fn decoding_agrees_with_a_byte_by_byte_reading(s in "[a%0-9A-Fg+/]{0,12}") {
            let expected = {
                let b = s.as_bytes();
                let mut out = Vec::new();
                let mut i = 0;
                let mut ok = true;
                while i < b.len() {
                    if b[i] == b'%' {
                        if i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() {
                            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                            i += 3;
                        } else { ok = false; break; }
                    } else { out.push(b[i]); i += 1; }
                }
                ok.then_some(out)
            };
            proptest::prop_assert_eq!(percent_decode(&s), expected.clone());
            proptest::prop_assert_eq!(escapes_are_valid(&s), expected.is_some());
        }
    }
}
