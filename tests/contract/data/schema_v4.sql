-- A database as schema version 4 left it, tables, indexes and rows, written by that
-- version's own code: what an upgrade must open without losing anything.
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
    , failure_reason text);
CREATE INDEX recordings_by_date ON recordings (account_sid, date_created, sid);
CREATE INDEX recordings_by_room ON recordings (account_sid, room_sid, date_created, sid);
CREATE INDEX recordings_by_participant
        ON recordings (account_sid, participant_sid, date_created, sid);
CREATE INDEX recordings_by_source ON recordings (account_sid, source_sid, date_created, sid);
CREATE INDEX recordings_by_status ON recordings (account_sid, status, date_created, sid);
CREATE INDEX recordings_deleted ON recordings (date_updated) WHERE status = 'deleted';
CREATE INDEX callbacks_due ON callbacks (due) WHERE state = 'pending';
CREATE INDEX callbacks_by_recording ON callbacks (recording_sid, created)
    ;
INSERT INTO "accounts" VALUES('ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','Before the upgrade','ffffffffffffffffffffffffffffffff',1796040000123456);
INSERT INTO "api_keys" VALUES('SKbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb','ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','0000000000000000000000000000000000000000000000000000000000000000',1796040000123456);
INSERT INTO "callbacks" VALUES('cb-1','RT11111111111111111111111111111111','ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','recording-completed','https://app.example.com/cb','POST','{"RecordingSid": "RT11111111111111111111111111111111", "StatusCallbackEvent": "recording-completed"}',1796040000123456,1796040001123456,2,'delivered',1796040002123456,NULL);
INSERT INTO "recordings" VALUES('RT11111111111111111111111111111111','ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','completed',1796040000123456,1796040005123456,'MT22222222222222222222222222222222','video','mkv','VP8',42,123456,'camera',1200,'RM33333333333333333333333333333333','PA44444444444444444444444444444444','https://app.example.com/cb','POST','ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/RT11111111111111111111111111111111/abcdef.mkv','"0123456789abcdef0123456789abcdef"',NULL);
INSERT INTO "recordings" VALUES('RT55555555555555555555555555555555','ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa','failed',1795953600123456,1796040000123456,'MT66666666666666666666666666666666','audio','mka','OPUS',0,0,'microphone',0,NULL,NULL,NULL,NULL,NULL,NULL,'the uploaded media is empty');
