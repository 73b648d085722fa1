//! A configuration applied from the cloud (`apply_config`), kept in the state directory.
//!
//! The operator's file (`/etc/fieldlink/agent.toml`) belongs to the operator and is read-only to
//! the service (`ProtectSystem=strict`), so an applied document never overwrites it.
//!
//! On disk: `<state_dir>/applied.toml`, the applied TOML document, whose first line records the
//! fingerprint of the operator's file at the moment of applying:
//! `# fieldlink-agent: applied over <fingerprint>`. It is written whole or not at all (temporary
//! file, fsync, rename, fsync of the directory), so a crash leaves the old copy or the new one.
//!
//! Which configuration is in force, at start and on SIGHUP:
//! - no applied copy: the operator's file;
//! - an applied copy whose recorded fingerprint matches the operator's file as it is now: the
//!   applied copy (the operator has not touched the file since);
//! - the operator's file changed since: the file wins, the newest instruction; the applied copy
//!   is renamed `applied.toml.superseded`;
//! - an applied copy that no longer loads or validates (damaged, or an upgrade stopped accepting
//!   it): the file is used and the copy is renamed `applied.toml.rejected`. A bad copy never
//!   keeps the agent from starting.
//!
//! Deleting `applied.toml` and reloading returns the agent to the operator's file.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{fingerprint, load, parse, AgentConfig, ConfigError};

/// The applied copy's name inside the state directory.
pub const FILE: &str = "applied.toml";

const HEADER: &str = "# fieldlink-agent: applied over ";

/// Which document a configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The operator's file.
    File,
    /// The copy applied from the cloud, at this path.
    Applied(PathBuf),
}

/// The configuration in force and where it came from.
#[derive(Debug)]
pub struct InForce {
    pub config: AgentConfig,
    pub source: Source,
    /// What happened to an applied copy that was set aside, for the log.
    pub notice: Option<String>,
}

/// What [`inspect`] found, without changing anything on disk.
#[derive(Debug)]
enum Verdict {
    None,
    Current(Box<AgentConfig>, PathBuf),
    Superseded(PathBuf),
    Rejected(PathBuf, String),
}

/// The fingerprint of the operator's file as it is now.
pub fn file_fingerprint(path: &Path) -> std::io::Result<String> {
    Ok(fingerprint(&std::fs::read(path)?))
}

fn applied_path(file_config: &AgentConfig) -> PathBuf {
    file_config.state_dir.join(FILE)
}

fn inspect(path: &Path, file_config: &AgentConfig) -> Verdict {
    let applied = applied_path(file_config);
    let text = match std::fs::read_to_string(&applied) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Verdict::None,
        Err(e) => return Verdict::Rejected(applied, format!("unreadable: {e}")),
    };
    let Some(base) = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix(HEADER))
        .map(str::trim)
    else {
        return Verdict::Rejected(
            applied,
            "its first line is not the applied-over header".into(),
        );
    };
    match file_fingerprint(path) {
        Ok(now) if now == base => {}
        _ => return Verdict::Superseded(applied),
    }
    match parse(&text) {
        Ok(c) if c.state_dir == file_config.state_dir && c.gateway == file_config.gateway => {
            Verdict::Current(Box::new(c), applied)
        }
        Ok(_) => Verdict::Rejected(
            applied,
            "it names another gateway or state directory than the file".into(),
        ),
        Err(e) => Verdict::Rejected(applied, e.to_string()),
    }
}

/// Loads the configuration in force (see the module docs), setting aside an applied copy that
/// no longer applies. Errors are the operator's file's own.
pub fn load_in_force(path: &Path) -> Result<InForce, ConfigError> {
    let file_config = load(path)?;
    let (config, source, notice) = match inspect(path, &file_config) {
        Verdict::None => (file_config, Source::File, None),
        Verdict::Current(c, p) => (*c, Source::Applied(p), None),
        Verdict::Superseded(p) => {
            let aside = set_aside(&p, "superseded");
            let notice = format!(
                "{} changed after a configuration was applied from the cloud; the file is in \
                 force and the applied copy was moved to {aside}",
                path.display()
            );
            (file_config, Source::File, Some(notice))
        }
        Verdict::Rejected(p, why) => {
            let aside = set_aside(&p, "rejected");
            let notice = format!(
                "the configuration applied from the cloud ({}) is not usable ({why}); {} is in \
                 force and the applied copy was moved to {aside}",
                p.display(),
                path.display()
            );
            (file_config, Source::File, Some(notice))
        }
    };
    Ok(InForce {
        config,
        source,
        notice,
    })
}

