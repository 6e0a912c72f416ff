-- Idempotency keys belong to the caller who sent them: two callers using the same key on the
-- same journey must get two runs, and neither may learn of the other's. `subject` is the
-- authenticated subject as the audit records name it (`key:<name>`, `jwt:<sub>`, `dev`).
-- Keys claimed before this migration get the empty subject, which no caller has: a retry
-- across the upgrade starts a new run rather than reach a run another caller may own.

ALTER TABLE api_idempotency_keys ADD COLUMN subject text NOT NULL DEFAULT '';
ALTER TABLE api_idempotency_keys ALTER COLUMN subject DROP DEFAULT;
ALTER TABLE api_idempotency_keys DROP CONSTRAINT api_idempotency_keys_pkey;
ALTER TABLE api_idempotency_keys ADD PRIMARY KEY (journey_id, subject, key_hash);
