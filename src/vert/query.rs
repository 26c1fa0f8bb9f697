//! Strict `application/x-www-form-urlencoded` (the query of an OAuth request or redirect).
//!
//! Lenient decoders (WHATWG, `form_urlencoded`) keep `%zz` literally and replace invalid UTF-8;
//! a legacy AS behind the proxy may decode the same bytes differently, so anything the proxy
//! decides on must decode exactly one way or be refused.

use std::borrow::Cow;

use super::syntax;

/// One `name=value` pair, as it appeared on the wire (still percent-encoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPair<'q> {
    pub name: &'q str,
    pub value: &'q str,
}

impl<'q> RawPair<'q> {
    /// The `name=value` text as it was sent.
    pub fn as_sent(&self, query: &'q str) -> &'q str {
        // Both halves are subslices of `query`, so the span between them is the original text.
        let start = self.name.as_ptr() as usize - query.as_ptr() as usize;
        let end = self.value.as_ptr() as usize - query.as_ptr() as usize + self.value.len();
        &query[start..end]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// `%` not followed by two hex digits.
    BadPercent,
    /// The decoded bytes are not UTF-8.
    InvalidUtf8,
    /// A raw byte that is not visible ASCII (control characters, space, `#`, non-ASCII).
    BadByte,
    /// A raw `;` in a value the proxy judges: a separator to `;`-splitting readers (Rack 2,
    /// old Python, Go before 1.17), which would cut the value there.
    Semicolon,
}

impl DecodeError {
    pub fn describe(self) -> &'static str {
        match self {
            DecodeError::BadPercent => "invalid percent-encoding",
            DecodeError::InvalidUtf8 => "percent-encoding is not UTF-8",
            DecodeError::BadByte => "character not allowed in a query",
            DecodeError::Semicolon => "a raw ; in a judged value",
        }
    }

    /// For the client's developer, in an `error_description` (ASCII): what to fix.
    pub fn describe_query(self) -> &'static str {
        match self {
            DecodeError::BadPercent => "malformed query: invalid percent-encoding",
            DecodeError::InvalidUtf8 => "malformed query: percent-encoded bytes that are not UTF-8",
            DecodeError::BadByte => {
                "malformed query: characters that must be percent-encoded (space, #, controls, non-ASCII)"
            }
            DecodeError::Semicolon => {
                "malformed query: a raw ; in a parameter's value (percent-encode it as %3B)"
            }
        }
    }
}

/// Splits a query into its pairs. Empty segments (`a=1&&b=2`) carry nothing and are skipped, as
/// every form decoder does; a segment without `=` is a name with an empty value.
pub fn pairs(query: &str) -> Pairs<'_> {
    Pairs { rest: query }
}

/// The iterator of [`pairs`]: one pass over the bytes (this runs on every upstream redirect).
pub struct Pairs<'q> {
    rest: &'q str,
}

impl<'q> Iterator for Pairs<'q> {
    type Item = RawPair<'q>;

    fn next(&mut self) -> Option<RawPair<'q>> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let bytes = self.rest.as_bytes();
            let end = memchr::memchr(b'&', bytes).unwrap_or(bytes.len());
            let segment = &self.rest[..end];
            self.rest = self.rest.get(end + 1..).unwrap_or("");
            if segment.is_empty() {
                continue;
            }
            // The `=` ends the name, which is short: a plain loop finds it in fewer
            // instructions than a vector search's set-up (issue 31).
            return Some(match segment.bytes().position(|b| b == b'=') {
                Some(i) => RawPair {
                    name: &segment[..i],
                    value: &segment[i + 1..],
                },
                // An empty subslice at the end keeps `as_sent` pointing inside the query.
                None => RawPair {
                    name: segment,
                    value: &segment[segment.len()..],
                },
            });
        }
    }
}

/// The names, decoded, a `;`-splitting reader (Rack 2, Python before CVE-2021-23336, Go before
/// 1.17, Perl's CGI.pm) finds inside one `&`-separated pair beyond the pair's own: `x=1;state=a`
/// and `a=1&amp;state=a` carry a `state` to them. Names that do not decode are left out (the
/// pair itself is refused for them).
pub fn names_behind_semicolons<'q>(
    pair: RawPair<'q>,
    query: &'q str,
) -> impl Iterator<Item = Cow<'q, str>> + 'q {
    let as_sent = pair.as_sent(query);
    let pieces = memchr::memchr(b';', as_sent.as_bytes()).map(|_| as_sent.split(';').enumerate());
    pieces.into_iter().flatten().filter_map(|(i, piece)| {
        let name = piece.split('=').next().unwrap_or(piece);
        // The first piece's name is the pair's own unless the `;` comes before its `=`.
        if i == 0 && name.len() < piece.len() {
            return None;
        }
        decode(name).ok()
    })
}

