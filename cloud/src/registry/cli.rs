//! `fieldlink-cloud gateway register|list|remove`: the admin routes' operations for operators
//! with a shell, against the configured database (migrated first).

use std::io::Write;

use crate::clock::rfc3339;
use crate::store::{Store, StoreSpec, Unregistered};
use crate::terminal::cell;

/// A gateway subcommand, parsed.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum GatewayCommand {
    /// Register a gateway, so it is accepted when `ingest.require_registration` is true.
    Register {
        /// The gateway id, as in the agent's configuration (`gateway.id`).
        gateway: String,
        /// A name for people, up to 200 characters.
        #[arg(long)]
        name: Option<String>,
    },
    /// List every gateway in the registry, registered or not.
    List,
    /// Withdraw a gateway's registration; its data is kept.
    Remove { gateway: String },
}

/// Migrates the database, then runs the subcommand, writing to `out`.
pub async fn run(
    spec: &StoreSpec,
    cmd: GatewayCommand,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let store = Store::open(spec).await?;
    store.migrate().await?;
    match cmd {
        GatewayCommand::Register { gateway, name } => {
            let new = super::register(&store, &gateway, name.as_deref()).await?;
            let gateway = cell(&gateway);
            if new {
                writeln!(out, "registered {gateway}")?;
            } else {
                writeln!(out, "{gateway} was already registered")?;
            }
        }
        GatewayCommand::List => {
            for g in store.gateways().await? {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}",
                    cell(g.gateway.as_str()),
                    if g.registered {
                        "registered"
                    } else {
                        "unregistered"
                    },
                    if g.online { "online" } else { "offline" },
                    g.last_seen_ms
                        .map_or("never seen".to_string(), |ms| format!(
                            "last seen {}",
                            rfc3339(ms)
                        )),
                    cell(&g.name.unwrap_or_default()),
                )?;
            }
        }
        GatewayCommand::Remove { gateway } => match super::remove(&store, &gateway)
            .await
            .map_err(|e| anyhow::anyhow!(cell(&e.to_string())))?
        {
            Unregistered::NotRegistered => {
                anyhow::bail!("gateway {gateway} is not registered")
            }
            Unregistered::Deleted => writeln!(out, "removed {gateway} (it had never connected)")?,
            Unregistered::Kept => writeln!(
                out,
                "{gateway} is no longer registered; its devices, series and history are kept"
            )?,
        },
    }
    Ok(())
}
