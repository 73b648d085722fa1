-- Without TimescaleDB the service keeps the hourly rollup itself. The writer marks an hour
-- dirty in the same transaction that adds points to it; the rollup task deletes the mark and
-- recomputes the hour. Readers take clean hours from points_hourly and dirty hours from points,
-- in one statement, so a read never sees a stale hour.

CREATE TABLE points_hourly (
    series_id bigint NOT NULL,
    bucket    timestamptz NOT NULL,
    avg       double precision,
    min       double precision,
    max       double precision,
    count     bigint NOT NULL,
    -- points with a numeric value: the divisor of avg when hours are merged into days
    nvalues   bigint NOT NULL,
    sum       double precision,
    PRIMARY KEY (series_id, bucket)
);

CREATE TABLE rollup_dirty (
    bucket timestamptz PRIMARY KEY
);
