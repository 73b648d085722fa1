-- Commands to gateways (issue 7). A command is stored here before it is published, and its
-- status only moves forward: pending → sent → received → executed | failed | rejected, or
-- expired when its time passes before the agent has it. kind is the protocol's CommandKind as
-- JSON; result is the acknowledged value as JSON.
CREATE TABLE commands (
    command_id      text PRIMARY KEY,
    gateway         text NOT NULL,
    kind            text NOT NULL,
    status          text NOT NULL,
    created_at      bigint NOT NULL,
    expires_at      bigint NOT NULL,
    updated_at      bigint NOT NULL,
    idempotency_key text,
    result          text,
    error           text,
    created_by      text NOT NULL
);
-- NULL keys are distinct in both databases, so only keyed commands are deduplicated.
CREATE UNIQUE INDEX commands_idempotency ON commands (gateway, idempotency_key);
CREATE INDEX commands_gateway_created ON commands (gateway, created_at);
CREATE INDEX commands_open ON commands (status, expires_at);
