-- Where Twilio kept a recording's media in the customer's own bucket (External S3
-- storage): kept as imported, so the API answers what Twilio did.
ALTER TABLE recordings ADD COLUMN media_external_location text;
