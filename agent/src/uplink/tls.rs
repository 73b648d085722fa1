//! The rustls client configuration: the broker is verified against a CA file or the system's
//! roots, optionally with a client certificate (mTLS). The `ring` provider is used everywhere,
//! so ARM builds need no other crypto library.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use fieldlink_tlsfiles::{
    check_certificates, read_certificates, read_private_key, Expiring, TlsFileError,
};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::TlsSettings;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    File(#[from] TlsFileError),
    #[error("{path}: {reason}")]
    Roots { path: String, reason: String },
    #[error("no usable root certificates on this system")]
    NoRoots,
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
}

/// What [`check_files`] found wrong, or worth a warning.
#[derive(Debug, Default)]
pub struct FileCheck {
    /// Certificates that expire soon, with the configuration key that names their file.
    pub expiring: Vec<(&'static str, Expiring)>,
}

/// Opens and parses every file `settings` names, as `check-config` does before anything runs:
/// the CA file and the client certificate must hold PEM certificates, the key a PEM private
/// key. With `now` (a clock the caller trusts), every certificate must also be within its
/// validity dates. Returns the configuration key of the first file that fails, with why.
pub fn check_files(
    settings: &TlsSettings,
    now: Option<SystemTime>,
) -> Result<FileCheck, (&'static str, TlsError)> {
    let mut check = FileCheck::default();
    let mut certs = |key: &'static str, path: &Path| {
        let expiring = check_certificates(path, now).map_err(|e| (key, e.into()))?;
        check
            .expiring
            .extend(expiring.into_iter().map(|e| (key, e)));
        Ok::<_, (&'static str, TlsError)>(())
    };
    if let Some(ca) = &settings.ca_file {
        certs("mqtt.ca_file", ca)?;
    }
    if let Some((cert, key)) = &settings.client_auth {
        certs("mqtt.client_cert", cert)?;
        read_private_key(key).map_err(|e| ("mqtt.client_key", e.into()))?;
    }
    Ok(check)
}

/// Builds the client configuration for `settings`.
pub fn client_config(settings: &TlsSettings) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if settings.insecure {
        tracing::warn!(
            "mqtt.insecure is set: the broker's certificate is NOT verified; \
             anyone on the path can read and change this gateway's traffic. Lab use only."
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        match &settings.ca_file {
            Some(path) => {
                for cert in read_certificates(path)? {
                    roots.add(cert).map_err(|e| TlsError::Roots {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    })?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for e in &found.errors {
                    tracing::warn!(error = %e, "a system root certificate could not be read");
                }
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(TlsError::NoRoots);
                }
            }
        }
        builder.with_root_certificates(roots)
    };
    let config = match &settings.client_auth {
        Some((cert, key)) => {
            builder.with_client_auth_cert(read_certificates(cert)?, read_private_key(key)?)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(config)
}

/// Accepts any server certificate but still checks the handshake signatures, so the session
/// is at least encrypted to whoever answered. Only built when `mqtt.insecure` is set.
#[derive(Debug)]
struct AcceptAnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
