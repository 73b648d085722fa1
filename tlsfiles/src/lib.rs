//! The TLS files a Fieldlink configuration names, checked the same way by the agent and the
//! cloud before anything connects: a CA file or client certificate must hold PEM certificates
//! that parse as X.509 and are within their validity dates; a key file must hold a PEM private
//! key. Every error names the file and, for a certificate out of its dates, which certificate
//! and both dates.
//!
//! A certificate that expires within [`EXPIRY_WARNING`] is not an error but an [`Expiring`]
//! notice for the caller to print: renewing it is work for someone before the link stops.
//!
//! The dates are checked against a clock the caller passes, so a caller whose clock is not
//! trustworthy yet (a gateway without an RTC before NTP) can skip them rather than report a
//! certificate "not yet valid" because the year is 1970.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

/// A certificate that expires sooner than this after the check is reported as [`Expiring`].
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 86_400);

/// Why a TLS file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    /// Missing, unreadable, or not PEM of the expected type.
    #[error("{}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{}: holds no PEM certificate", path.display())]
    NoCertificate { path: PathBuf },
    /// A PEM certificate block whose content is not an X.509 certificate.
    #[error("{}: {which} is not a valid X.509 certificate: {reason}", path.display())]
    Unparsable {
        path: PathBuf,
        which: String,
        reason: String,
    },
    #[error(
        "{}: {which} expired on {} (valid from {} until {}; now is {})",
        path.display(), dates.not_after, dates.not_before, dates.not_after, dates.now
    )]
    Expired {
        path: PathBuf,
        which: String,
        dates: Box<Dates>,
    },
    #[error(
        "{}: {which} is not valid before {} (valid from {} until {}; now is {}: \
         is this machine's clock right?)",
        path.display(), dates.not_before, dates.not_before, dates.not_after, dates.now
    )]
    NotYetValid {
        path: PathBuf,
        which: String,
        dates: Box<Dates>,
    },
}

/// A certificate's validity dates and the time it was checked at, in RFC 3339 (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dates {
    pub not_before: String,
    pub not_after: String,
    pub now: String,
}

/// A certificate within its dates that expires within [`EXPIRY_WARNING`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiring {
    pub path: PathBuf,
    pub which: String,
    pub not_after: String,
    /// Whole days left (0 when less than a day is).
    pub days_left: u64,
}

impl fmt::Display for Expiring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} expires on {}, in {} days",
            self.path.display(),
            self.which,
            self.not_after,
            self.days_left
        )
    }
}

/// Reads every PEM certificate in `path`; at least one must be there.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let unreadable = |reason: String| TlsFileError::Unreadable {
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| unreadable(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsFileError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Reads the PEM private key in `path`.
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsFileError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Reads every certificate in `path` and, when `now` is given, checks that each is within its
/// validity dates: the first one that is not is the error. Returns the certificates that expire
/// within [`EXPIRY_WARNING`] of `now`.
pub fn check_certificates(
    path: &Path,
    now: Option<SystemTime>,
) -> Result<Vec<Expiring>, TlsFileError> {
    let certs = read_certificates(path)?;
    let mut expiring = Vec::new();
    for (i, der) in certs.iter().enumerate() {
        let cert = match X509Certificate::from_der(der.as_ref()) {
            Ok((_, cert)) => cert,
            Err(e) => {
                return Err(TlsFileError::Unparsable {
                    path: path.to_path_buf(),
                    which: which(i, certs.len(), None),
                    reason: e.to_string(),
                })
            }
        };
        let Some(now) = now else { continue };
        let now = OffsetDateTime::from(now).truncate_to_second();
        let validity = cert.validity();
        let (not_before, not_after) = (
            validity.not_before.to_datetime(),
            validity.not_after.to_datetime(),
        );
        let which = which(i, certs.len(), Some(&cert.subject().to_string()));
        let dates = || {
            Box::new(Dates {
                not_before: rfc3339(not_before),
                not_after: rfc3339(not_after),
                now: rfc3339(now),
            })
        };
        let path = path.to_path_buf();
        if now < not_before {
            return Err(TlsFileError::NotYetValid {
                path,
                which,
                dates: dates(),
            });
        }
        if now > not_after {
            return Err(TlsFileError::Expired {
                path,
                which,
                dates: dates(),
            });
        }
        let left = not_after - now;
        if left < EXPIRY_WARNING {
            expiring.push(Expiring {
                path,
                which,
                not_after: rfc3339(not_after),
                days_left: left.whole_days().max(0) as u64,
            });
        }
    }
    Ok(expiring)
}

/// How an error names one certificate of a file: by subject, and by position when the file
/// holds several.
fn which(index: usize, count: usize, subject: Option<&str>) -> String {
    let position = if count > 1 {
        format!("certificate {} of {count}", index + 1)
    } else {
        "the certificate".to_string()
    };
    match subject {
        Some(s) if !s.is_empty() => format!("{position} ({s})"),
        _ => position,
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fieldlink_testkit::tls::TestPki;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn dates_are_checked_against_the_given_clock() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let pki = TestPki::new(dir.path(), "ca").unwrap();
        let valid = pki.client("valid").unwrap();
        let dated = pki.dated_clients(now, 10).unwrap();
        let (expired, future, soon) = (dated.expired, dated.not_yet_valid, dated.expiring);

        assert_eq!(check_certificates(&valid.cert, Some(now)).unwrap(), []);
        let e = check_certificates(&expired.cert, Some(now)).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, TlsFileError::Expired { .. }), "{text}");
        assert!(text.contains(expired.cert.to_str().unwrap()), "{text}");
        assert!(text.contains("CN=expired"), "{text}");
        let until = rfc3339(OffsetDateTime::from(now - 3 * DAY).truncate_to_second());
        assert!(text.contains(&until), "{until} in {text}");

        let e = check_certificates(&future.cert, Some(now)).unwrap_err();
        assert!(matches!(e, TlsFileError::NotYetValid { .. }), "{e}");
        assert!(e.to_string().contains("not valid before"), "{e}");

        let notices = check_certificates(&soon.cert, Some(now)).unwrap();
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert_eq!(notices[0].days_left, 10);
        assert!(
            notices[0].to_string().contains("in 10 days"),
            "{}",
            notices[0]
        );

        // Without a trusted clock only the format is checked.
        assert_eq!(check_certificates(&expired.cert, None).unwrap(), []);
    }

    #[test]
    fn a_bundle_names_the_certificate_out_of_its_dates() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let pki = TestPki::new(dir.path(), "ca").unwrap();
        let old = pki
            .client_valid_between("old", now - 400 * DAY, now - DAY)
            .unwrap();
        let bundle = dir.path().join("bundle.pem");
        let mut text = std::fs::read_to_string(pki.ca_cert()).unwrap();
        text.push_str(&std::fs::read_to_string(&old.cert).unwrap());
        std::fs::write(&bundle, text).unwrap();
        let e = check_certificates(&bundle, Some(now)).unwrap_err();
        assert!(e.to_string().contains("certificate 2 of 2 (CN=old)"), "{e}");
    }

    #[test]
    fn a_pem_block_that_is_not_a_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garbage.pem");
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = check_certificates(&path, None).unwrap_err();
        assert!(matches!(e, TlsFileError::Unparsable { .. }), "{e}");
        assert!(e.to_string().contains("garbage.pem"), "{e}");
        let missing = dir.path().join("missing.pem");
        let e = check_certificates(&missing, None).unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
    }
}
