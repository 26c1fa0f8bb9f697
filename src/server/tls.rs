//! TLS on the public listener (rustls, `ring` provider): TLS 1.2 and 1.3 only, and rustls's
//! suites only (ECDHE key exchange with AES-GCM or ChaCha20-Poly1305: it implements no CBC,
//! no RSA key exchange, no RC4), which is what MedMij asks (TLS 1.2, 1.3 where possible).
//!
//! The certificate and key are read at start and again on reload (SIGHUP). A new pair is
//! checked (both parse, the key matches the certificate) before it replaces the old one, which
//! otherwise keeps serving; connections already open keep the session they have.

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

impl Tls {
    /// Reads the files; the error names the file and what is wrong with it.
    pub fn new(files: &TlsFiles) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = load(files, &provider)?;
        let current = Arc::new(Current {
            key: ArcSwap::from_pointee(key),
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
        let key = load(&self.files, &self.current.provider)?;
        self.current.key.store(Arc::new(key));
        Ok(())
    }
}

/// The certificate handed to each new connection.
struct Current {
    key: ArcSwap<CertifiedKey>,
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

fn load(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
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
    CertifiedKey::from_der(chain, key, provider).map_err(|source| TlsError::Mismatch {
        file: files.key_file.clone(),
        source,
    })
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
        let dir =
            std::env::temp_dir().join(format!("vert-tls-{}", crate::state::seal::random_uuid()));
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
