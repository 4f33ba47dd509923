//! Tokens, permission sets and the names and passwords derived from them. Pure functions.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

/// Every token starts with this, so secret scanners and humans recognise it.
pub const PREFIX: &str = "pg_";
/// Characters of a token kept in clear for `token list` (prefix + 8).
pub const DISPLAY_LEN: usize = PREFIX.len() + 8;

/// A new token: `pg_` + 32 random bytes in URL-safe base64 (43 characters).
pub fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// What is stored: HMAC-SHA256 keyed with the pepper. Without the pepper a stolen table is useless.
pub fn hash(pepper: &[u8], token: &str) -> Vec<u8> {
    keyed(pepper, token.as_bytes())
}

/// The part of a token shown by `token list`.
pub fn display_prefix(token: &str) -> String {
    token.chars().take(DISPLAY_LEN).collect()
}

fn keyed(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The permissions a token carries. DDL means "acts as the owner of the tenant's schema", which
/// PostgreSQL grants every DML right too, so a DDL token must list them all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Permissions {
    pub select: bool,
    pub insert: bool,
    pub update: bool,
    pub delete: bool,
    pub ddl: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PermissionsError {
    #[error("unknown permission {0:?} (use SELECT, INSERT, UPDATE, DELETE, DDL)")]
    Unknown(String),
    #[error("no permission given")]
    Empty,
    #[error(
        "DDL makes the token owner of the tenant's schema, which includes every DML right: pass SELECT,INSERT,UPDATE,DELETE,DDL"
    )]
    DdlAlone,
}

impl Permissions {
    /// Parses `SELECT,INSERT` (case-insensitive, commas or spaces).
    pub fn parse(text: &str) -> Result<Self, PermissionsError> {
        let mut p = Permissions::default();
        for word in text.split([',', ' ']).filter(|w| !w.is_empty()) {
            match word.to_ascii_uppercase().as_str() {
                "SELECT" => p.select = true,
                "INSERT" => p.insert = true,
                "UPDATE" => p.update = true,
                "DELETE" => p.delete = true,
                "DDL" => p.ddl = true,
                _ => return Err(PermissionsError::Unknown(word.to_string())),
            }
        }
        p.validate()?;
        Ok(p)
    }

    pub fn from_list<S: AsRef<str>>(list: &[S]) -> Result<Self, PermissionsError> {
        let joined: Vec<&str> = list.iter().map(|s| s.as_ref()).collect();
        Self::parse(&joined.join(","))
    }

    fn validate(&self) -> Result<(), PermissionsError> {
        if !(self.select || self.insert || self.update || self.delete || self.ddl) {
            return Err(PermissionsError::Empty);
        }
        if self.ddl && !(self.select && self.insert && self.update && self.delete) {
            return Err(PermissionsError::DdlAlone);
        }
        Ok(())
    }

    pub fn to_list(self) -> Vec<&'static str> {
        let mut v = Vec::new();
        for (on, name) in [
            (self.select, "SELECT"),
            (self.insert, "INSERT"),
            (self.update, "UPDATE"),
            (self.delete, "DELETE"),
            (self.ddl, "DDL"),
        ] {
            if on {
                v.push(name);
            }
        }
        v
    }

    /// Only reads: the transaction is `READ ONLY`.
    pub fn read_only(self) -> bool {
        self.select && !(self.insert || self.update || self.delete || self.ddl)
    }

    /// The code in the role names: `owner` for DDL, else the letters s, i, u, d held.
    pub fn code(self) -> String {
        if self.ddl {
            return "owner".into();
        }
        let mut c = String::new();
        for (on, l) in [
            (self.select, 's'),
            (self.insert, 'i'),
            (self.update, 'u'),
            (self.delete, 'd'),
        ] {
            if on {
                c.push(l);
            }
        }
        c
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_list().join(","))
    }
}

/// Is this a valid tenant name (also a schema name and part of role names)?
pub fn valid_tenant(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 31
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
        && !name.starts_with("pg_")
        && !matches!(name, "public" | "postgate" | "information_schema")
}

/// The NOLOGIN role a token's requests run as.
pub fn role_name(tenant: &str, p: Permissions) -> String {
    format!("pgt_{tenant}_{}", p.code())
}

/// The LOGIN role postgate connects as for that permission set.
pub fn login_name(tenant: &str, p: Permissions) -> String {
    format!("{}_login", role_name(tenant, p))
}

/// The password of a tenant login, derived from the pepper: nothing else to store or rotate apart.
pub fn login_password(pepper: &[u8], login: &str) -> String {
    URL_SAFE_NO_PAD.encode(keyed(pepper, format!("postgate-login:{login}").as_bytes()))
}

/// A SCRAM-SHA-256 verifier as PostgreSQL stores it, so the clear password never reaches the server.
pub fn scram_verifier(password: &str) -> String {
    const ITERATIONS: u32 = 4096;
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, ITERATIONS, &mut salted);
    let client_key = keyed(&salted, b"Client Key");
    let stored_key = Sha256::digest(&client_key);
    let server_key = keyed(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${ITERATIONS}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    )
}

/// `30d`, `12h`, `15m`, `45s` → seconds.
pub fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    let (num, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_prefixed() {
        let a = generate();
        let b = generate();
        assert!(a.starts_with(PREFIX));
        assert_eq!(a.len(), 3 + 43);
        assert_ne!(a, b);
        assert_ne!(hash(b"k", &a), hash(b"other", &a));
        assert_eq!(display_prefix(&a).len(), DISPLAY_LEN);
    }

    #[test]
    fn permissions_parse_and_code() {
        let p = Permissions::parse("select, insert").unwrap();
        assert_eq!(p.code(), "si");
        assert!(!p.read_only());
        assert!(Permissions::parse("SELECT").unwrap().read_only());
        assert_eq!(Permissions::parse("DDL"), Err(PermissionsError::DdlAlone));
        assert_eq!(Permissions::parse(""), Err(PermissionsError::Empty));
        assert!(matches!(
            Permissions::parse("SELECT,DROP"),
            Err(PermissionsError::Unknown(_))
        ));
        let all = Permissions::parse("SELECT,INSERT,UPDATE,DELETE,DDL").unwrap();
        assert_eq!(all.code(), "owner");
        assert_eq!(all.to_string(), "SELECT,INSERT,UPDATE,DELETE,DDL");
    }

    #[test]
    fn names_and_durations() {
        assert!(valid_tenant("acme_1"));
        for bad in ["", "1a", "Acme", "a-b", "pg_x", "public", &"a".repeat(32)] {
            assert!(!valid_tenant(bad), "{bad}");
        }
        assert_eq!(parse_duration("30d"), Some(30 * 86_400));
        assert_eq!(parse_duration("5m"), Some(300));
        assert_eq!(parse_duration("d"), None);
        assert_eq!(parse_duration("5y"), None);
        assert!(scram_verifier("x").starts_with("SCRAM-SHA-256$4096:"));
    }
}
