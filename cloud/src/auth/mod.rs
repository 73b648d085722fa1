//! Bearer tokens with three roles.
//!
//! - **viewer** reads everything the API serves;
//! - **operator** also acknowledges and resolves alerts and sends commands;
//! - **admin** also manages alert rules and tokens.
//!
//! A token is `flk_` followed by 64 hex digits: 32 bytes from the operating system's random
//! source. Only its SHA-256 is stored. A slow password hash (argon2, bcrypt) exists to make
//! guessing a low-entropy secret expensive; a 256-bit random token cannot be guessed whatever
//! the hash costs, so a fast hash loses nothing and lets every request find its token by an
//! indexed lookup of the hash. A database leak reveals hashes only, which do not authenticate.
//!
//! Requests without a valid token get 401; a valid token whose role is below what the route
//! needs gets 403. The WebSocket applies the same rule before it upgrades. Failed
//! authentications are throttled per client address (429 with `Retry-After`) and logged at
//! most once a second ([`AuthThrottle`]).

pub mod cli;
mod guard;
mod revocations;
mod throttle;
mod tokens;

pub use guard::{admit, bearer, client_of, cors, require, Caller, Cors, Guard};
pub use revocations::{Revocations, Revoked};
pub use throttle::AuthThrottle;
pub use tokens::{TokenInfo, TokenStore};

use sha2::{Digest, Sha256};

/// What a token may do. Ordered: each role may do everything the previous one may.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role {other:?}: expected viewer, operator or admin"
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The prefix every token starts with, so a leaked token is recognisable in logs and scanners.
pub const TOKEN_PREFIX: &str = "flk_";

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// `n` random bytes from the operating system, hex-encoded.
pub(crate) fn random_hex(n: usize) -> Result<String, getrandom::Error> {
    let mut buf = vec![0u8; n];
    getrandom::getrandom(&mut buf)?;
    Ok(hex(&buf))
}

/// A new secret token.
pub fn new_token() -> Result<String, getrandom::Error> {
    Ok(format!("{TOKEN_PREFIX}{}", random_hex(32)?))
}

/// What is stored for a token: its SHA-256, hex.
pub fn hash_token(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hash_stably() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 64);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&b));
        // SHA-256 of "abc", FIPS 180-2 appendix B.1.
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn roles_are_ordered_and_parse() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        for r in [Role::Viewer, Role::Operator, Role::Admin] {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
