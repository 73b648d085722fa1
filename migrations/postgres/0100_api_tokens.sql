-- API bearer tokens (issue 7). Only the SHA-256 of a token is stored: tokens are 32 random
-- bytes, so a fast hash is enough and lets a request find its token by index. Times are
-- milliseconds since the Unix epoch, as in the embedded store, so both share the API's SQL.
CREATE TABLE api_tokens (
    token_id   text PRIMARY KEY,
    name       text NOT NULL,
    role       text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    hash       text NOT NULL UNIQUE,
    created_at bigint NOT NULL,
    revoked_at bigint
);
