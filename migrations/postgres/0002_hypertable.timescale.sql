-- fieldlink:no-transaction
-- points becomes a hypertable (one-day chunks) compressed after 7 days and dropped after
-- 400 days; points_hourly is a real-time continuous aggregate (materialized hours plus the
-- raw tail), refreshed by a policy.

SELECT create_hypertable('points', by_range('time', INTERVAL '1 day'), if_not_exists => TRUE, migrate_data => TRUE);

ALTER TABLE points SET (timescaledb.compress, timescaledb.compress_segmentby = 'series_id', timescaledb.compress_orderby = 'time DESC');

SELECT add_compression_policy('points', INTERVAL '7 days', if_not_exists => TRUE);

SELECT add_retention_policy('points', INTERVAL '400 days', if_not_exists => TRUE);

CREATE MATERIALIZED VIEW IF NOT EXISTS points_hourly WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS SELECT series_id, time_bucket(INTERVAL '1 hour', time) AS bucket, avg(value) AS avg, min(value) AS min, max(value) AS max, count(*) AS count, count(value) AS nvalues, sum(value) AS sum FROM points GROUP BY series_id, time_bucket(INTERVAL '1 hour', time) WITH NO DATA;

SELECT add_continuous_aggregate_policy('points_hourly', start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '30 minutes', if_not_exists => TRUE);
