//! TLS for outbound connections: rustls (ring) with the system's trusted roots and, optionally,
//! the certificates of a CA file (a private CA, or a test's own).
//!
//! rustls runs over any stream with tokio's I/O traits; monoio's poll-mode TCP stream has
//! exactly those (monoio re-exports them), so `tokio-rustls` works on a monoio core without a
//! tokio runtime, with io_uring and with epoll alike. The server name checked is the URL's
//! host even though the connection goes to an address checked beforehand (see
//! [`crate::net::fetch`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;

/// Which certificates are trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Trust the system's roots (`/etc/ssl/certs`, or `SSL_CERT_FILE`/`SSL_CERT_DIR`).
    pub system_roots: bool,
    /// Also trust the certificates in this PEM file.
    pub ca_file: Option<PathBuf>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            system_roots: true,
            ca_file: None,
        }
    }
}

/// Why the TLS settings could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// The CA file could not be read or holds no certificate.
    #[error("CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// No root at all: every handshake would fail.
    #[error("no trusted root certificates (no system roots found and no CA file)")]
    NoRoots,
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Builds the client configuration. Call once and share the result between cores.
pub fn client_config(settings: &TlsSettings) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    if settings.system_roots {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::debug!(%error, "skipping a system root certificate");
        }
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        tracing::debug!(added, ignored, "system root certificates loaded");
    }
    if let Some(path) = &settings.ca_file {
        for cert in read_ca_file(path)? {
            roots.add(cert).map_err(|e| TlsConfigError::CaFile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        }
    }
    if roots.is_empty() {
        return Err(TlsConfigError::NoRoots);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let fail = |reason: String| TlsConfigError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("no certificate in it".into()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let settings = TlsSettings {
            system_roots: false,
            ca_file: Some(missing.clone()),
        };
        let err = client_config(&settings).unwrap_err().to_string();
        assert!(err.contains("missing.pem"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let settings = TlsSettings {
            system_roots: false,
            ca_file: Some(empty),
        };
        let err = client_config(&settings).unwrap_err().to_string();
        assert!(err.contains("no certificate"), "{err}");
    }

    #[test]
    fn no_roots_at_all_is_refused() {
        let settings = TlsSettings {
            system_roots: false,
            ca_file: None,
        };
        assert!(matches!(
            client_config(&settings),
            Err(TlsConfigError::NoRoots)
        ));
    }

    #[test]
    fn system_roots_load() {
        // Debian's ca-certificates: the machines this runs on have it (curl needs it too).
        let config = client_config(&TlsSettings::default());
        assert!(config.is_ok(), "{:?}", config.err());
    }
}
