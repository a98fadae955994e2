CREATE TABLE callbacks (
    id text PRIMARY KEY,
    recording_sid text NOT NULL,
    account_sid text NOT NULL,
    event text NOT NULL,
    url text NOT NULL,
    method text NOT NULL,
    params text NOT NULL,
    created bigint NOT NULL,
    due bigint NOT NULL,
    attempts integer NOT NULL,
    state text NOT NULL,
    delivered bigint,
    last_error text
);
CREATE INDEX callbacks_due ON callbacks (due) WHERE state = 'pending';
CREATE INDEX callbacks_by_recording ON callbacks (recording_sid, created);
