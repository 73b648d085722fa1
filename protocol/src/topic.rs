//! MQTT topic layout: `{prefix}/{gateway}/{kind}`.
//!
//! The prefix is configurable so that several deployments (or protocol versions) can share a
//! broker; it defaults to [`TopicPrefix::DEFAULT`]. The gateway level is an [`Ident`], so it can
//! never contain a wildcard or a separator, and parsing a topic yields the gateway and the
//! [`TopicKind`] or says exactly which level is wrong.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::limits::MAX_PREFIX_LEN;
use crate::{Ident, IdentError};

/// What a topic carries. The last topic level names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicKind {
    /// Telemetry batches, gateway → cloud, QoS 1, not retained.
    Telemetry,
    /// Birth and death, gateway → cloud, QoS 1, retained; death is the MQTT will.
    Status,
    /// Events, gateway → cloud, QoS 1, not retained.
    Events,
    /// Commands, cloud → gateway, QoS 1, not retained.
    Cmd,
    /// Command acknowledgements, gateway → cloud, QoS 1, not retained.
    Ack,
    /// Flow control, cloud → gateway, QoS 1, not retained: "slow down" when a gateway is over
    /// its quota. An agent that does not know it never subscribes, so nothing else changes.
    Control,
}

impl TopicKind {
    /// Every kind, in the order of the topic table.
    pub const ALL: [TopicKind; 6] = [
        TopicKind::Telemetry,
        TopicKind::Status,
        TopicKind::Events,
        TopicKind::Cmd,
        TopicKind::Ack,
        TopicKind::Control,
    ];

    /// The topic level that names this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            TopicKind::Telemetry => "telemetry",
            TopicKind::Status => "status",
            TopicKind::Events => "events",
            TopicKind::Cmd => "cmd",
            TopicKind::Ack => "ack",
            TopicKind::Control => "control",
        }
    }

    /// Whether the publisher sets the retain flag (only status, so that a new subscriber
    /// learns at once whether each gateway is online).
    pub fn retained(self) -> bool {
        matches!(self, TopicKind::Status)
    }

    /// Whether the gateway publishes this kind (all but commands and flow control).
    pub fn from_gateway(self) -> bool {
        !matches!(self, TopicKind::Cmd | TopicKind::Control)
    }
}

impl fmt::Display for TopicKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TopicKind {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Self, TopicError> {
        TopicKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| TopicError::UnknownKind {
                found: s.to_string(),
            })
    }
}

/// Why a prefix, a share group or a topic was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic prefix is empty")]
    EmptyPrefix,
    #[error("topic prefix is {len} bytes long, the maximum is {max}")]
    PrefixTooLong { len: usize, max: usize },
    #[error("topic prefix {prefix:?} has an empty level (leading, trailing or double '/')")]
    EmptyPrefixLevel { prefix: String },
    #[error("topic prefix {prefix:?} contains {found:?}; wildcards, NUL and control characters are not allowed")]
    BadPrefixChar { prefix: String, found: char },
    #[error("topic prefix {prefix:?} starts with '$', which brokers reserve for system topics")]
    ReservedPrefix { prefix: String },
    #[error("topic {topic:?} does not start with the prefix {prefix:?}")]
    WrongPrefix { topic: String, prefix: String },
    #[error("topic {topic:?} has {found} levels after the prefix, expected 2 (gateway and kind)")]
    WrongLevelCount { topic: String, found: usize },
    #[error("topic {topic:?}: gateway level: {source}")]
    BadGateway { topic: String, source: IdentError },
    #[error(
        "unknown topic kind {found:?}; expected telemetry, status, events, cmd, ack or control"
    )]
    UnknownKind { found: String },
    #[error("shared subscription group: {0}")]
    BadShareGroup(IdentError),
}

/// A validated topic prefix: one or more non-empty levels without wildcards.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TopicPrefix(Arc<str>);

impl TopicPrefix {
    /// The default prefix. The `v1` level names the protocol version.
    pub const DEFAULT: &'static str = "fieldlink/v1";

