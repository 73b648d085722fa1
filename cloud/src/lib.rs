//! `fieldlink-cloud`: ingests the gateways' MQTT traffic into TimescaleDB, PostgreSQL or an
//! embedded SQLite store, evaluates alerts, serves REST and WebSocket for dashboards, and sends
//! commands to gateways with a tracked status.
//!
//! Not built yet: this crate holds no code until its issue is taken. See `docs/ARCHITECTURE.md`.
