-- Imports of clinic events from CSV files (POST /imports).
--
-- An import is stored as it is uploaded (`uploading`, its bytes in `api_import_chunks`), then
-- `queued` once the whole file is in, `processing` while an importer reads it, and ends
-- `completed` or `failed`. The same bytes uploaded again answer the import that has them
-- (`content_sha256`, unique among the imports not failed). No cell of the file is kept
-- here but in the chunks, which are deleted when the import ends.
CREATE TABLE api_imports (
    import_id uuid PRIMARY KEY,
    subject text NOT NULL,
    status text NOT NULL,
    file_name text,
    content_sha256 text,
    idempotency_key text,
    bytes bigint NOT NULL DEFAULT 0,
    lines bigint NOT NULL DEFAULT 0,
    chunks integer NOT NULL DEFAULT 0,
    rows_read bigint NOT NULL DEFAULT 0,
    accepted bigint NOT NULL DEFAULT 0,
    rejected bigint NOT NULL DEFAULT 0,
    duplicates bigint NOT NULL DEFAULT 0,
    revenue numeric NOT NULL DEFAULT 0,
    reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    worker text,
    heartbeat_at timestamptz
);
CREATE UNIQUE INDEX api_imports_content_idx ON api_imports (content_sha256)
    WHERE status <> 'failed' AND content_sha256 IS NOT NULL;
CREATE UNIQUE INDEX api_imports_idempotency_idx ON api_imports (subject, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX api_imports_created_idx ON api_imports (created_at, import_id);
CREATE INDEX api_imports_queued_idx ON api_imports (created_at) WHERE status IN ('queued', 'processing');

-- The file's bytes, in upload order, until the import ends.
CREATE TABLE api_import_chunks (
    import_id uuid NOT NULL REFERENCES api_imports (import_id) ON DELETE CASCADE,
    seq integer NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (import_id, seq)
);

-- Every row not imported: its row number, line, column and the reason (rule names, never a
-- cell's value), and the row a duplicate repeats.
CREATE TABLE api_import_errors (
    import_id uuid NOT NULL REFERENCES api_imports (import_id) ON DELETE CASCADE,
    row_number bigint NOT NULL,
    line bigint,
    column_name text,
    reason text NOT NULL,
    PRIMARY KEY (import_id, row_number)
);
