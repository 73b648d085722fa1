//! Configuration errors: each names the key it is about and what is wrong with it.

use std::fmt;

/// One problem with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Where, as a key path: `mqtt.url`, `devices[2].points[5].address`.
    pub path: String,
    pub problem: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file (or the environment) could not be read or parsed at all.
    #[error("cannot load configuration: {0}")]
    Load(String),
    /// It parsed, but some values are invalid; every problem found is listed.
    #[error("invalid configuration:\n{}", list(.0))]
    Invalid(Vec<ConfigProblem>),
}

fn list(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigError {
    /// The problems, for tests and tools.
    pub fn problems(&self) -> &[ConfigProblem] {
        match self {
            ConfigError::Load(_) => &[],
            ConfigError::Invalid(p) => p,
        }
    }
}

/// Collects problems while validating.
#[derive(Debug, Default)]
pub(crate) struct Problems(pub(crate) Vec<ConfigProblem>);

impl Problems {
    pub(crate) fn push(&mut self, path: impl Into<String>, problem: impl Into<String>) {
        self.0.push(ConfigProblem {
            path: path.into(),
            problem: problem.into(),
        });
    }
}