    /// Validates `prefix`: 1 to [`MAX_PREFIX_LEN`] bytes, levels non-empty, no `+`, `#`, NUL
    /// or control characters, and not starting with `$`.
    pub fn new(prefix: &str) -> Result<Self, TopicError> {
        if prefix.is_empty() {
            return Err(TopicError::EmptyPrefix);
        }
        if prefix.len() > MAX_PREFIX_LEN {
            return Err(TopicError::PrefixTooLong {
                len: prefix.len(),
                max: MAX_PREFIX_LEN,
            });
        }
        if let Some(found) = prefix
            .chars()
            .find(|c| matches!(c, '+' | '#') || c.is_control())
        {
            return Err(TopicError::BadPrefixChar {
                prefix: prefix.to_string(),
                found,
            });
        }
        if prefix.split('/').any(str::is_empty) {
            return Err(TopicError::EmptyPrefixLevel {
                prefix: prefix.to_string(),
            });
        }
        if prefix.starts_with('$') {
            return Err(TopicError::ReservedPrefix {
                prefix: prefix.to_string(),
            });
        }
        Ok(TopicPrefix(Arc::from(prefix)))
    }

    /// The prefix as written, without a trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The topic a gateway publishes (or, for [`TopicKind::Cmd`], subscribes) to.
    pub fn topic(&self, gateway: &Ident, kind: TopicKind) -> String {
        format!("{}/{}/{}", self.0, gateway, kind)
    }

    /// Parses a topic under this prefix into its gateway and kind.
    pub fn parse(&self, topic: &str) -> Result<Topic, TopicError> {
        let rest = topic
            .strip_prefix(&*self.0)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| TopicError::WrongPrefix {
                topic: topic.to_string(),
                prefix: self.0.to_string(),
            })?;
        let levels: Vec<&str> = rest.split('/').collect();
        let [gateway, kind] = levels[..] else {
            return Err(TopicError::WrongLevelCount {
                topic: topic.to_string(),
                found: levels.len(),
            });
        };
        let gateway = Ident::new(gateway).map_err(|source| TopicError::BadGateway {
            topic: topic.to_string(),
            source,
        })?;
        let kind = kind.parse()?;
        Ok(Topic { gateway, kind })
    }

    /// The filter matching `kind` from every gateway: `{prefix}/+/{kind}`.
    pub fn filter(&self, kind: TopicKind) -> String {
        format!("{}/+/{}", self.0, kind)
    }

    /// The filter matching every kind from every gateway: `{prefix}/+/+`.
    pub fn filter_all(&self) -> String {
        format!("{}/+/+", self.0)
    }

    /// A shared-subscription filter (MQTT 5, and MQTT 3.1.1 on EMQX, HiveMQ, VerneMQ and
    /// Mosquitto 2): `$share/{group}/{prefix}/+/{kind}`. Cloud nodes in one group split the
    /// gateways' messages between them instead of each receiving all of them.
    pub fn shared_filter(&self, group: &str, kind: TopicKind) -> Result<String, TopicError> {
        Ident::validate(group).map_err(TopicError::BadShareGroup)?;
        Ok(format!("$share/{}/{}", group, self.filter(kind)))
    }

    /// The filters a cloud node subscribes to: every gateway-to-cloud kind, shared in `group`
    /// when one is given.
    pub fn cloud_filters(&self, group: Option<&str>) -> Result<Vec<String>, TopicError> {
        TopicKind::ALL
            .into_iter()
            .filter(|k| k.from_gateway())
            .map(|k| match group {
                Some(g) => self.shared_filter(g, k),
                None => Ok(self.filter(k)),
            })
            .collect()
    }
}

impl Default for TopicPrefix {
    fn default() -> Self {
        TopicPrefix(Arc::from(Self::DEFAULT))
    }
}

impl fmt::Display for TopicPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TopicPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl FromStr for TopicPrefix {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Self, TopicError> {
        TopicPrefix::new(s)
    }
}

