//! The sealed state: a [`Flow`] encrypted and authenticated into the `state` the upstream AS sees
//! (SPEC §3.1). Nothing is kept server-side, so every proxy instance sharing the key ring serves
//! every flow, restarts lose nothing, and parallel flows never collide.
//!
//! Wire format (then base64url without padding, so only `A-Za-z0-9-_`: characters every AS
//! passes back unchanged, SPEC §3.4):
//!
//! ```text
//! version 2:  2 | key id (1) | nonce (12) | AES-256-GCM-SIV(plaintext) | tag (16)
//! plaintext: issued_at u32 | correlation id (16) | kind u8 (low nibble: 0 none,
//!            1 onbehalfof, 2 onbehalfofchild; high nibble: fresh login, 1 prompt=login,
//!            3 prompt=login and max_age=0, only beside a kind ≠ 0) | birth date u32 JJJJMMDD
//!            (only when kind ≠ 0) | redirect_uri length u16 | redirect_uri | state (the rest)
//! ```
//!
//! The fresh-login nibble (issue 29) was zero in every state sealed before it, so those open
//! as they did: a flow in flight across the upgrade goes on, with nothing added. A version
//! before it refuses a state with the nibble set (unreadable, fail closed) rather than misread it.
//!
//! Version and key id are authenticated as associated data. Nonces are random, from the OS.
//! AES-256-GCM-SIV (RFC 8452) because it is cheap per message on AES-NI and CLMUL (a fifth of
//! XChaCha20-Poly1305's instructions for a ~150-byte state) and safe with random 96-bit nonces:
//! a repeat becomes likely only after about 2^48 seals under one key (the birthday bound), and
//! GCM-SIV is nonce-misuse resistant, so even a repeat reveals only whether two sealed flows
//! were identical, never the authentication key or other plaintexts
//! (as a repeated AES-GCM nonce would). Version 1 (XChaCha20-Poly1305, 192-bit nonce) is no
//! longer opened: no release sealed it (issue 28), so no flow in flight can carry one; such a
//! state is [`Opened::Foreign`], as any other unknown version.

use aws_lc_rs::aead::{AES_256_GCM_SIV, Aad, LessSafeKey, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD_INDIFFERENT, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::vert::flow::FlowId;
use crate::vert::flow_return::Opened;
use crate::vert::{Birthdate, Flow, FreshLogin, Kind, Requested};

/// The state's base64url (no padding), both ways: SIMD where the CPU has it (AVX2, SSE4.1,
/// NEON), about a third of the `base64` crate's instructions for a sealed state (issue 31).
const STATE_BASE64: base64_simd::Base64 = base64_simd::URL_SAFE_NO_PAD;

/// What seals.
const VERSION: u8 = 2;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = 2 + NONCE_LEN;
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;

struct Key {
    id: u8,
    /// AES-256-GCM-SIV from aws-lc (its x86-64 assembly with AES-NI and CLMUL: three quarters of
    /// RustCrypto's `aes-gcm-siv` instructions for a state, with its per-message key derivation).
    cipher: LessSafeKey,
    /// For the keyed hashes of released codes ([`KeyRing::code_digests`]): derived, so that
    /// the sealing key itself keys nothing else.
    record_key: [u8; 32],
}

impl Key {
    fn new(bytes: &[u8; KEY_LEN]) -> Self {
        Key {
            id: key_id(bytes),
            cipher: LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM_SIV, bytes).expect("an AES-256 key is 32 bytes"),
            ),
            record_key: Sha256::new()
                .chain_update(b"medmij-vert-proxy code record key\0")
                .chain_update(bytes)
                .finalize()
                .into(),
        }
    }
}

/// The key id: a byte of a hash of the key, so that it stays the same whatever line the key is
/// on. Two keys may share an id; opening then tries both.
fn key_id(key: &[u8; KEY_LEN]) -> u8 {
    let digest = Sha256::new()
        .chain_update(b"medmij-vert-proxy state key id\0")
        .chain_update(key)
        .finalize();
    digest[0]
}

