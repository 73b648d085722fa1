//! `fieldlink-cloud`: takes every gateway's MQTT traffic off the broker and stores it exactly
//! once in TimescaleDB, PostgreSQL or an embedded SQLite file, keeps the gateway registry
//! current, and serves health and metrics.
//!
//! Data flow: [`ingest`] (MQTT event loop → classify → batching writer) → [`store`]. A message
//! is acknowledged to the broker only after the transaction holding its rows has committed;
//! see [`ingest`] for the exact rule and what a crash leaves behind.

pub mod alerts;
pub mod api;
pub mod auth;
pub mod broker;
pub mod clock;
pub mod commands;
pub mod config;
pub mod dashboard;
pub mod health;
pub mod http;
pub mod ingest;
pub mod log_limit;
pub mod metrics;
pub mod notify;
pub mod records;
pub mod registry;
pub mod service;
pub mod store;
pub mod terminal;
pub mod ws;
