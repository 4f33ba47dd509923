//! Worker secrets at rest: sealed with ChaCha20-Poly1305 (the `chacha20poly1305` crate) under
//! the stack's `RUNNER_SECRETS_KEY` (32 random bytes, hex, from `.env`). The additional data is
//! the worker's and the secret's name, so a sealed value moved to another row does not open.
//! Values live in memory as [`Secret`], whose `Debug` never shows them.
//!
//! Rotation: a [`SecretsKey`] may carry earlier keys (`RUNNER_SECRETS_KEY_PREVIOUS`, which
//! `stackctl init --rotate RUNNER_SECRETS_KEY` writes). Sealing always uses the current key;
//! opening tries it first, then the earlier ones, so nothing breaks while `crate::reseal` moves
//! the stored secrets to the current key.

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
        "RUNNER_SECRETS_KEY_PREVIOUS must be a comma-separated list of 64-hex-character keys (what `stackctl init --rotate RUNNER_SECRETS_KEY` writes)"
    )]
    BadPreviousKey,
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

/// The sealing key, and the earlier keys secrets may still be sealed with (newest first).
#[derive(Clone)]
pub struct SecretsKey {
    current: ChaCha20Poly1305,
    previous: Vec<ChaCha20Poly1305>,
}

/// What opening a secret took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenedWith {
    Current,
    /// An earlier key: the secret should be sealed again under the current one.
    Previous,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsKey(***)")
    }
}

fn cipher(hex_key: &str) -> Result<ChaCha20Poly1305, SecretsError> {
    let bytes = hex::decode(hex_key.trim()).map_err(|_| SecretsError::BadKey)?;
    if bytes.len() != 32 {
        return Err(SecretsError::BadKey);
    }
    Ok(ChaCha20Poly1305::new(Key::from_slice(&bytes)))
}

fn aad(worker: &str, name: &str) -> Vec<u8> {
    format!("runner-secret\0{worker}\0{name}").into_bytes()
}

impl SecretsKey {
    pub fn from_hex(text: &str) -> Result<SecretsKey, SecretsError> {
        Ok(SecretsKey {
            current: cipher(text)?,
            previous: Vec::new(),
        })
    }

    /// Adds earlier keys: a comma-separated list of hex keys (`RUNNER_SECRETS_KEY_PREVIOUS`),
    /// newest first; empty items are ignored.
    pub fn with_previous(mut self, list: &str) -> Result<SecretsKey, SecretsError> {
        for k in list.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            self.previous
                .push(cipher(k).map_err(|_| SecretsError::BadPreviousKey)?);
        }
        Ok(self)
    }

    /// Whether earlier keys were given (so stored secrets may need sealing again).
    pub fn has_previous(&self) -> bool {
        !self.previous.is_empty()
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
            .current
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
        self.open_with(worker, name, nonce, sealed).map(|(s, _)| s)
    }

    /// [`open`](Self::open), saying whether an earlier key was needed.
    pub fn open_with(
        &self,
        worker: &str,
        name: &str,
        nonce: &[u8],
        sealed: &[u8],
    ) -> Result<(Secret, OpenedWith), SecretsError> {
        let err = || SecretsError::Open {
            worker: worker.into(),
            name: name.into(),
        };
        if nonce.len() != 12 {
            return Err(err());
        }
        let aad = aad(worker, name);
        let payload = || Payload {
            msg: sealed,
            aad: &aad,
        };
        let nonce = Nonce::from_slice(nonce);
        let plain = match self.current.decrypt(nonce, payload()) {
            Ok(p) => (p, OpenedWith::Current),
            Err(_) => self
                .previous
                .iter()
                .find_map(|k| k.decrypt(nonce, payload()).ok())
                .map(|p| (p, OpenedWith::Previous))
                .ok_or_else(err)?,
        };
        String::from_utf8(plain.0)
            .map(|s| (Secret(s), plain.1))
            .map_err(|_| err())
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

        // Rotation: the new key opens what the old one sealed only when given it as previous.
        let rotated = SecretsKey::from_hex(&"cd".repeat(32))
            .unwrap()
            .with_previous(&format!(" {}, ,{}", "ef".repeat(32), "ab".repeat(32)))
            .unwrap();
        assert!(rotated.has_previous());
        let (v, how) = rotated.open_with("w1", "API_KEY", &n, &s).unwrap();
        assert_eq!((v.expose(), how), ("s3cret", OpenedWith::Previous));
        let (n2, s2) = rotated.seal("w1", "API_KEY", "s3cret").unwrap();
        assert_eq!(
            rotated.open_with("w1", "API_KEY", &n2, &s2).unwrap().1,
            OpenedWith::Current
        );
        assert!(
            k.open("w1", "API_KEY", &n2, &s2).is_err(),
            "sealed under the new key"
        );
        assert_eq!(
            SecretsKey::from_hex(&"ab".repeat(32))
                .unwrap()
                .with_previous("xyz")
                .unwrap_err(),
            SecretsError::BadPreviousKey
        );
    }
}
