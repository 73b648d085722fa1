-- Bounded dead letters (issue 14, finding 5): a row keeps the start of the payload with the
-- whole payload's size and SHA-256, and the gateway it is counted against (the topic level
-- before the last), so the service can keep at most a number of rows per gateway (oldest
-- deleted first) and delete rows past their age.
ALTER TABLE dead_letters ADD COLUMN gateway text NOT NULL DEFAULT '';
ALTER TABLE dead_letters ADD COLUMN size bigint;
ALTER TABLE dead_letters ADD COLUMN sha256 bytea;

-- Rows of the previous version kept whole payloads: record size and hash, keep the first 4 KiB.
UPDATE dead_letters SET
    gateway = left(reverse(split_part(reverse(topic), '/', 2)), 64),
    size = length(payload),
    sha256 = sha256(payload),
    payload = substring(payload FROM 1 FOR 4096);

ALTER TABLE dead_letters ALTER COLUMN size SET NOT NULL;
ALTER TABLE dead_letters ALTER COLUMN sha256 SET NOT NULL;
CREATE INDEX dead_letters_gateway ON dead_letters (gateway, id);