/// A parsed topic: which gateway, which kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic {
    pub gateway: Ident,
    pub kind: TopicKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gw() -> Ident {
        Ident::new("gw-01").unwrap()
    }

    #[test]
    fn builds_and_parses_every_kind() {
        let p = TopicPrefix::default();
        for kind in TopicKind::ALL {
            let t = p.topic(&gw(), kind);
            assert_eq!(t, format!("fieldlink/v1/gw-01/{kind}"));
            assert_eq!(
                p.parse(&t).unwrap(),
                Topic {
                    gateway: gw(),
                    kind
                }
            );
        }
    }

    #[test]
    fn custom_prefix() {
        let p = TopicPrefix::new("plant-a/fl/v1").unwrap();
        let t = p.topic(&gw(), TopicKind::Ack);
        assert_eq!(t, "plant-a/fl/v1/gw-01/ack");
        assert_eq!(p.parse(&t).unwrap().kind, TopicKind::Ack);
        assert!(TopicPrefix::default().parse(&t).is_err());
    }

    #[test]
    fn prefix_validation() {
        assert_eq!(TopicPrefix::new(""), Err(TopicError::EmptyPrefix));
        for bad in ["/a", "a/", "a//b"] {
            assert!(
                matches!(
                    TopicPrefix::new(bad),
                    Err(TopicError::EmptyPrefixLevel { .. })
                ),
                "{bad}"
            );
        }
        for bad in ["a/+", "a/#", "a\u{0}b", "a\nb"] {
            assert!(
                matches!(TopicPrefix::new(bad), Err(TopicError::BadPrefixChar { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            TopicPrefix::new("$SYS/x"),
            Err(TopicError::ReservedPrefix { .. })
        ));
        assert!(matches!(
            TopicPrefix::new(&"a".repeat(MAX_PREFIX_LEN + 1)),
            Err(TopicError::PrefixTooLong { .. })
        ));
        assert!(TopicPrefix::new("fieldlink/v1").is_ok());
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        let p = TopicPrefix::default();
        assert!(matches!(
            p.parse("other/v1/gw/telemetry"),
            Err(TopicError::WrongPrefix { .. })
        ));
        // The prefix must end at a level boundary.
        assert!(matches!(
            p.parse("fieldlink/v10/gw/telemetry"),
            Err(TopicError::WrongPrefix { .. })
        ));
        assert!(matches!(
            p.parse("fieldlink/v1/gw"),
            Err(TopicError::WrongLevelCount { found: 1, .. })
        ));
        assert!(matches!(
            p.parse("fieldlink/v1/gw/telemetry/x"),
            Err(TopicError::WrongLevelCount { found: 3, .. })
        ));
        assert!(matches!(
            p.parse("fieldlink/v1/+/telemetry"),
            Err(TopicError::BadGateway { .. })
        ));
        assert!(matches!(
            p.parse("fieldlink/v1//telemetry"),
            Err(TopicError::BadGateway {
                source: IdentError::Empty,
                ..
            })
        ));
        assert_eq!(
            p.parse("fieldlink/v1/gw/metrics"),
            Err(TopicError::UnknownKind {
                found: "metrics".into()
            })
        );
    }

    #[test]
    fn filters() {
        let p = TopicPrefix::default();
        assert_eq!(p.filter(TopicKind::Telemetry), "fieldlink/v1/+/telemetry");
        assert_eq!(p.filter_all(), "fieldlink/v1/+/+");
        assert_eq!(
            p.shared_filter("cloud", TopicKind::Events).unwrap(),
            "$share/cloud/fieldlink/v1/+/events"
        );
        assert!(p.shared_filter("a/b", TopicKind::Events).is_err());
        assert!(p.shared_filter("", TopicKind::Events).is_err());
        let plain = p.cloud_filters(None).unwrap();
        assert_eq!(
            plain,
            [
                "fieldlink/v1/+/telemetry",
                "fieldlink/v1/+/status",
                "fieldlink/v1/+/events",
                "fieldlink/v1/+/ack"
            ]
        );
        let shared = p.cloud_filters(Some("ingest")).unwrap();
        assert!(shared.iter().all(|f| f.starts_with("$share/ingest/")));
        assert_eq!(shared.len(), 4);
    }

    #[test]
    fn kind_properties() {
        assert!(TopicKind::Status.retained());
        assert!(!TopicKind::Telemetry.retained());
        assert!(!TopicKind::Cmd.from_gateway());
        assert!(!TopicKind::Control.from_gateway());
        assert_eq!("ack".parse::<TopicKind>().unwrap(), TopicKind::Ack);
    }
}