/// The keys that seal and open states: the first seals, all open (rotation without breaking
/// flows in flight).
pub struct KeyRing {
    keys: Vec<Key>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys themselves.
        f.debug_struct("KeyRing")
            .field("ids", &self.keys.iter().map(|k| k.id).collect::<Vec<_>>())
            .finish()
    }
}

/// Why a key file was refused, naming the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    #[error("no key in the file")]
    Empty,
    #[error("line {0}: not base64")]
    NotBase64(usize),
    #[error("line {line}: a key is {KEY_LEN} bytes, this one {len}")]
    Length { line: usize, len: usize },
    #[error("line {0}: the same key is listed twice")]
    Repeated(usize),
}

impl KeyRing {
    /// A ring with one fresh random key: flows do not survive a restart and cannot be shared
    /// between instances.
    pub fn random() -> Self {
        KeyRing {
            keys: vec![Key::new(&random_key())],
        }
    }

    /// Reads a key file: one key per line, base64 (standard or URL-safe, padding optional) of 32
    /// bytes; blank lines and lines starting with `#` are ignored. The first key seals.
    pub fn from_key_file(text: &str) -> Result<Self, KeyFileError> {
        let mut keys: Vec<Key> = Vec::new();
        let mut seen: Vec<[u8; KEY_LEN]> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bytes = decode_key(line, n + 1)?;
            if seen.contains(&bytes) {
                return Err(KeyFileError::Repeated(n + 1));
            }
            keys.push(Key::new(&bytes));
            seen.push(bytes);
        }
        if keys.is_empty() {
            return Err(KeyFileError::Empty);
        }
        Ok(KeyRing { keys })
    }

    /// Seals a flow into a state.
    pub fn seal(&self, flow: &Flow) -> String {
        self.seal_with_id(flow).0
    }

    /// Seals a flow into a state, with the id the state opens with ([`KeyRing::open`]).
    pub fn seal_with_id(&self, flow: &Flow) -> (String, FlowId) {
        let key = &self.keys[0];
        let mut token = Vec::with_capacity(HEADER_LEN + plaintext_len(flow) + TAG_LEN);
        token.extend_from_slice(&[VERSION, key.id]);
        token.resize(HEADER_LEN, 0);
        fill_random(&mut token[2..HEADER_LEN]);
        encode_flow(flow, &mut token);
        // Sealed in place: no second buffer for the ciphertext.
        let (header, plaintext) = token.split_at_mut(HEADER_LEN);
        let nonce = header[2..].try_into().expect("split at the nonce length");
        let tag = key
            .cipher
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from([header[0], header[1]]),
                plaintext,
            )
            .expect("AES-GCM-SIV encrypts any message shorter than 64 GiB");
        token.extend_from_slice(tag.as_ref());
        let id = flow_id(nonce);
        (STATE_BASE64.encode_to_string(token), id)
    }

    /// Opens a state. Anything not in this format is [`Opened::Foreign`]; this format that does
    /// not authenticate under any key, or decrypts to nonsense, is [`Opened::Invalid`].
    /// A flow opens with its id: the seal's random 96-bit nonce (zero-padded to a store key, its
    /// last byte the version), the same for every copy of one sealed state and different for
    /// every seal (one code per flow).
    pub fn open(&self, state: &str) -> Opened {
        if !could_be_sealed(state) {
            return Opened::Foreign;
        }
        let Ok(mut token) = STATE_BASE64.decode_to_vec(state) else {
            return Opened::Foreign;
        };
        if token.first() != Some(&VERSION) || token.len() < HEADER_LEN + TAG_LEN {
            return Opened::Foreign;
        }
        // The nonce itself: random, authenticated with the flow, and public (it is in the
        // state), so it needs no hashing (a SHA-256 here cost 3,400 instructions a request).
        // The id ends in the version byte (as it did beside version 1, whose ids ended in a
        // zero), so that the records of a later version's flows never meet this one's.
        let nonce = token[2..HEADER_LEN].try_into().expect("the nonce's length");
        self.open_token(&mut token, flow_id(nonce))
    }

    /// The keyed hashes of a released code, one per key, the sealing key's first: a code is
    /// recorded under the first and looked up under each, so that a key rotation does not
    /// strand the codes released just before it. HMAC-SHA-256, so the store never holds
    /// anything from which a usable code follows.
    pub fn code_digests<'a>(&'a self, code: &'a str) -> impl Iterator<Item = [u8; 32]> + 'a {
        self.keys.iter().map(move |key| {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key.record_key)
                .expect("HMAC takes any key length");
            mac.update(code.as_bytes());
            mac.finalize().into_bytes().into()
        })
    }

    /// Opens a version 2 token in place.
    fn open_token(&self, token: &mut [u8], id: FlowId) -> Opened {
        let (header, sealed) = token.split_at_mut(HEADER_LEN);
        let nonce: [u8; NONCE_LEN] = header[2..].try_into().expect("split at the nonce length");
        let aad = [header[0], header[1]];
        let mut candidates = self.keys.iter().filter(|k| k.id == aad[1]);
        let Some(first) = candidates.next() else {
            return Opened::Invalid("state sealed with an unknown key");
        };
        let mut others = candidates.peekable();
        // A failed attempt leaves the buffer undefined: when another key shares the id (one
        // pair of keys in 256), it opens a copy of the sealed bytes.
        let copy = others.peek().map(|_| sealed.to_vec());
        let opens = |key: &Key, buf: &mut [u8]| {
            key.cipher
                .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
                .is_ok()
        };
        let plaintext_len = sealed.len() - TAG_LEN;
        let mut opened = opens(first, sealed);
        if let Some(copy) = copy {
            for key in others {
                if opened {
                    break;
                }
                sealed.copy_from_slice(&copy);
                opened = opens(key, sealed);
            }
        }
        if opened {
            read_flow(&sealed[..plaintext_len], id)
        } else {
            Opened::Invalid("state does not authenticate")
        }
    }
}

