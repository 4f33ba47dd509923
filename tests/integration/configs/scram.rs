//! A SCRAM-SHA-256 verifier checked against a password, as PostgreSQL does, and proved on the
//! RFC 7677 test vector.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Checks a PostgreSQL SCRAM-SHA-256 verifier against a password, as a server does (RFC 5802 /
/// RFC 7677): SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, i); StoredKey =
/// SHA-256(HMAC(SaltedPassword, "Client Key")); ServerKey = HMAC(SaltedPassword, "Server Key").
pub(super) fn scram_verifies(verifier: &str, password: &str) -> bool {
    let hmac = |key: &[u8], msg: &[u8]| {
        let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
        m.update(msg);
        m.finalize().into_bytes().to_vec()
    };
    let rest = verifier
        .strip_prefix("SCRAM-SHA-256$")
        .expect("SCRAM-SHA-256$ prefix");
    let (iter_salt, keys) = rest.split_once('$').expect("iterations:salt$keys");
    let (iters, salt) = iter_salt.split_once(':').unwrap();
    let (stored, server) = keys.split_once(':').unwrap();
    let iters: u32 = iters.parse().unwrap();
    assert_eq!(iters, 4096);
    let salt = B64.decode(salt).unwrap();
    assert!(salt.len() >= 16, "salt too short");
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iters, &mut salted);
    let stored_key = Sha256::digest(hmac(&salted, b"Client Key"));
    let server_key = hmac(&salted, b"Server Key");
    B64.decode(stored).unwrap() == stored_key.as_slice()
        && B64.decode(server).unwrap() == server_key
}

#[test]
fn scram_check_matches_the_rfc_7677_vector() {
    // RFC 7677 section 3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096.
    // Its ServerKey is not printed in the RFC, but the ServerSignature is; derive the keys here
    // and check the signature to prove `scram_verifies` computes the same keys as a server.
    let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(b"pencil", &salt, 4096, &mut salted);
    let mac = |key: &[u8], msg: &[u8]| {
        let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
        m.update(msg);
        m.finalize().into_bytes().to_vec()
    };
    let stored = Sha256::digest(mac(&salted, b"Client Key"));
    let server = mac(&salted, b"Server Key");
    let auth = b"n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    assert_eq!(
        B64.encode(mac(&server, auth)),
        "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    );
    let v = format!(
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==${}:{}",
        B64.encode(stored),
        B64.encode(&server)
    );
    assert!(scram_verifies(&v, "pencil"));
    assert!(!scram_verifies(&v, "pencil2"));
}
