-- Postage's outbox and inbox (version 1), created in the first schema of
-- the connection's search_path.

-- Messages written in an application's transaction, published by a relay.
CREATE TABLE IF NOT EXISTS postage_outbox (
    id             bigserial   PRIMARY KEY,
    -- The AMQP message_id the message is published with, every time.
    message_id     text        NOT NULL,
    -- Messages of one aggregate are published in the order of their ids.
    aggregate      text,
    -- [{"exchange", "kind", "durable", "auto_delete", "arguments", "key"}]
    targets        jsonb       NOT NULL,
    kind           text        NOT NULL,
    name           text        NOT NULL,
    category       text        NOT NULL,
    content_type   text        NOT NULL,
    persistent     boolean     NOT NULL,
    mandatory      boolean     NOT NULL,
    reply_to       text,
    correlation_id text,
    expiration_ms  bigint,
    headers        jsonb       NOT NULL,
    deadline_ms    bigint,
    body           bytea       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- Set when the broker confirmed it (kept rows only).
    sent_at        timestamptz
);

CREATE INDEX IF NOT EXISTS postage_outbox_unsent
    ON postage_outbox (id) WHERE sent_at IS NULL;
CREATE INDEX IF NOT EXISTS postage_outbox_unsent_aggregate
    ON postage_outbox (aggregate, id) WHERE sent_at IS NULL AND aggregate IS NOT NULL;
CREATE INDEX IF NOT EXISTS postage_outbox_sent
    ON postage_outbox (sent_at) WHERE sent_at IS NOT NULL;

-- Wakes the relays listening on `postage_outbox` when a transaction that
-- wrote messages commits; the payload is the table's schema.
CREATE OR REPLACE FUNCTION postage_outbox_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('postage_outbox', TG_TABLE_SCHEMA);
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER postage_outbox_written
    AFTER INSERT ON postage_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION postage_outbox_notify();

-- The messages a consumer handled, by their AMQP message_id.
CREATE TABLE IF NOT EXISTS postage_inbox (
    consumer    text        NOT NULL,
    message_id  text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);

CREATE INDEX IF NOT EXISTS postage_inbox_received ON postage_inbox (received_at);