/// Whether `state` is long enough to be a sealed state: a shorter one is a client's own, not
/// worth decoding, nor anything loaded to open it (every authorization request asks whether
/// its state is one of ours, SPEC §3.6).
pub fn could_be_sealed(state: &str) -> bool {
    state.len() >= (HEADER_LEN + TAG_LEN) * 4 / 3
}

/// A flow's id: its seal's nonce, zero-padded, ending in the version byte ([`KeyRing::open`]).
fn flow_id(nonce: [u8; NONCE_LEN]) -> FlowId {
    let mut id = [0u8; 32];
    id[..NONCE_LEN].copy_from_slice(&nonce);
    id[31] = VERSION;
    id
}

fn read_flow(plaintext: &[u8], id: FlowId) -> Opened {
    match decode_flow(plaintext) {
        Some(flow) => Opened::Flow(flow, id),
        // Authentic but unreadable: only a bug (or a future version) gets here.
        None => Opened::Invalid("sealed flow unreadable"),
    }
}

/// A new key, as a line for a key file.
pub fn generate_key_line() -> String {
    URL_SAFE_NO_PAD.encode(random_key())
}

fn random_key() -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    fill_random(&mut key);
    key
}

fn fill_random(buf: &mut [u8]) {
    // rand's thread generator: ChaCha12, a CSPRNG seeded from the OS and reseeded from it every
    // 64 KiB of output, so a nonce costs no system call (`getrandom` was a third of the rule
    // path's system calls, issue 31). Without the OS's randomness it panics: no safe nonce.
    rand::Rng::fill_bytes(&mut rand::rng(), buf);
}

fn decode_key(line: &str, number: usize) -> Result<[u8; KEY_LEN], KeyFileError> {
    let normalised: String = line
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let bytes = STANDARD_NO_PAD_INDIFFERENT
        .decode(normalised)
        .map_err(|_| KeyFileError::NotBase64(number))?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| KeyFileError::Length {
        line: number,
        len: bytes.len(),
    })
}

/// The length of [`encode_flow`]'s output.
fn plaintext_len(flow: &Flow) -> usize {
    let requested = if flow.requested.is_some() { 4 } else { 0 };
    4 + 16
        + 1
        + requested
        + 2
        + flow.redirect_uri.len().min(usize::from(u16::MAX))
        + flow.state.len()
}

