-- Named progress webhooks: an upload may ask for one by name (`POST /imports?notify=<name>`),
-- never by URL. The importer lists the names it has (IMPORTER_PROGRESS_WEBHOOKS, whose URLs stay
-- in its Secret) here when it starts, so the API refuses a name no importer knows; the import
-- keeps the name it asked for.
CREATE TABLE api_import_webhook_names (
    name text PRIMARY KEY,
    listed_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE api_imports ADD COLUMN notify text;
