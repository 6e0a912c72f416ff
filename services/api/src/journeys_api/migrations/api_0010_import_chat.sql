-- What became of an import's messages to the team's chat (the progress webhook): delivered,
-- failed attempts (each retried), given up, and the last failure (a status or an error type,
-- never the webhook's URL). Kept across importers: one that takes an import over adds to them.
ALTER TABLE api_imports
    ADD COLUMN chat_delivered integer NOT NULL DEFAULT 0,
    ADD COLUMN chat_failed_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN chat_given_up integer NOT NULL DEFAULT 0,
    ADD COLUMN chat_last_error text;