/// Appends the flow's plaintext to `out`.
fn encode_flow(flow: &Flow, out: &mut Vec<u8>) {
    // Seconds fit u32 until 2106.
    out.extend_from_slice(
        &u32::try_from(flow.issued_at)
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(flow.correlation_id.as_bytes());
    match flow.requested {
        None => out.push(0),
        Some(r) => {
            let kind = match r.kind {
                Kind::OnBehalfOf => 1,
                Kind::OnBehalfOfChild => 2,
            };
            out.push(kind | fresh_login_bits(flow.fresh_login) << 4);
            out.extend_from_slice(&r.birthdate.to_number().to_be_bytes());
        }
    }
    // The authorization request's URI is far below 64 KiB (listen.max_uri_length).
    let len = u16::try_from(flow.redirect_uri.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&flow.redirect_uri.as_bytes()[..usize::from(len)]);
    out.extend_from_slice(flow.state.as_bytes());
}

fn decode_flow(bytes: &[u8]) -> Option<Flow> {
    let mut r = Reader(bytes);
    let issued_at = u64::from(u32::from_be_bytes(r.take()?));
    let correlation_id = Uuid::from_bytes(r.take()?);
    let byte = r.take::<1>()?[0];
    let kind = match byte & 0x0f {
        0 => None,
        1 => Some(Kind::OnBehalfOf),
        2 => Some(Kind::OnBehalfOfChild),
        _ => return None,
    };
    let fresh_login = match (byte >> 4, kind) {
        (0, _) => FreshLogin::OFF,
        (1, Some(_)) => FreshLogin {
            prompt_login: true,
            max_age_zero: false,
        },
        (3, Some(_)) => FreshLogin {
            prompt_login: true,
            max_age_zero: true,
        },
        _ => return None,
    };
    let requested = match kind {
        None => None,
        Some(kind) => Some(Requested {
            kind,
            birthdate: Birthdate::from_number(u32::from_be_bytes(r.take()?))?,
        }),
    };
    let len = usize::from(u16::from_be_bytes(r.take()?));
    let redirect_uri = std::str::from_utf8(r.take_slice(len)?).ok()?.to_owned();
    let state = std::str::from_utf8(r.0).ok()?.to_owned();
    Some(Flow {
        state,
        redirect_uri,
        requested,
        issued_at,
        correlation_id,
        fresh_login,
    })
}

/// The fresh-login nibble of the kind byte: 0 nothing added, 1 `prompt=login`, 3 also
/// `max_age=0` (which the proxy adds only beside `prompt=login`).
fn fresh_login_bits(fresh: FreshLogin) -> u8 {
    match fresh {
        FreshLogin {
            prompt_login: false,
            ..
        } => 0,
        FreshLogin {
            max_age_zero: false,
            ..
        } => 1,
        _ => 3,
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take_slice(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take_slice(N)
            .map(|s| s.try_into().expect("length checked"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The id a state opens with, if it opens.
    fn id_of(ring: &KeyRing, state: &str) -> Option<FlowId> {
        match ring.open(state) {
            Opened::Flow(_, id) => Some(id),
            _ => None,
        }
    }

    #[test]
    fn a_flow_id_is_the_same_for_a_state_and_new_for_each_seal() {
        let ring = KeyRing::random();
        let flow = flow("st", None);
        let (one, two) = (ring.seal(&flow), ring.seal(&flow));
        let id = |state: &str| id_of(&ring, state).unwrap();
        assert_eq!(id(&one), id(&one));
        assert_ne!(id(&one), id(&two));
        assert_eq!(id_of(&KeyRing::random(), &one), None);
        // The id a seal gives is the one its state opens with.
        let (state, sealed_id) = ring.seal_with_id(&flow);
        assert_eq!(id(&state), sealed_id);
    }

    #[test]
    fn code_digests_are_keyed_and_one_per_key() {
        let (a, b) = (generate_key_line(), generate_key_line());
        let ring = KeyRing::from_key_file(&format!("{a}\n{b}")).unwrap();
        let rotated = KeyRing::from_key_file(&format!("{b}\n{a}")).unwrap();
        let digests: Vec<_> = ring.code_digests("C0DE").collect();
        assert_eq!(digests.len(), 2);
        assert_ne!(digests[0], digests[1]);
        assert_ne!(digests[0], ring.code_digests("C0DF").next().unwrap());
        // After a rotation the old key's digest is still among them.
        assert!(rotated.code_digests("C0DE").any(|d| d == digests[0]));
        assert_ne!(rotated.code_digests("C0DE").next(), Some(digests[0]));
    }
    use proptest::prelude::*;

    /// The length of the sealed state for a flow: the formula of docs/security.md.
    fn sealed_len(redirect_uri_len: usize, state_len: usize, representation: bool) -> usize {
        let plaintext =
            4 + 16 + 1 + if representation { 4 } else { 0 } + 2 + redirect_uri_len + state_len;
        let bytes = HEADER_LEN + plaintext + TAG_LEN;
        (bytes * 4).div_ceil(3)
    }

    #[test]
    fn the_documented_length_formula_is_the_sealed_length() {
        assert_eq!(sealed_len(31, 32, false), 155);
        assert_eq!(sealed_len(31, 32, true), 160);
        let ring = KeyRing::random();
        let f = flow(&"s".repeat(32), on_behalf());
        assert_eq!(f.redirect_uri.len(), 25);
        assert_eq!(ring.seal(&f).len(), sealed_len(25, 32, true));
    }

    #[test]
    fn a_state_sealed_by_rustcrypto_aes_gcm_siv_opens() {
        // Sealed by the build before aws-lc (RustCrypto's aes-gcm-siv 0.12): key 0x42 x 32
        // (id 7), nonce 0x09 x 12. The format did not change, so a rolling upgrade loses no
        // flow in flight.
        let ring = KeyRing::from_key_file(&URL_SAFE_NO_PAD.encode([0x42u8; 32])).unwrap();
        let sealed = "AgcJCQkJCQkJCQkJCQnsEuRUvyS1kJT4BrenSo2IkK9_V_Aw7KmLjBPFtEiwJx115ZF-JzMZP2wfNSR1JTsB27Kgx4sMNUnME7ip7g0SsXLd";
        let Opened::Flow(opened, id) = ring.open(sealed) else {
            panic!("a state sealed before opens")
        };
        assert_eq!(opened, flow("abc", None));
        assert_eq!(id[..NONCE_LEN], [9u8; NONCE_LEN]);
        assert_eq!(id[31], VERSION);
    }

    #[test]
    fn a_version_1_state_is_foreign() {
        // Version 1 (XChaCha20-Poly1305, 192-bit nonce) was never released (issue 28): its
        // shape, authentic or not, is not one of ours.
        let ring = KeyRing::random();
        let mut bytes = URL_SAFE_NO_PAD
            .decode(ring.seal(&flow("abc", on_behalf())))
            .unwrap();
        bytes[0] = 1;
        bytes.extend_from_slice(&[0u8; 12]);
        assert_eq!(ring.open(&URL_SAFE_NO_PAD.encode(&bytes)), Opened::Foreign);
    }

    #[test]
    fn keys_sharing_an_id_are_both_tried() {
        // Two keys whose one-byte ids collide (1 in 256 for a pair): the first to fail
        // authentication must leave the sealed bytes intact for the second.
        let first = generate_key_line();
        let first_id = KeyRing::from_key_file(&first).unwrap().keys[0].id;
        let second = std::iter::repeat_with(generate_key_line)
            .find(|k| KeyRing::from_key_file(k).unwrap().keys[0].id == first_id)
            .unwrap();
        let sealer = KeyRing::from_key_file(&second).unwrap();
        let ring = KeyRing::from_key_file(&format!("{first}\n{second}")).unwrap();
        let f = flow("abc", on_behalf());
        assert_eq!(ring.open(&sealer.seal(&f)).into_flow(), Some(f));
    }

    fn flow(state: &str, requested: Option<Requested>) -> Flow {
        Flow {
            state: state.into(),
            redirect_uri: "https://pgo.example.nl/cb".into(),
            requested,
            issued_at: 1_790_000_000,
            correlation_id: Uuid::from_u128(0x1234),
            fresh_login: crate::vert::FreshLogin::OFF,
        }
    }

    fn on_behalf() -> Option<Requested> {
        Some(Requested {
            kind: Kind::OnBehalfOf,
            birthdate: Birthdate::parse_format("19700901").unwrap(),
        })
    }

    #[test]
    fn fresh_login_is_sealed_in_the_kind_byte_and_states_sealed_before_it_still_open() {
        let ring = KeyRing::random();
        for fresh_login in [
            FreshLogin::OFF,
            FreshLogin {
                prompt_login: true,
                max_age_zero: false,
            },
            FreshLogin {
                prompt_login: true,
                max_age_zero: true,
            },
        ] {
            let f = Flow {
                fresh_login,
                ..flow("abc", on_behalf())
            };
            let sealed = ring.seal(&f);
            // No byte more: the README's length formula holds.
            assert_eq!(sealed.len(), sealed_len(25, 3, true));
            assert_eq!(ring.open(&sealed).into_flow(), Some(f));
        }
        // A state as the version before fresh login sealed it: the same bytes as one sealed
        // now without it, which opens with nothing added.
        let before = flow("abc", on_behalf());
        let mut plaintext = Vec::new();
        encode_flow(&before, &mut plaintext);
        assert_eq!(
            plaintext[20], 1,
            "kind byte of a flow sealed before fresh login"
        );
        assert_eq!(decode_flow(&plaintext), Some(before));
        // Nonsense in the nibble, or a fresh login without a representation: unreadable.
        for byte in [0x21, 0x41, 0xf1, 0x03, 0x10, 0x30] {
            let mut bytes = plaintext.clone();
            bytes[20] = byte;
            if byte & 0x0f == 0 {
                bytes.drain(21..25);
            }
            assert_eq!(decode_flow(&bytes), None, "{byte:#x}");
        }
    }

    #[test]
    fn seal_then_open_gives_the_flow() {
        let ring = KeyRing::random();
        for f in [
            flow("abc", None),
            flow("a+b%2F", on_behalf()),
            flow("", None),
        ] {
            assert_eq!(ring.open(&ring.seal(&f)).into_flow(), Some(f));
        }
    }

    #[test]
    fn sealed_state_uses_only_unreserved_characters() {
        let ring = KeyRing::random();
        let s = ring.seal(&flow("x y/+=%", on_behalf()));
        assert!(
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{s}"
        );
        assert_eq!(s.len(), sealed_len(25, 7, true));
    }

    #[test]
    fn each_seal_is_different() {
        let ring = KeyRing::random();
        assert_ne!(ring.seal(&flow("a", None)), ring.seal(&flow("a", None)));
    }

    #[test]
    fn tampered_state_is_invalid() {
        let ring = KeyRing::random();
        let sealed = ring.seal(&flow("abc", None));
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        for i in [1usize, 2, 30, bytes.len() - 1] {
            bytes[i] ^= 1;
            let tampered = URL_SAFE_NO_PAD.encode(&bytes);
            assert!(
                matches!(ring.open(&tampered), Opened::Invalid(_)),
                "byte {i}"
            );
            bytes[i] ^= 1;
        }
        // Cut short.
        assert!(matches!(
            ring.open(&sealed[..sealed.len() - 4]),
            Opened::Invalid(_) | Opened::Foreign
        ));
    }

    #[test]
    fn foreign_key_is_invalid() {
        let a = KeyRing::random();
        let b = KeyRing::random();
        let sealed = a.seal(&flow("abc", None));
        assert!(matches!(b.open(&sealed), Opened::Invalid(_)));
    }

    #[test]
    fn other_states_are_foreign() {
        let ring = KeyRing::random();
        for s in ["", "abc", "None", "xyz123", "a+b", "%41", &"A".repeat(100)] {
            assert_eq!(ring.open(s), Opened::Foreign, "{s}");
        }
    }

    #[test]
    fn key_rotation_keeps_old_flows_open() {
        let old = generate_key_line();
        let new = generate_key_line();
        let before = KeyRing::from_key_file(&old).unwrap();
        let sealed = before.seal(&flow("abc", None));
        let after = KeyRing::from_key_file(&format!("# rotated\n{new}\n\n{old}\n")).unwrap();
        assert_eq!(after.open(&sealed).into_flow(), Some(flow("abc", None)));
        // New flows are sealed with the new key, which the old ring does not know.
        let fresh = after.seal(&flow("abc", None));
        assert!(matches!(before.open(&fresh), Opened::Invalid(_)));
    }

    #[test]
    fn key_file_errors_name_the_line() {
        assert_eq!(
            KeyRing::from_key_file("# only a comment\n").unwrap_err(),
            KeyFileError::Empty
        );
        assert_eq!(
            KeyRing::from_key_file("\nnot base64!\n").unwrap_err(),
            KeyFileError::NotBase64(2)
        );
        assert_eq!(
            KeyRing::from_key_file("AAAA").unwrap_err().to_string(),
            "line 1: a key is 32 bytes, this one 3"
        );
        let k = generate_key_line();
        assert_eq!(
            KeyRing::from_key_file(&format!("{k}\n{k}"))
                .unwrap_err()
                .to_string(),
            "line 2: the same key is listed twice"
        );
    }

    #[test]
    fn key_file_accepts_standard_base64() {
        // `openssl rand -base64 32` writes standard base64 with padding.
        let std = base64::engine::general_purpose::STANDARD.encode([0xfb; 32]);
        assert!(std.contains('+') || std.contains('/'));
        assert!(KeyRing::from_key_file(&std).is_ok());
    }

    #[test]
    fn debug_does_not_show_keys() {
        let ring = KeyRing::from_key_file(&generate_key_line()).unwrap();
        assert!(format!("{ring:?}").starts_with("KeyRing { ids: ["));
    }

    proptest! {
        #[test]
        fn seal_open_round_trip(state in ".{0,300}", uri in "https://[a-z]{1,20}\\.nl/[ -~]{0,80}",
                                issued_at in 0u64..u64::from(u32::MAX), rep in any::<Option<bool>>(),
                                date in 18000101u32..99991231) {
            let ring = KeyRing::random();
            let requested = match (rep, Birthdate::from_number(date)) {
                (Some(child), Some(birthdate)) => Some(Requested {
                    kind: if child { Kind::OnBehalfOfChild } else { Kind::OnBehalfOf },
                    birthdate,
                }),
                _ => None,
            };
            let f = Flow { state, redirect_uri: uri, requested, issued_at, correlation_id: Uuid::from_u128(7), fresh_login: crate::vert::FreshLogin::OFF };
            prop_assert_eq!(ring.open(&ring.seal(&f)).into_flow(), Some(f));
        }

        /// The state's SIMD base64 reads and writes exactly what the `base64` crate's strict
        /// URL-safe, unpadded engine did: the same states open, the same are foreign (padding,
        /// `+` or `/`, a length of 4n+1, trailing bits set).
        #[test]
        fn state_base64_is_the_strict_url_safe_engine(s in "[A-Za-z0-9_+/=-]{0,200}",
                                                       bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(STATE_BASE64.decode_to_vec(&s).ok(), URL_SAFE_NO_PAD.decode(&s).ok());
            let encoded = URL_SAFE_NO_PAD.encode(&bytes);
            prop_assert_eq!(STATE_BASE64.encode_to_string(&bytes), encoded.clone());
            for i in 0..encoded.len() {
                // Each last character with its trailing bits set, and any other change.
                let mut changed = encoded.clone().into_bytes();
                changed[i] = if changed[i] == b'A' { b'B' } else { b'A' };
                let changed = String::from_utf8(changed).unwrap();
                prop_assert_eq!(STATE_BASE64.decode_to_vec(&changed).ok(), URL_SAFE_NO_PAD.decode(&changed).ok());
            }
        }

        #[test]
        fn opening_garbage_never_panics(s in "[A-Za-z0-9_-]{0,200}") {
            let ring = KeyRing::random();
            prop_assert!(!matches!(ring.open(&s), Opened::Flow(..)));
        }
    }
}