/// Decodes one name or value: `+` is a space, `%XX` a byte, the result must be UTF-8.
pub fn decode(raw: &str) -> Result<Cow<'_, str>, DecodeError> {
    let bytes = raw.as_bytes();
    let (bad, escaped) = classify(bytes);
    if bad {
        return Err(DecodeError::BadByte);
    }
    if !escaped {
        return Ok(Cow::Borrowed(raw));
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some((&b, tail)) = rest.split_first() {
        match b {
            b'+' => {
                out.push(b' ');
                rest = tail;
            }
            b'%' => {
                out.push(syntax::escape(rest).ok_or(DecodeError::BadPercent)?);
                rest = &rest[3..];
            }
            _ => {
                // The run up to the next escape, in one copy.
                let run = tail
                    .iter()
                    .position(|&c| c == b'%' || c == b'+')
                    .map_or(rest.len(), |n| n + 1);
                out.extend_from_slice(&rest[..run]);
                rest = &rest[run..];
            }
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| DecodeError::InvalidUtf8)
}

/// One pass over a name or value, eight bytes at a time (it runs over every name and value of
/// every authorization request and flow return, the sealed state included): is there a byte
/// that may not appear raw (`bad`: anything but visible ASCII, and `#`, which would end the
/// query; `&` and `=` are the splitter's), and one that needs decoding (`escaped`: `%`, `+`)?
fn classify(bytes: &[u8]) -> (bool, bool) {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // Exact for "any byte" (Hacker's Delight 6-1; Anderson's bit hacks): a borrow or carry
    // can only spread from a byte that already answers yes.
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH != 0;
    let has_below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH != 0;
    let has_above_7e = |x: u64| (x.wrapping_add(ONES) | x) & HIGH != 0;
    let splat = |b: u8| ONES * u64::from(b);
    let (mut bad, mut escaped) = (false, false);
    let mut check = |x: u64| {
        bad |= has_below(x, 0x21) | has_above_7e(x) | has_zero(x ^ splat(b'#'));
        escaped |= has_zero(x ^ splat(b'%')) | has_zero(x ^ splat(b'+'));
    };
    let word = |eight: &[u8]| u64::from_le_bytes(eight.try_into().expect("eight bytes"));
    if bytes.len() >= 8 {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            check(word(chunk));
        }
        if !chunks.remainder().is_empty() {
            // The last eight bytes, overlapping the last chunk: any answer is per byte, so
            // bytes seen twice change nothing (no padded copy, issue 31).
            check(word(&bytes[bytes.len() - 8..]));
        }
    } else {
        // Fewer than eight: the word padded with a byte that is neither bad nor escaped.
        let mut x = splat(b'a');
        for (k, &b) in bytes.iter().enumerate() {
            x = x & !(0xff << (8 * k)) | u64::from(b) << (8 * k);
        }
        check(x);
    }
    (bad, escaped)
}

/// Percent-encodes a value for a query: only unreserved characters stay as they are, so the
/// result reads the same to every decoder (no `+`, no reserved characters).
pub fn encode(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        }
    }
}

/// Builds a URI by appending parameters to one that may already have a query (a
/// `redirect_uri` may).
pub struct UriBuilder {
    out: String,
    sep: Option<char>,
}

impl UriBuilder {
    pub fn new(uri: &str) -> Self {
        let sep = if uri.ends_with('?') || uri.ends_with('&') {
            None
        } else if uri.contains('?') {
            Some('&')
        } else {
            Some('?')
        };
        let mut out = String::with_capacity(uri.len() + 96);
        out.push_str(uri);
        UriBuilder { out, sep }
    }

    fn name(&mut self, name: &str) {
        if let Some(sep) = self.sep {
            self.out.push(sep);
        }
        self.sep = Some('&');
        self.out.push_str(name);
        self.out.push('=');
    }

    /// A parameter from plain text, percent-encoded here.
    pub fn text(mut self, name: &str, value: &str) -> Self {
        self.name(name);
        encode(value, &mut self.out);
        self
    }

