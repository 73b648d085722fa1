//! Certificates for TLS and mTLS tests, made fresh in every run: a CA, a server certificate
//! for `localhost` and `127.0.0.1` signed by it, and client certificates on demand.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::{Result, ServiceError};

/// PEM files on disk, as a broker's configuration wants them.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// A certificate and its private key, as PEM files.
#[derive(Clone, Debug)]
pub struct ClientFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// See [`TestPki::dated_clients`].
#[derive(Clone, Debug)]
pub struct DatedClients {
    pub expired: ClientFiles,
    pub not_yet_valid: ClientFiles,
    pub expiring: ClientFiles,
}

/// A throwaway certificate authority that writes its files into `dir`.
pub struct TestPki {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    ca_cert: PathBuf,
}

impl TestPki {
    /// Makes a CA named `name`, writing `{name}-ca.pem` into `dir`.
    pub fn new(dir: &Path, name: &str) -> Result<TestPki> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.distinguished_name = dn(&format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().map_err(err)?;
        let cert = params.self_signed(&key).map_err(err)?;
        let ca_cert = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca_cert, cert.pem())?;
        Ok(TestPki {
            dir: dir.to_path_buf(),
            issuer: Issuer::new(params, key),
            ca_cert,
        })
    }

    pub fn ca_cert(&self) -> &Path {
        &self.ca_cert
    }

    /// A server certificate for `localhost` and `127.0.0.1`, with the CA, for a broker.
    pub fn server(&self, name: &str) -> Result<TlsFiles> {
        let (cert, key) = self.leaf(
            name,
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
            None,
        )?;
        Ok(TlsFiles {
            ca_cert: self.ca_cert.clone(),
            server_cert: cert,
            server_key: key,
        })
    }

    /// A client certificate whose common name is `name`.
    pub fn client(&self, name: &str) -> Result<ClientFiles> {
        let (cert, key) = self.leaf(name, Vec::new(), ExtendedKeyUsagePurpose::ClientAuth, None)?;
        Ok(ClientFiles { cert, key })
    }

    /// A client certificate valid only from `not_before` until `not_after` (expired or not yet
    /// valid ones for tests of the checks).
    pub fn client_valid_between(
        &self,
        name: &str,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<ClientFiles> {
        let (cert, key) = self.leaf(
            name,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
            Some((not_before, not_after)),
        )?;
        Ok(ClientFiles { cert, key })
    }

    /// Client certificates dated around `now`, for tests of the validity checks: one expired
    /// three days ago, one valid only from three days on, and one that expires in
    /// `expiring_in_days` and a half.
    pub fn dated_clients(&self, now: SystemTime, expiring_in_days: u64) -> Result<DatedClients> {
        const DAY: Duration = Duration::from_secs(86_400);
        Ok(DatedClients {
            expired: self.client_valid_between("expired", now - 400 * DAY, now - 3 * DAY)?,
            not_yet_valid: self.client_valid_between("future", now + 3 * DAY, now + 400 * DAY)?,
            expiring: self.client_valid_between(
                "soon",
                now - DAY,
                now + expiring_in_days as u32 * DAY + DAY / 2,
            )?,
        })
    }

    fn leaf(
        &self,
        name: &str,
        sans: Vec<String>,
        usage: ExtendedKeyUsagePurpose,
        validity: Option<(SystemTime, SystemTime)>,
    ) -> Result<(PathBuf, PathBuf)> {
        let mut params = CertificateParams::new(sans).map_err(err)?;
        params.distinguished_name = dn(name);
        if let Some((not_before, not_after)) = validity {
            params.not_before = not_before.into();
            params.not_after = not_after.into();
        }
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().map_err(err)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(err)?;
        let cert_path = self.dir.join(format!("{name}.pem"));
        let key_path = self.dir.join(format!("{name}-key.pem"));
        std::fs::write(&cert_path, cert.pem())?;
        std::fs::write(&key_path, key.serialize_pem())?;
        Ok((cert_path, key_path))
    }
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

fn err(e: rcgen::Error) -> ServiceError {
    ServiceError(format!("generating test certificates: {e}"))
}
