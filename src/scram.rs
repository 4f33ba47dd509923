//! SCRAM-SHA-256 password verifiers, as PostgreSQL stores them.
//!
//! The pooler's user list and PostgreSQL must hold the *same* verifier for a login, so that the
//! pooler can pass a client's SCRAM proof through to the server. Both sides are written by stackctl
//! from the plain password in `.env`, so the salt is derived, not random: PBKDF2 of the password
//! with the role name, at the same 4096 iterations as the verifier itself. Rotating the password
//! therefore rotates the salt, and the derived salt is no cheaper to attack than the verifier.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const ITERATIONS: u32 = 4096;

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// The verifier for `role` with `password`: `SCRAM-SHA-256$4096:salt$StoredKey:ServerKey`.
pub fn verifier(role: &str, password: &str) -> String {
    let mut salt_full = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(
        password.as_bytes(),
        format!("stackctl-scram-salt:{role}").as_bytes(),
        ITERATIONS,
        &mut salt_full,
    );
    let salt = &salt_full[..16];
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, ITERATIONS, &mut salted);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${ITERATIONS}:{}${}:{}",
        B64.encode(salt),
        B64.encode(stored_key),
        B64.encode(server_key)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_is_stable_and_shaped_like_postgres() {
        let a = verifier("app", "pw");
        assert_eq!(a, verifier("app", "pw"));
        assert_ne!(a, verifier("app2", "pw"));
        assert_ne!(a, verifier("app", "pw2"));
        let rest = a.strip_prefix("SCRAM-SHA-256$4096:").unwrap();
        let (salt, keys) = rest.split_once('$').unwrap();
        assert_eq!(B64.decode(salt).unwrap().len(), 16);
        let (stored, server) = keys.split_once(':').unwrap();
        assert_eq!(B64.decode(stored).unwrap().len(), 32);
        assert_eq!(B64.decode(server).unwrap().len(), 32);
    }

    /// RFC 7677's test vector fixes the key derivation (its salt is given, ours derived).
    #[test]
    fn derivation_matches_rfc7677() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(b"pencil", &salt, 4096, &mut salted);
        let server_key = hmac(&salted, b"Server Key");
        let client_key = hmac(&salted, b"Client Key");
        let auth = b"n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let server_sig = hmac(&server_key, auth);
        assert_eq!(
            B64.encode(server_sig),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let client_sig = hmac(&Sha256::digest(client_key), auth);
        let proof: Vec<u8> = client_key
            .iter()
            .zip(client_sig)
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(
            B64.encode(proof),
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
    }
}
