-- Instants are bigint microseconds (gateway.instants), never a database's own time type.
CREATE TABLE accounts (
    sid text PRIMARY KEY,
    friendly_name text NOT NULL,
    auth_token text NOT NULL,
    date_created bigint NOT NULL
);
CREATE TABLE api_keys (
    sid text PRIMARY KEY,
    account_sid text NOT NULL REFERENCES accounts (sid),
    secret_hash text NOT NULL,
    date_created bigint NOT NULL
);
CREATE TABLE recordings (
    sid text PRIMARY KEY,
    account_sid text NOT NULL REFERENCES accounts (sid),
    status text NOT NULL,
    date_created bigint NOT NULL,
    date_updated bigint NOT NULL,
    source_sid text NOT NULL,
    type text NOT NULL,
    container_format text NOT NULL,
    codec text NOT NULL,
    duration integer,
    size bigint NOT NULL,
    track_name text NOT NULL,
    offset_ms bigint NOT NULL,
    room_sid text,
    participant_sid text,
    status_callback text,
    status_callback_method text,
    media_key text,
    media_etag text
);
-- One index per filter, each ending in the (date_created, sid) paging order, so
-- a deep keyset page is an index range scan like the first one.
CREATE INDEX recordings_by_date ON recordings (account_sid, date_created, sid);
CREATE INDEX recordings_by_room ON recordings (account_sid, room_sid, date_created, sid);
CREATE INDEX recordings_by_participant
    ON recordings (account_sid, participant_sid, date_created, sid);
CREATE INDEX recordings_by_source ON recordings (account_sid, source_sid, date_created, sid);
CREATE INDEX recordings_by_status ON recordings (account_sid, status, date_created, sid);
