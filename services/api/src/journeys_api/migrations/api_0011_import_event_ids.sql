-- The event ids of an import's rows so far (a BLAKE2b digest of each, never the id itself),
-- each with the row that had it first: how the importer finds an id repeated later in the
-- file without holding every id of a large file in memory. Written with the checkpoint of
-- their batch, deleted when the import ends.
CREATE TABLE api_import_event_ids (
    import_id uuid NOT NULL REFERENCES api_imports (import_id) ON DELETE CASCADE,
    digest bytea NOT NULL,
    first_row bigint NOT NULL,
    PRIMARY KEY (import_id, digest)
);
