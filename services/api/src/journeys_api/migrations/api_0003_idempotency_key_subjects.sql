-- Idempotency keys belong to the caller who sent them: two callers using the same key on the
-- same journey must get two runs, and neither may learn of the other's. `subject` is the
-- authenticated subject as the audit records name it (`key:<name>`, `jwt:<sub>`, `dev`).
-- Keys claimed before this migration get the empty subject, which no caller has; the first
-- caller to send one again with the same body adopts it (journeys_api.idempotency), so a retry
-- across the upgrade gets the run it started.

ALTER TABLE api_idempotency_keys ADD COLUMN subject text NOT NULL DEFAULT '';
ALTER TABLE api_idempotency_keys ALTER COLUMN subject DROP DEFAULT;
ALTER TABLE api_idempotency_keys DROP CONSTRAINT api_idempotency_keys_pkey;
ALTER TABLE api_idempotency_keys ADD PRIMARY KEY (journey_id, subject, key_hash);
