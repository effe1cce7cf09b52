//! RS256/ES256 key pairs in PEM files, generated with the `openssl` CLI, for
//! the PEM-key tests (`keys.rs`) and the JWKS tests (`jwks.rs`).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
use serde_json::Value;

/// A key pair in PEM files.
pub struct KeyPair {
    pub private_pem: Vec<u8>,
    pub public_pem: Vec<u8>,
    pub public_path: PathBuf,
    pub private_path: PathBuf,
    pub algorithm: Algorithm,
}

fn openssl(args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl CLI is installed");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl KeyPair {
    pub fn generate(dir: &Path, name: &str, algorithm: Algorithm) -> Self {
        let private_path = dir.join(format!("{name}.key.pem"));
        let public_path = dir.join(format!("{name}.pub.pem"));
        let private = private_path.to_str().expect("a UTF-8 path");
        let key_options: &[&str] = match algorithm {
            Algorithm::RS256 => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            Algorithm::ES256 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            // A curve the broker does not verify with (ES256 is P-256 only).
            Algorithm::ES384 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            other => panic!("no key generation for {other:?}"),
        };
        let mut genpkey = vec!["genpkey"];
        genpkey.extend_from_slice(key_options);
        genpkey.extend_from_slice(&["-out", private]);
        openssl(&genpkey);
        openssl(&[
            "pkey",
            "-in",
            private,
            "-pubout",
            "-out",
            public_path.to_str().expect("a UTF-8 path"),
        ]);
        Self {
            private_pem: std::fs::read(&private_path).expect("the private key file"),
            public_pem: std::fs::read(&public_path).expect("the public key file"),
            public_path,
            private_path,
            algorithm,
        }
    }

    fn encoding_key(&self) -> EncodingKey {
        match self.algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&self.private_pem),
            _ => EncodingKey::from_ec_pem(&self.private_pem),
        }
        .expect("a PKCS#8 private key")
    }

    /// `claims` signed with this key; the header names `kid` when given.
    pub fn sign(&self, kid: Option<&str>, claims: &Value) -> String {
        let header = Header {
            kid: kid.map(str::to_owned),
            ..Header::new(self.algorithm)
        };
        jsonwebtoken::encode(&header, claims, &self.encoding_key()).expect("a signed token")
    }

    /// The public half as a JWK named `kid` (with `alg`, as issuers publish it).
    pub fn jwk(&self, kid: &str) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.encoding_key(), self.algorithm)
            .expect("a JWK from the key pair");
        jwk.common.key_id = Some(kid.to_owned());
        jwk
    }

    /// The key material an error body must never show.
    pub fn secrets(&self) -> Vec<String> {
        [&self.public_pem, &self.private_pem]
            .iter()
            .flat_map(|pem| {
                String::from_utf8_lossy(pem)
                    .lines()
                    .filter(|l| !l.starts_with("-----"))
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}
