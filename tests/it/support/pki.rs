//! Keys and certificates for the tests, made with the `openssl` command at run time: no private
//! key is kept in the repository.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command is needed by the tests (ci/test.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An RSA key pair with a self-signed certificate: what a registry's `rootcertbundle` trusts.
pub struct SigningKey {
    pub key_pem: Vec<u8>,
    pub cert_path: PathBuf,
    /// The libtrust key id of the public key, which the registry matches against the JWT `kid`.
    pub kid: String,
    /// The RSA modulus, base64url without padding, as a JWK's `n`.
    pub modulus_b64url: String,
}

impl SigningKey {
    pub fn generate(dir: &Path, name: &str) -> Self {
        let key = format!("{name}.key");
        let cert = format!("{name}.crt");
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &cert,
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        let der = format!("{name}.pub.der");
        openssl(
            dir,
            &[
                "pkey", "-in", &key, "-pubout", "-outform", "DER", "-out", &der,
            ],
        );
        let public_der = std::fs::read(dir.join(&der)).unwrap();
        let modulus = Command::new("openssl")
            .args(["rsa", "-in", &key, "-noout", "-modulus"])
            .current_dir(dir)
            .output()
            .expect("openssl rsa -modulus");
        let hex = String::from_utf8(modulus.stdout).unwrap();
        let hex = hex.trim().trim_start_matches("Modulus=");
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        use base64::Engine;
        Self {
            key_pem: std::fs::read(dir.join(&key)).unwrap(),
            cert_path: dir.join(&cert),
            kid: libtrust_key_id(&public_der),
            modulus_b64url: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        }
    }
}

/// libtrust's key id: base32 of the first 30 bytes of SHA-256 of the DER public key, in 12
/// groups of 4 characters joined by `:`.
pub fn libtrust_key_id(public_key_der: &[u8]) -> String {
    let digest = Sha256::digest(public_key_der);
    let encoded = base32(&digest[..30]);
    encoded
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":")
}

/// RFC 4648 base32 without padding (30 bytes encode to exactly 48 characters).
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// A private certificate authority and a server certificate it signed for 127.0.0.1.
pub struct PrivateCa {
    pub ca_path: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl PrivateCa {
    pub fn generate(dir: &Path) -> Self {
        Self::generate_for_days(dir, 90)
    }

    /// A CA, and a server certificate valid for `days` from now.
    pub fn generate_for_days(dir: &Path, days: u32) -> Self {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "400",
                "-subj",
                "/CN=regwarden test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                &days.to_string(),
                "-extfile",
                "server.ext",
            ],
        );
        Self {
            ca_path: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn base32_matches_rfc4648_vectors() {
        assert_eq!(super::base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(super::base32(b"f"), "MY");
    }
}
