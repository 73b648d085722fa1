//! Caps on what WebSocket clients may hold: subscriptions per connection and per token (all of
//! the token's connections on this instance together). One subscribe past either cap is
//! refused with `{"type": "error", "code": "too_many_subscriptions", "limit": n}`; the
//! connection stays open with what it had. A subscription equal to one the connection holds
//! already counts once, and each part of a filter is an identifier (at most 64 bytes), so what
//! a connection holds, and what each point costs to match, is bounded.
//!
//! A connection's share is returned to its token when it unsubscribes and when it closes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The caps, from `[websocket]` in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsSettings {
    pub max_subscriptions_per_connection: usize,
    pub max_subscriptions_per_token: usize,
    /// How often each connection's token is checked again (see [`crate::auth::Revocations`]).
    pub token_check: Duration,
}

impl Default for WsSettings {
    fn default() -> Self {
        WsSettings {
            max_subscriptions_per_connection: 256,
            max_subscriptions_per_token: 4_096,
            token_check: Duration::from_millis(500),
        }
    }
}

/// The caps and the subscriptions each token holds now. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WsLimits {
    settings: WsSettings,
    per_token: Arc<Mutex<HashMap<String, usize>>>,
    /// Subscriptions refused at a cap.
    refused: prometheus_client::metrics::counter::Counter,
}

/// Why a subscription was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    Connection(usize),
    Token(usize),
}

impl Refused {
    pub fn message(&self) -> serde_json::Value {
        let (limit, what) = match self {
            Refused::Connection(n) => (*n, "this connection"),
            Refused::Token(n) => (*n, "this token's connections"),
        };
        serde_json::json!({
            "type": "error",
            "code": "too_many_subscriptions",
            "limit": limit,
            "message": format!("{what} may hold at most {limit} subscriptions; unsubscribe first"),
        })
    }
}

impl WsLimits {
    /// Counting refused subscriptions in `refused`.
    pub fn new(
        settings: WsSettings,
        refused: prometheus_client::metrics::counter::Counter,
    ) -> WsLimits {
        WsLimits {
            settings,
            per_token: Arc::new(Mutex::new(HashMap::new())),
            refused,
        }
    }

    pub fn settings(&self) -> &WsSettings {
        &self.settings
    }

    /// A new connection's share of its token's subscriptions.
    pub fn share(&self, token_id: &str) -> Share {
        Share {
            limits: self.clone(),
            token_id: token_id.to_string(),
            held: 0,
        }
    }

    /// Subscriptions the token's connections hold now.
    pub fn held_by(&self, token_id: &str) -> usize {
        self.per_token
            .lock()
            .map_or(0, |m| m.get(token_id).copied().unwrap_or(0))
    }
}

/// What one connection holds of its token's subscriptions; returned when dropped.
#[derive(Debug)]
pub struct Share {
    limits: WsLimits,
    token_id: String,
    held: usize,
}

impl Share {
    /// Takes one more subscription, or says which cap it would pass.
    pub fn take(&mut self) -> Result<(), Refused> {
        let taken = self.try_take();
        if taken.is_err() {
            self.limits.refused.inc();
        }
        taken
    }

    fn try_take(&mut self) -> Result<(), Refused> {
        let s = &self.limits.settings;
        if self.held >= s.max_subscriptions_per_connection {
            return Err(Refused::Connection(s.max_subscriptions_per_connection));
        }
        let mut m = self
            .limits
            .per_token
            .lock()
            .map_err(|_| Refused::Token(s.max_subscriptions_per_token))?;
        let n = m.entry(self.token_id.clone()).or_insert(0);
        if *n >= s.max_subscriptions_per_token {
            return Err(Refused::Token(s.max_subscriptions_per_token));
        }
        *n += 1;
        self.held += 1;
        Ok(())
    }

    /// Gives back `n` subscriptions.
    pub fn give_back(&mut self, n: usize) {
        let n = n.min(self.held);
        if n == 0 {
            return;
        }
        self.held -= n;
        if let Ok(mut m) = self.limits.per_token.lock() {
            if let Some(v) = m.get_mut(&self.token_id) {
                *v = v.saturating_sub(n);
                if *v == 0 {
                    m.remove(&self.token_id);
                }
            }
        }
    }

    pub fn held(&self) -> usize {
        self.held
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.give_back(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_connection_and_per_token_and_returned_on_drop() {
        let refused = prometheus_client::metrics::counter::Counter::default();
        let limits = WsLimits::new(
            WsSettings {
                max_subscriptions_per_connection: 3,
                max_subscriptions_per_token: 5,
                token_check: Duration::from_millis(500),
            },
            refused.clone(),
        );
        let mut a = limits.share("t1");
        for _ in 0..3 {
            a.take().unwrap();
        }
        assert_eq!(a.take(), Err(Refused::Connection(3)));
        let mut b = limits.share("t1");
        b.take().unwrap();
        b.take().unwrap();
        assert_eq!(b.take(), Err(Refused::Token(5)));
        // Another token has its own.
        let mut c = limits.share("t2");
        c.take().unwrap();
        assert_eq!(limits.held_by("t1"), 5);
        a.give_back(2);
        assert_eq!(limits.held_by("t1"), 3);
        b.take().unwrap();
        drop(b);
        assert_eq!(limits.held_by("t1"), 1);
        drop(a);
        assert_eq!(limits.held_by("t1"), 0);
        assert_eq!(refused.get(), 2);
        assert_eq!(
            Refused::Token(5).message()["code"],
            "too_many_subscriptions"
        );
    }
}