    /// A parameter already in wire form (validated by [`decode`]), kept byte for byte: the
    /// client's own `state` goes back exactly as the client sent it.
    pub fn encoded(mut self, name: &str, raw: &str) -> Self {
        self.name(name);
        self.out.push_str(raw);
        self
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn classify_agrees_with_the_byte_by_byte_rule(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            let bad = bytes.iter().any(|&b| !(0x21..=0x7e).contains(&b) || b == b'#');
            let escaped = bytes.iter().any(|&b| b == b'%' || b == b'+');
            proptest::prop_assert_eq!(classify(&bytes), (bad, escaped));
        }

        /// Runs copied whole decode as the byte-by-byte loop did.
        #[test]
        fn decode_agrees_with_the_byte_by_byte_decoder(text in "[a-c%+2FAfz#é ]{0,40}") {
            let reference = || -> Result<String, DecodeError> {
                let bytes = text.as_bytes();
                if bytes.iter().any(|&b| !(0x21..=0x7e).contains(&b) || b == b'#') {
                    return Err(DecodeError::BadByte);
                }
                let (mut out, mut i) = (Vec::new(), 0);
                while i < bytes.len() {
                    match bytes[i] {
                        b'+' => out.push(b' '),
                        b'%' => {
                            out.push(syntax::escape(&bytes[i..]).ok_or(DecodeError::BadPercent)?);
                            i += 2;
                        }
                        b => out.push(b),
                    }
                    i += 1;
                }
                String::from_utf8(out).map_err(|_| DecodeError::InvalidUtf8)
            };
            proptest::prop_assert_eq!(decode(&text).map(Cow::into_owned), reference());
        }
    }

    #[test]
    fn classify_sees_each_kind_of_byte_at_every_position() {
        for at in 0..20 {
            for (b, expected) in [
                (0x00, (true, false)),
                (0x20, (true, false)),
                (0x21, (false, false)),
                (b'#', (true, false)),
                (b'%', (false, true)),
                (b'+', (false, true)),
                (0x7e, (false, false)),
                (0x7f, (true, false)),
                (0x80, (true, false)),
                (0xff, (true, false)),
            ] {
                let mut bytes = vec![b'a'; 20];
                bytes[at] = b;
                assert_eq!(classify(&bytes), expected, "byte {b:#x} at {at}");
            }
        }
    }

    #[test]
    fn decodes_plus_and_percent() {
        assert_eq!(decode("a+b%20c%2F").unwrap(), "a b c/");
        assert_eq!(decode("%C3%A9").unwrap(), "é");
        assert!(matches!(decode("plain").unwrap(), Cow::Borrowed("plain")));
    }

    #[test]
    fn rejects_bad_percent_encoding() {
        for bad in ["%", "%2", "%zz", "a%g0", "%%41"] {
            assert_eq!(decode(bad), Err(DecodeError::BadPercent), "{bad}");
        }
    }

    #[test]
    fn rejects_invalid_utf8() {
        assert_eq!(decode("%FF"), Err(DecodeError::InvalidUtf8));
        assert_eq!(decode("%C3"), Err(DecodeError::InvalidUtf8));
    }

    #[test]
    fn rejects_raw_bytes_outside_visible_ascii() {
        for bad in ["a b", "a\tb", "é", "a#b", "\u{7f}"] {
            assert_eq!(decode(bad), Err(DecodeError::BadByte), "{bad:?}");
        }
    }

    #[test]
    fn splits_pairs_and_keeps_raw_text() {
        let q = "a=1&&b&c=%41=x";
        let got: Vec<_> = pairs(q).map(|p| (p.name, p.value, p.as_sent(q))).collect();
        assert_eq!(
            got,
            vec![("a", "1", "a=1"), ("b", "", "b"), ("c", "%41=x", "c=%41=x")]
        );
    }

    #[test]
    fn encode_keeps_only_unreserved() {
        let mut s = String::new();
        encode("a b+c/é~", &mut s);
        assert_eq!(s, "a%20b%2Bc%2F%C3%A9~");
    }

    #[test]
    fn uri_builder_respects_existing_query() {
        let uri = UriBuilder::new("https://h/cb")
            .text("error", "access_denied")
            .encoded("state", "x+y%2F")
            .finish();
        assert_eq!(uri, "https://h/cb?error=access_denied&state=x+y%2F");
        let uri = UriBuilder::new("https://h/cb?a=1")
            .text("e", "x y")
            .finish();
        assert_eq!(uri, "https://h/cb?a=1&e=x%20y");
        let uri = UriBuilder::new("https://h/cb?").text("e", "1").finish();
        assert_eq!(uri, "https://h/cb?e=1");
    }
}
