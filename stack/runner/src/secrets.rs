//! Worker secrets at rest: sealed with ChaCha20-Poly1305 (the `chacha20poly1305` crate) under
//! the stack's `RUNNER_SECRETS_KEY` (32 random bytes, hex, from `.env`). The additional data is
//! the worker's and the secret's name, so a sealed value moved to another row does not open.
//! Values live in memory as [`Secret`], whose `Debug` never shows them.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

/// The secret name under which a worker's postgate token is kept (not visible on `env`).
pub const DB_TOKEN: &str = "__db_token";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SecretsError {
    #[error(
        "RUNNER_SECRETS_KEY must be 64 hex characters (32 bytes); run `stackctl init` to make one"
    )]
    BadKey,
    #[error(
        "secret {name} of worker {worker} does not open with this RUNNER_SECRETS_KEY (was the key rotated?)"
    )]
    Open { worker: String, name: String },
    #[error("sealing secret {name} of worker {worker} failed")]
    Seal { worker: String, name: String },
}

/// A secret value: compared and cloned like a string, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The sealing key.
#[derive(Clone)]
pub struct SecretsKey(ChaCha20Poly1305);

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsKey(***)")
    }
}

fn aad(worker: &str, name: &str) -> Vec<u8> {
    format!("runner-secret\0{worker}\0{name}").into_bytes()
}

impl SecretsKey {
    pub fn from_hex(text: &str) -> Result<SecretsKey, SecretsError> {
        let bytes = hex::decode(text.trim()).map_err(|_| SecretsError::BadKey)?;
        if bytes.len() != 32 {
            return Err(SecretsError::BadKey);
        }
        Ok(SecretsKey(ChaCha20Poly1305::new(Key::from_slice(&bytes))))
    }

    /// `(nonce, sealed)` for `value`; a fresh random nonce each time.
    pub fn seal(
        &self,
        worker: &str,
        name: &str,
        value: &str,
    ) -> Result<(Vec<u8>, Vec<u8>), SecretsError> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = aad(worker, name);
        let sealed = self
            .0
            .encrypt(
                &nonce,
                Payload {
                    msg: value.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| SecretsError::Seal {
                worker: worker.into(),
                name: name.into(),
            })?;
        Ok((nonce.to_vec(), sealed))
    }

    pub fn open(
        &self,
        worker: &str,
        name: &str,
        nonce: &[u8],
        sealed: &[u8],
    ) -> Result<Secret, SecretsError> {
        let err = || SecretsError::Open {
            worker: worker.into(),
            name: name.into(),
        };
        if nonce.len() != 12 {
            return Err(err());
        }
        let aad = aad(worker, name);
        let plain = self
            .0
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| err())?;
        String::from_utf8(plain).map(Secret).map_err(|_| err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_binding() {
        let k = SecretsKey::from_hex(&"ab".repeat(32)).unwrap();
        let (n, s) = k.seal("w1", "API_KEY", "s3cret").unwrap();
        assert_eq!(k.open("w1", "API_KEY", &n, &s).unwrap().expose(), "s3cret");
        assert!(
            k.open("w2", "API_KEY", &n, &s).is_err(),
            "bound to its worker"
        );
        assert!(k.open("w1", "OTHER", &n, &s).is_err(), "bound to its name");
        let other = SecretsKey::from_hex(&"cd".repeat(32)).unwrap();
        assert!(other.open("w1", "API_KEY", &n, &s).is_err());
        assert_eq!(
            SecretsKey::from_hex("abc").unwrap_err(),
            SecretsError::BadKey
        );
        assert_eq!(format!("{:?}", Secret::new("x")), "Secret(***)");
    }
}
