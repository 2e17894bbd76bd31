//! TLS termination with rustls: certificates from `kubernetes.io/tls` Secrets, chosen per
//! connection by SNI from the current snapshot (so a renewed Secret applies to new connections
//! without a restart).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::snapshot::Snapshot;

/// Why a Secret's certificate cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("data[{0}] is missing")]
    Missing(&'static str),
    #[error("data[tls.crt] holds no PEM certificate: {0}")]
    BadCert(String),
    #[error("data[tls.key] holds no PEM private key: {0}")]
    BadKey(String),
    #[error("data[tls.key]: unsupported key type: {0}")]
    Unsupported(rustls::Error),
}

/// The certificate chain and key of a TLS Secret (`data["tls.crt"]`, `data["tls.key"]`).
pub fn certified_key(secret: &Secret) -> Result<CertifiedKey, CertError> {
    let data = secret.data.as_ref();
    let crt = data
        .and_then(|d| d.get("tls.crt"))
        .ok_or(CertError::Missing("tls.crt"))?;
    let key = data
        .and_then(|d| d.get("tls.key"))
        .ok_or(CertError::Missing("tls.key"))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&crt.0)
        .collect::<Result<_, _>>()
        .map_err(|e| CertError::BadCert(e.to_string()))?;
    if certs.is_empty() {
        return Err(CertError::BadCert("no CERTIFICATE block".into()));
    }
    let key =
        PrivateKeyDer::from_pem_slice(&key.0).map_err(|e| CertError::BadKey(e.to_string()))?;
    let signing =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(CertError::Unsupported)?;
    Ok(CertifiedKey::new(certs, signing))
}

/// Picks the certificate by SNI from whatever snapshot is current.
#[derive(Debug)]
pub struct SniResolver {
    pub snapshot: Arc<RwLock<Arc<Snapshot>>>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let snapshot = self.snapshot.read().clone();
        snapshot.cert_for(hello.server_name())
    }
}

/// A rustls server config that resolves certificates by SNI and offers h2 and HTTP/1.1.
pub fn server_config(resolver: Arc<SniResolver>) -> Result<rustls::ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
