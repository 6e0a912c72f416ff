-- The file of rejected rows a clinic fixes and uploads again: the header's columns, and each
-- rejected row's cells (patient data, in the API's database as the upload itself was), with
-- the patient key of its patient id cell, so that an erasure of the patient drops them. The
-- importer drops every row's cells IMPORTER_ERROR_ROWS_DAYS after its import ended. Repeats
-- are marked: they were imported once, there is nothing in them to fix.
ALTER TABLE api_imports ADD COLUMN columns text[];
ALTER TABLE api_import_errors
    ADD COLUMN cells jsonb,
    ADD COLUMN patient_key text,
    ADD COLUMN duplicate boolean NOT NULL DEFAULT false;
CREATE INDEX api_import_errors_patient_idx ON api_import_errors (patient_key)
    WHERE patient_key IS NOT NULL;
CREATE INDEX api_imports_finished_idx ON api_imports (finished_at) WHERE finished_at IS NOT NULL;
