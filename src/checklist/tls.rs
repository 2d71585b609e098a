//! The registry's certificate as Qovery sees it. Qovery cannot be given a private CA for a
//! container registry (its `ContainerRegistryRequest` has no CA or skip-verification field),
//! so what counts is whether the chain verifies against public web roots alone: Mozilla's set
//! as `webpki-roots` ships it, neither this machine's trust store nor `gitlab.ca_file`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// What one TLS handshake with the registry showed.
#[derive(Debug)]
pub enum Verdict {
    /// The chain verifies against public roots; the server certificate's `notAfter`.
    Public { not_after: Option<DateTime<Utc>> },
    /// The chain verifies only with `gitlab.ca_file`.
    PrivateOnly {
        not_after: Option<DateTime<Utc>>,
        why: String,
    },
    /// The chain verifies against nothing regwarden knows (or has expired).
    Untrusted { why: String },
    /// No TLS session could be set up at all.
    Unreachable { why: String },
}

/// The most of a server's answer read during a handshake is rustls' own bound (its message
/// buffer); the time it may take is `timeout`, for the connection and the handshake each.
pub async fn inspect(host: &str, port: u16, ca_file: Option<&Path>, timeout: Duration) -> Verdict {
    let public = match handshake(host, port, public_roots(), timeout).await {
        Ok(not_after) => return Verdict::Public { not_after },
        Err(Failure::Certificate(why)) => why,
        Err(Failure::Other(why)) => return Verdict::Unreachable { why },
    };
    let Some(ca_file) = ca_file else {
        return Verdict::Untrusted { why: public };
    };
    let private = match pem_roots(ca_file) {
        Ok(roots) => roots,
        Err(e) => {
            return Verdict::Untrusted {
                why: format!("{public}; and gitlab.ca_file cannot be read: {e}"),
            };
        }
    };
    match handshake(host, port, private, timeout).await {
        Ok(not_after) => Verdict::PrivateOnly {
            not_after,
            why: public,
        },
        Err(Failure::Certificate(_) | Failure::Other(_)) => Verdict::Untrusted { why: public },
    }
}

enum Failure {
    /// The server was reached, and its certificate refused.
    Certificate(String),
    Other(String),
}

/// Mozilla's roots, as `webpki-roots` ships them. A build with the `fault-injection` feature
/// (the test suite's, never a release) also trusts the PEM file `REGWARDEN_TEST_PUBLIC_ROOTS`
/// names, which stands for a public CA in tests that cannot reach one.
fn public_roots() -> RootCertStore {
    #[allow(unused_mut)]
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    #[cfg(feature = "fault-injection")]
    if let Some(path) = std::env::var_os("REGWARDEN_TEST_PUBLIC_ROOTS")
        && let Ok(extra) = pem_roots(Path::new(&path))
    {
        roots.roots.extend(extra.roots);
    }
    roots
}

fn pem_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| e.to_string())?;
    for cert in certs {
        let cert = cert.map_err(|e| e.to_string())?;
        roots.add(cert).map_err(|e| e.to_string())?;
    }
    if roots.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(roots)
}

async fn handshake(
    host: &str,
    port: u16,
    roots: RootCertStore,
    timeout: Duration,
) -> Result<Option<DateTime<Utc>>, Failure> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::Other(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| Failure::Other(format!("{host} is not a server name: {e}")))?;
    let tcp = tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port)))
        .await
        .map_err(|_| Failure::Other(format!("no connection to {host}:{port} within {timeout:?}")))?
        .map_err(|e| Failure::Other(format!("cannot connect to {host}:{port}: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls = tokio::time::timeout(timeout, connector.connect(name, tcp))
        .await
        .map_err(|_| Failure::Other(format!("no TLS handshake within {timeout:?}")))?
        .map_err(|e| {
            let certificate = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(|e| {
                    matches!(
                        e,
                        rustls::Error::InvalidCertificate(_)
                            | rustls::Error::NoCertificatesPresented
                    )
                });
            let why = e.to_string();
            if certificate {
                Failure::Certificate(why)
            } else {
                Failure::Other(format!("TLS handshake failed: {why}"))
            }
        })?;
    let (_, session) = tls.get_ref();
    Ok(session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| not_after(leaf)))
}

/// A certificate's `notAfter`, read from its DER (already verified by the handshake).
pub fn not_after(der: &[u8]) -> Option<DateTime<Utc>> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let at = cert.tbs_certificate.validity.not_after.to_unix_duration();
    DateTime::from_timestamp(i64::try_from(at.as_secs()).ok()?, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_set_is_mozillas_and_not_the_system_store() {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        // Mozilla's program holds well over a hundred roots; a build that lost them would
        // call every registry untrusted.
        assert!(roots.len() > 100, "{}", roots.len());
    }

    #[test]
    fn not_after_of_garbage_is_none() {
        assert_eq!(not_after(b"not a certificate"), None);
        assert_eq!(not_after(&[]), None);
    }
}
