//! The SQL files in the repository's `migrations/` folder, compiled into the binary so a
//! deployed service needs nothing beside it. See `migrations/README.md` for the naming rules.

/// Which PostgreSQL flavour a migration targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Both plain PostgreSQL and TimescaleDB.
    Any,
    Plain,
    Timescale,
}

/// One versioned SQL file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub flavour: Flavour,
    pub sql: &'static str,
}

impl Migration {
    /// Whether the file asks to run outside a transaction.
    pub fn no_transaction(&self) -> bool {
        self.sql.starts_with("-- fieldlink:no-transaction")
    }

    /// The statements of a no-transaction file: it holds no function bodies, so a `;` at the end
    /// of a line ends a statement.
    pub fn statements(&self) -> Vec<&'static str> {
        self.sql
            .split(";\n")
            .map(str::trim)
            .filter(|s| {
                s.lines()
                    .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"))
            })
            .collect()
    }
}

pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "schema",
        flavour: Flavour::Any,
        sql: include_str!("../../../migrations/postgres/0001_schema.sql"),
    },
    Migration {
        version: 2,
        name: "rollup",
        flavour: Flavour::Plain,
        sql: include_str!("../../../migrations/postgres/0002_rollup.plain.sql"),
    },
    Migration {
        version: 2,
        name: "hypertable",
        flavour: Flavour::Timescale,
        sql: include_str!("../../../migrations/postgres/0002_hypertable.timescale.sql"),
    },
    Migration {
        version: 3,
        name: "gateway_boot_epoch",
        flavour: Flavour::Any,
        sql: include_str!("../../../migrations/postgres/0003_gateway_boot_epoch.sql"),
    },
    // 0100 and up: the API's tables (tokens, commands, alerts), numbered apart from ingest's.
    Migration {
        version: 100,
        name: "api_tokens",
        flavour: Flavour::Any,
        sql: include_str!("../../../migrations/postgres/0100_api_tokens.sql"),
    },
    Migration {
        version: 101,
        name: "commands",
        flavour: Flavour::Any,
        sql: include_str!("../../../migrations/postgres/0101_commands.sql"),
    },
    Migration {
        version: 102,
        name: "alerts",
        flavour: Flavour::Any,
        sql: include_str!("../../../migrations/postgres/0102_alerts.sql"),
    },
    Migration {
        version: 103,
        name: "alert_states",
        flavour: Flavour::Any,
        sql: include_str!("../../../migrations/postgres/0103_alert_states.sql"),
    },
    Migration {
        version: 104,
        name: "notifications",
        flavour: Flavour::Any,
        sql: include_str!("../../../migrations/postgres/0104_notifications.sql"),
    },
    // 0140 and up: device health and gateway registration.
    Migration {
        version: 140,
        name: "device_health",
        flavour: Flavour::Any,
        sql: include_str!("../../../migrations/postgres/0140_device_health.sql"),
    },
    Migration {
        version: 200,
        name: "gateway_births",
        flavour: Flavour::Any,
        sql: include_str!("../../../migrations/postgres/0200_gateway_births.sql"),
    },
    Migration {
        version: 210,
        name: "dead_letter_bounds",
        flavour: Flavour::Any,
        sql: include_str!("../../../migrations/postgres/0210_dead_letter_bounds.sql"),
    },
    Migration {
        version: 300,
        name: "parked_telemetry",
        flavour: Flavour::Any,
        sql: include_str!("../../../migrations/postgres/0300_parked_telemetry.sql"),
    },
    Migration {
        version: 301,
        name: "gateway_quota",
        flavour: Flavour::Any,
        sql: include_str!("../../../migrations/postgres/0301_gateway_quota.sql"),
    },
];

pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "schema",
        flavour: Flavour::Any,
        sql: include_str!("../../../migrations/sqlite/0001_schema.sql"),
    },
    Migration {
        version: 2,
        name: "gateway_boot_epoch",
        flavour: Flavour::Any,
        sql: include_str!("../../../migrations/sqlite/0002_gateway_boot_epoch.sql"),
    },
    Migration {
        version: 100,
        name: "api_tokens",
        flavour: Flavour::Any,
        sql: include_str!("../../../migrations/sqlite/0100_api_tokens.sql"),
    },
    Migration {
        version: 101,
        name: "commands",
        flavour: Flavour::Any,
        sql: include_str!("../../../migrations/sqlite/0101_commands.sql"),
    },
    Migration {
        version: 102,
        name: "alerts",
        flavour: Flavour::Any,
        sql: include_str!("../../../migrations/sqlite/0102_alerts.sql"),
    },
    Migration {
        version: 103,
        name: "alert_states",
        flavour: Flavour::Any,
        sql: include_str!("../../../migrations/sqlite/0103_alert_states.sql"),
    },
    Migration {
        version: 104,
        name: "notifications",
        flavour: Flavour::Any,
        sql: include_str!("../../../migrations/sqlite/0104_notifications.sql"),
    },
    Migration {
        version: 140,
        name: "device_health",
        flavour: Flavour::Any,
        sql: include_str!("../../../migrations/sqlite/0140_device_health.sql"),
    },
    Migration {
        version: 200,
        name: "gateway_births",
        flavour: Flavour::Any,
        sql: include_str!("../../../migrations/sqlite/0200_gateway_births.sql"),
    },
    Migration {
        version: 210,
        name: "dead_letter_bounds",
        flavour: Flavour::Any,
        sql: include_str!("../../../migrations/sqlite/0210_dead_letter_bounds.sql"),
    },
    Migration {
        version: 300,
        name: "parked_telemetry",
        flavour: Flavour::Any,
        sql: include_str!("../../../migrations/sqlite/0300_parked_telemetry.sql"),
    },
    Migration {
        version: 301,
        name: "gateway_quota",
        flavour: Flavour::Any,
        sql: include_str!("../../../migrations/sqlite/0301_gateway_quota.sql"),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_rise_per_flavour() {
        for flavour in [Flavour::Plain, Flavour::Timescale] {
            let versions: Vec<i32> = POSTGRES
                .iter()
                .filter(|m| m.flavour == Flavour::Any || m.flavour == flavour)
                .map(|m| m.version)
                .collect();
            assert!(
                versions.windows(2).all(|w| w[0] < w[1]),
                "{flavour:?}: {versions:?}"
            );
        }
    }

    #[test]
    fn no_transaction_files_split_into_statements() {
        let ts = POSTGRES
            .iter()
            .find(|m| m.flavour == Flavour::Timescale)
            .unwrap();
        assert!(ts.no_transaction());
        let stmts = ts.statements();
        assert_eq!(stmts.len(), 6, "{stmts:#?}");
        assert!(stmts.iter().all(|s| !s.ends_with(';')));
    }
}
