-- The chunks of a half-finished upload staged in the object store (one object each), so
-- any collector process can resume or complete the upload. A row is written in the same
-- transaction that moves backup_uploads.received past the chunk: the database stays the
-- authority on what was acknowledged, and a chunk object without a row was never
-- acknowledged (a process killed between the put and the write; swept later).
-- Uploads staged on the collector's own disk have no rows here.
CREATE TABLE backup_upload_chunks (
    upload_id TEXT NOT NULL,
    chunk_offset BIGINT NOT NULL,
    size BIGINT NOT NULL,
    object_key TEXT NOT NULL,
    PRIMARY KEY (upload_id, chunk_offset)
);
