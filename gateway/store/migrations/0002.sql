ALTER TABLE recordings ADD COLUMN failure_reason text;
