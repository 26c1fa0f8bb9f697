//! TLS on the public listener (rustls, `ring` provider): TLS 1.2 and 1.3 only, and rustls's
//! suites only (ECDHE key exchange with AES-GCM or ChaCha20-Poly1305: it implements no CBC,
//! no RSA key exchange, no RC4), which is what MedMij asks (TLS 1.2, 1.3 where possible).
//!
//! The certificate and key are read at start and again on reload (SIGHUP). A new pair is
//! checked (both parse, the key matches the certificate) before it replaces the old one, which
//! otherwise keeps serving; connections already open keep the session they have. The
//! certificate's `notAfter` is read with it, for the expiry gauge
//! (`medmij_vert_tls_certificate_not_after_timestamp_seconds`).

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;

/// Why a certificate and key could not be used: each names its key and file, and keeps the
/// cause as its source.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("listen.tls.cert_file: {file}: {source}")]
    Certificate {
        file: std::path::PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("listen.tls.cert_file: {0}: no certificate in the file")]
    NoCertificate(std::path::PathBuf),
    #[error("listen.tls.key_file: {file}: {source}")]
    Key {
        file: std::path::PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("listen.tls.key_file: {file}: does not fit the certificate: {source}")]
    Mismatch {
        file: std::path::PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("TLS: {0}")]
    Config(#[source] rustls::Error),
}

/// The acceptor, and the certificate it hands out, which [`Tls::reload`] replaces.
pub struct Tls {
    files: TlsFiles,
    current: Arc<Current>,
    acceptor: TlsAcceptor,
}

/// A certificate and key that rustls accepted, and when the certificate expires.
struct Loaded {
    key: CertifiedKey,
    /// The end-entity certificate's `notAfter`, Unix time; `None` when it cannot be read
    /// (rustls took the certificate: it serves, only the gauge goes without it).
    not_after: Option<i64>,
}

impl Tls {
    /// Reads the files; the error names the file and what is wrong with it.
    pub fn new(files: &TlsFiles) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = load(files, &provider)?;
        let current = Arc::new(Current {
            key: ArcSwap::from_pointee(loaded.key),
            not_after: ArcSwap::from_pointee(loaded.not_after),
            provider: provider.clone(),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            files: files.clone(),
            current,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Reads the files again; the new pair serves new connections only if it is usable.
    pub fn reload(&self) -> Result<(), TlsError> {
        let loaded = load(&self.files, &self.current.provider)?;
        self.current.key.store(Arc::new(loaded.key));
        self.current.not_after.store(Arc::new(loaded.not_after));
        Ok(())
    }

    /// The `notAfter` of the certificate handed out now (Unix time), when it could be read.
    pub fn not_after(&self) -> Option<i64> {
        **self.current.not_after.load()
    }
}

/// The certificate handed to each new connection.
struct Current {
    key: ArcSwap<CertifiedKey>,
    not_after: ArcSwap<Option<i64>>,
    provider: Arc<CryptoProvider>,
}

impl fmt::Debug for Current {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.write_str("Current")
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.key.load_full())
    }
}

fn load(files: &TlsFiles, provider: &CryptoProvider) -> Result<Loaded, TlsError> {
    let chain = CertificateDer::pem_file_iter(&files.cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Certificate {
            file: files.cert_file.clone(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(files.cert_file.clone()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key_file).map_err(|source| TlsError::Key {
        file: files.key_file.clone(),
        source,
    })?;
    let not_after = match x509_parser::parse_x509_certificate(&chain[0]) {
        Ok((_, certificate)) => Some(certificate.validity().not_after.timestamp()),
        Err(error) => {
            tracing::warn!(%error, file = %files.cert_file.display(), "the certificate's notAfter cannot be read: no expiry gauge");
            None
        }
    };
    let key =
        CertifiedKey::from_der(chain, key, provider).map_err(|source| TlsError::Mismatch {
            file: files.key_file.clone(),
            source,
        })?;
    Ok(Loaded { key, not_after })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &std::path::Path, name: &str) -> TlsFiles {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let files = TlsFiles {
            cert_file: dir.join(format!("{name}.crt")),
            key_file: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert_file, cert.cert.pem()).unwrap();
        std::fs::write(&files.key_file, cert.signing_key.serialize_pem()).unwrap();
        files
    }

    fn temp_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("vert-tls-{}", crate::vocab::random_uuid()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_usable_pair_loads_and_a_bad_one_names_its_file() {
        let dir = temp_dir();
        let good = write_pair(&dir, "a");
        assert!(Tls::new(&good).is_ok());
        let other = write_pair(&dir, "b");
        // A key that belongs to another certificate.
        let mismatched = TlsFiles {
            cert_file: good.cert_file.clone(),
            key_file: other.key_file.clone(),
        };
        let e = Tls::new(&mismatched).err().unwrap();
        assert!(matches!(e, TlsError::Mismatch { .. }), "{e}");
        assert!(e.to_string().starts_with("listen.tls.key_file:"), "{e}");
        std::fs::write(dir.join("empty.crt"), "").unwrap();
        let empty = TlsFiles {
            cert_file: dir.join("empty.crt"),
            key_file: good.key_file.clone(),
        };
        let e = Tls::new(&empty).err().unwrap();
        assert!(matches!(e, TlsError::NoCertificate(_)), "{e}");
        assert!(e.to_string().starts_with("listen.tls.cert_file:"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The expiry gauge reads the end-entity certificate's `notAfter`, at start and again
    /// after a reload.
    #[test]
    fn not_after_is_the_certificates_and_follows_a_reload() {
        let dir = temp_dir();
        let write = |year: i32| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
            params.not_after = rcgen::date_time_ymd(year, 1, 2);
            let cert = params.self_signed(&key).unwrap();
            let files = TlsFiles {
                cert_file: dir.join("a.crt"),
                key_file: dir.join("a.key"),
            };
            std::fs::write(&files.cert_file, cert.pem()).unwrap();
            std::fs::write(&files.key_file, key.serialize_pem()).unwrap();
            files
        };
        let files = write(2031);
        let tls = Tls::new(&files).unwrap();
        // 2031-01-02T00:00:00Z
        assert_eq!(tls.not_after(), Some(1_925_078_400));
        write(2032);
        tls.reload().unwrap();
        assert_eq!(tls.not_after(), Some(1_956_614_400));
        // A refused reload keeps the expiry of the pair that still serves.
        std::fs::write(&files.cert_file, "garbage").unwrap();
        assert!(tls.reload().is_err());
        assert_eq!(tls.not_after(), Some(1_956_614_400));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_failed_reload_keeps_the_old_pair() {
        let dir = temp_dir();
        let files = write_pair(&dir, "a");
        let tls = Tls::new(&files).unwrap();
        let before = tls.current.key.load_full();
        std::fs::write(&files.cert_file, "garbage").unwrap();
        assert!(tls.reload().is_err());
        assert!(Arc::ptr_eq(&before, &tls.current.key.load_full()));
        write_pair(&dir, "a");
        tls.reload().unwrap();
        assert!(!Arc::ptr_eq(&before, &tls.current.key.load_full()));
        let _ = std::fs::remove_dir_all(dir);
    }
}