/// What `check-config` says about an applied copy next to the file, without changing anything.
pub fn describe(path: &Path, file_config: &AgentConfig) -> Option<String> {
    match inspect(path, file_config) {
        Verdict::None => None,
        Verdict::Current(c, p) => Some(format!(
            "in force: the configuration applied from the cloud, {} (hash {}); delete it and \
             reload to return to this file",
            p.display(),
            c.hash
        )),
        Verdict::Superseded(p) => Some(format!(
            "this file changed after {} was applied from the cloud: at the next start or reload \
             the file is in force and the applied copy is set aside",
            p.display()
        )),
        Verdict::Rejected(p, why) => Some(format!(
            "{} is not usable ({why}): at the next start or reload it is set aside",
            p.display()
        )),
    }
}

fn set_aside(p: &Path, suffix: &str) -> String {
    let aside = p.with_extension(format!("toml.{suffix}"));
    match std::fs::rename(p, &aside) {
        Ok(()) => aside.display().to_string(),
        Err(e) => format!("nowhere ({e}; it stays where it is)"),
    }
}

/// Stores `text` as the applied configuration over the operator's file at `path`.
pub fn save(path: &Path, state_dir: &Path, text: &str) -> std::io::Result<PathBuf> {
    let base = file_fingerprint(path)?;
    let target = state_dir.join(FILE);
    let tmp = state_dir.join(format!("{FILE}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{HEADER}{base}")?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &target)?;
    std::fs::File::open(state_dir)?.sync_all()?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_config(dir: &Path, device: &str) -> PathBuf {
        let text = format!(
            r#"
[gateway]
id = "gw-1"
state_dir = "{state}"
[mqtt]
url = "mqtt://127.0.0.1:1883"
[journal]
path = "{state}/journal.db"
[[devices]]
name = "{device}"
transport = {{ kind = "tcp", host = "127.0.0.1", port = 502, unit_id = 1 }}
[[devices.points]]
name = "p"
table = "holding_register"
address = 0
type = "u16"
"#,
            state = dir.join("state").display()
        );
        std::fs::create_dir_all(dir.join("state")).unwrap();
        let path = dir.join("agent.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn device(c: &AgentConfig) -> &str {
        c.point_map.devices[0].name.as_str()
    }

    #[test]
    fn applied_copy_is_in_force_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), "meter");
        let state = dir.path().join("state");
        let file_text = std::fs::read_to_string(&path).unwrap();
        let applied = file_text.replace("\"meter\"", "\"meter2\"");
        save(&path, &state, &applied).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), file_text);

        let f = load_in_force(&path).unwrap();
        assert_eq!(device(&f.config), "meter2");
        assert_eq!(f.source, Source::Applied(state.join(FILE)));
        assert!(f.notice.is_none());
        assert!(describe(&path, &load(&path).unwrap())
            .unwrap()
            .starts_with("in force"));

        // The operator edits the file: it wins, and the applied copy is set aside.
        std::fs::write(&path, file_text.replace("\"meter\"", "\"meter3\"")).unwrap();
        let f = load_in_force(&path).unwrap();
        assert_eq!(device(&f.config), "meter3");
        assert_eq!(f.source, Source::File);
        assert!(f.notice.unwrap().contains("superseded"));
        assert!(!state.join(FILE).exists());
        assert!(state.join("applied.toml.superseded").exists());
        assert!(load_in_force(&path).unwrap().notice.is_none());
    }

    #[test]
    fn a_damaged_applied_copy_is_set_aside_and_the_file_used() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), "meter");
        let state = dir.path().join("state");
        let text = std::fs::read_to_string(&path).unwrap();
        save(
            &path,
            &state,
            &text.replace("address = 0", "address = 99999"),
        )
        .unwrap();
        let f = load_in_force(&path).unwrap();
        assert_eq!(device(&f.config), "meter");
        assert_eq!(f.source, Source::File);
        let notice = f.notice.unwrap();
        assert!(notice.contains("not usable"), "{notice}");
        assert!(notice.contains("address"), "names the bad key: {notice}");
        assert!(state.join("applied.toml.rejected").exists());

        // No header line: not one of ours.
        std::fs::write(state.join(FILE), &text).unwrap();
        let f = load_in_force(&path).unwrap();
        assert_eq!(f.source, Source::File);
        assert!(f.notice.unwrap().contains("header"));
    }

    #[test]
    fn an_applied_copy_for_another_gateway_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(dir.path(), "meter");
        let state = dir.path().join("state");
        let text = std::fs::read_to_string(&path).unwrap();
        save(&path, &state, &text.replace("\"gw-1\"", "\"gw-2\"")).unwrap();
        let f = load_in_force(&path).unwrap();
        assert_eq!(f.config.gateway.as_str(), "gw-1");
        assert!(f.notice.unwrap().contains("another gateway"));
    }
}
