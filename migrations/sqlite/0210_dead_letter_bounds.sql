-- Bounded dead letters (issue 14, finding 5): a row keeps the start of the payload with the
-- whole payload's size and SHA-256, and the gateway it is counted against (the topic level
-- before the last), so the service can keep at most a number of rows per gateway (oldest
-- deleted first) and delete rows past their age.
ALTER TABLE dead_letters ADD COLUMN gateway TEXT NOT NULL DEFAULT '';
ALTER TABLE dead_letters ADD COLUMN size INTEGER;
-- NULL only on rows of the previous version: SQLite has no SHA-256 function.
ALTER TABLE dead_letters ADD COLUMN sha256 BLOB;

-- Rows of the previous version kept whole payloads: record the size, keep the first 4 KiB, and
-- take the gateway from the topic ("a/b/gw/kind": strip the last level, then all but the last).
UPDATE dead_letters SET
    size = length(payload),
    payload = substr(payload, 1, 4096),
    gateway = substr(
        rtrim(topic, replace(topic, '/', '')),
        1,
        max(length(rtrim(topic, replace(topic, '/', ''))) - 1, 0)
    );
UPDATE dead_letters SET
    gateway = substr(replace(gateway, rtrim(gateway, replace(gateway, '/', '')), ''), 1, 64);

CREATE INDEX dead_letters_gateway ON dead_letters (gateway, id);
CREATE INDEX dead_letters_received ON dead_letters (received_at);
