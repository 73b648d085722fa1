//! The demo's operator token: made at the first start, kept in the data directory (mode 0600)
//! and reused while the cloud still accepts it, so a browser that signed in stays signed in
//! across restarts.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use fieldlink_cloud::auth::{Role, TokenStore};
use fieldlink_cloud::records::DbError;
use fieldlink_cloud::records::RecordsDb;
use fieldlink_cloud::store::StoreSpec;

/// The file holding the secret, inside the data directory.
pub const TOKEN_FILE: &str = "operator-token";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token database: {0}")]
    Db(#[from] DbError),
    #[error("{path}: {source}")]
    File {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An operator token the cloud accepts: the saved one, or a new one (then saved).
pub async fn operator_token(spec: &StoreSpec, dir: &Path) -> Result<String, TokenError> {
    let tokens = TokenStore::new(Arc::new(RecordsDb::open(spec).await?));
    let path = dir.join(TOKEN_FILE);
    if let Ok(saved) = std::fs::read_to_string(&path) {
        let saved = saved.trim();
        if let Some((_, Role::Operator)) = tokens.verify(saved).await? {
            return Ok(saved.to_string());
        }
    }
    let (_, secret) = tokens
        .create("fieldlink-demo operator", Role::Operator)
        .await?;
    let file_err = |source| TokenError::File {
        path: path.clone(),
        source,
    };
    let _ = std::fs::remove_file(&path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(file_err)?;
    writeln!(file, "{secret}").map_err(file_err)?;
    Ok(secret)
}
