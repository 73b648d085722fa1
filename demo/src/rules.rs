//! The demo's alert rules (`alert-rules.toml`), installed when the database has none, so a
//! second start keeps whatever the operator changed through the API.

use std::sync::Arc;

use fieldlink_cloud::alerts::{AlertRecords, RuleSpec};
use fieldlink_cloud::records::DbError;
use fieldlink_cloud::records::RecordsDb;
use fieldlink_cloud::store::StoreSpec;

/// The rules file shipped with the demo.
pub const ALERT_RULES_TOML: &str = include_str!("../alert-rules.toml");

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("alert-rules.toml: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("alert rule {name:?}: {reason}")]
    Invalid { name: String, reason: String },
    #[error("alert rules database: {0}")]
    Db(#[from] DbError),
}

#[derive(serde::Deserialize)]
struct RulesFile {
    rules: Vec<RuleSpec>,
}

/// The shipped rules, parsed and checked as the API would check them.
pub fn shipped() -> Result<Vec<RuleSpec>, RulesError> {
    let file: RulesFile = toml::from_str(ALERT_RULES_TOML)?;
    for rule in &file.rules {
        fieldlink_cloud::alerts::engine::validate(rule).map_err(|reason| RulesError::Invalid {
            name: rule.name.clone(),
            reason,
        })?;
    }
    Ok(file.rules)
}

/// Installs the shipped rules when the (migrated) database has no rule; returns how many.
pub async fn install_if_none(spec: &StoreSpec) -> Result<usize, RulesError> {
    let records = AlertRecords::new(Arc::new(RecordsDb::open(spec).await?));
    if !records.rules().await?.is_empty() {
        return Ok(0);
    }
    let rules = shipped()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    for (i, rule) in rules.iter().enumerate() {
        records
            .insert_rule(&format!("demo-rule-{}", i + 1), rule, now)
            .await?;
    }
    Ok(rules.len())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shipped_rules_are_valid() {
        let rules = super::shipped().unwrap();
        assert_eq!(rules.len(), 2);
        assert!(rules
            .iter()
            .all(|r| r.gateway.as_deref() == Some("demo-gw")));
    }
}
