//! Token records in `api_tokens`: created, listed, revoked, and looked up by hash.
//!
//! On disk: one row per token with its hash, never the token itself. Revoking sets
//! `revoked_at`; the row stays so an audit can tell which token did what.

use std::sync::Arc;

use super::{hash_token, new_token, random_hex, Role};
use crate::clock::now_ms;
use crate::records::{DbError, Fields, RecordsDb};

/// A token as listed: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub token_id: String,
    pub name: String,
    pub role: Role,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; absent while the token is valid.
    pub revoked_at: Option<String>,
}

#[derive(Clone)]
pub struct TokenStore {
    db: Arc<RecordsDb>,
    revocations: super::Revocations,
}

impl TokenStore {
    pub fn new(db: Arc<RecordsDb>) -> TokenStore {
        TokenStore {
            revocations: super::Revocations::new(db.clone()),
            db,
        }
    }

    /// Revoked tokens, for connections that outlive their authentication.
    pub fn revocations(&self) -> &super::Revocations {
        &self.revocations
    }

    /// Creates a token; returns its record and the secret, which is shown this once.
    pub async fn create(&self, name: &str, role: Role) -> Result<(TokenInfo, String), DbError> {
        let secret = new_token().map_err(|e| DbError::ColumnType(format!("random: {e}")))?;
        let token_id = random_hex(6).map_err(|e| DbError::ColumnType(format!("random: {e}")))?;
        let now = now_ms();
        self.db
            .execute(
                "INSERT INTO api_tokens (token_id, name, role, hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
                vec![
                    token_id.clone().into(),
                    name.into(),
                    role.as_str().into(),
                    hash_token(&secret).into(),
                    now.into(),
                ],
            )
            .await?;
        let info = TokenInfo {
            token_id,
            name: name.to_string(),
            role,
            created_at: crate::clock::rfc3339(now),
            revoked_at: None,
        };
        Ok((info, secret))
    }

    /// Every token, oldest first, revoked ones included.
    pub async fn list(&self) -> Result<Vec<TokenInfo>, DbError> {
        let rows = self
            .db
            .query(
                "SELECT token_id, name, role, created_at, revoked_at FROM api_tokens \
                 ORDER BY created_at, token_id",
                vec![],
            )
            .await?;
        rows.into_iter()
            .map(|r| {
                let f = Fields::of(&r, "api_tokens");
                Ok(TokenInfo {
                    token_id: f.text(0, "token_id")?,
                    name: f.text(1, "name")?,
                    role: f.parsed(2, "role", |s| s.parse().ok())?,
                    created_at: crate::clock::rfc3339(f.int(3, "created_at")?),
                    revoked_at: f.opt_int(4, "revoked_at")?.map(crate::clock::rfc3339),
                })
            })
            .collect()
    }

    /// Revokes a token; false when no valid token has that id.
    pub async fn revoke(&self, token_id: &str) -> Result<bool, DbError> {
        let n = self
            .db
            .execute(
                "UPDATE api_tokens SET revoked_at = $1 WHERE token_id = $2 AND revoked_at IS NULL",
                vec![now_ms().into(), token_id.into()],
            )
            .await?;
        if n > 0 {
            self.revocations.revoked(token_id);
        }
        Ok(n > 0)
    }

    /// The id and role of a valid (unrevoked) token.
    pub async fn verify(&self, secret: &str) -> Result<Option<(String, Role)>, DbError> {
        if !secret.starts_with(super::TOKEN_PREFIX) {
            return Ok(None);
        }
        let rows = self
            .db
            .query(
                "SELECT token_id, role FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL",
                vec![hash_token(secret).into()],
            )
            .await?;
        rows.first()
            .map(|r| {
                let f = Fields::of(r, "api_tokens");
                Ok((
                    f.text(0, "token_id")?,
                    f.parsed(1, "role", |s| s.parse().ok())?,
                ))
            })
            .transpose()
    }
}
