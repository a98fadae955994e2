CREATE INDEX recordings_deleted ON recordings (date_updated) WHERE status = 'deleted';
