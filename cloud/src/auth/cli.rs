//! `fieldlink-cloud token create|list|revoke`: the same operations as the admin routes, for
//! bootstrapping the first admin token and for operators with a shell.

use std::io::Write;
use std::sync::Arc;

use super::{Role, TokenStore};
use crate::records::RecordsDb;
use crate::store::{Store, StoreSpec};
use crate::terminal::cell;

/// A token subcommand, parsed.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token and print its secret (shown once).
    Create {
        /// What the token is for.
        #[arg(long)]
        name: String,
        /// viewer, operator or admin.
        #[arg(long)]
        role: Role,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token by id.
    Revoke { token_id: String },
}

impl clap::ValueEnum for Role {
    fn value_variants<'a>() -> &'a [Self] {
        &[Role::Viewer, Role::Operator, Role::Admin]
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

/// Migrates the database, then runs the subcommand, writing to `out`.
pub async fn run(spec: &StoreSpec, cmd: TokenCommand, out: &mut impl Write) -> anyhow::Result<()> {
    let store = Store::open(spec).await?;
    store.migrate().await?;
    let tokens = TokenStore::new(Arc::new(RecordsDb::open(spec).await?));
    match cmd {
        TokenCommand::Create { name, role } => {
            let (info, secret) = tokens.create(&name, role).await?;
            writeln!(out, "{secret}")?;
            writeln!(
                out,
                "# token id {} ({}, {}); the secret above is not shown again",
                cell(&info.token_id),
                cell(&info.name),
                info.role
            )?;
        }
        TokenCommand::List => {
            for t in tokens.list().await? {
                writeln!(
                    out,
                    "{}\t{}\t{}\tcreated {}\t{}",
                    cell(&t.token_id),
                    t.role,
                    cell(&t.name),
                    t.created_at,
                    t.revoked_at
                        .map_or("valid".to_string(), |r| format!("revoked {r}"))
                )?;
            }
        }
        TokenCommand::Revoke { token_id } => {
            if !tokens.revoke(&token_id).await? {
                anyhow::bail!("no valid token with id {}", cell(&token_id));
            }
            writeln!(out, "revoked {}", cell(&token_id))?;
        }
    }
    Ok(())
}
