-- Idempotency keys belong to the caller who sent them: two callers using the same key on the
-- same journey must get two runs, and neither may learn of the other's. `subject` is the
-- authenticated subject as the audit records name it (`key:<name>`, `jwt:<sub>`, `dev`).
--
-- Scoped claims get a table of their own. `api_idempotency_keys` stays exactly as the previous
-- version uses it (same columns it names, same primary key its ON CONFLICT names), so its pods
-- keep claiming keys, unscoped, during a rolling upgrade or after a rollback. A key in that
-- table, claimed before this migration or by such a pod, goes to the first caller who sends it
-- again with the same body (journeys_api.idempotency): `adopted_by` records that caller, so
-- only one adopts it. The previous version never names the column, and NULL is its default.

CREATE TABLE api_idempotency_claims (
    journey_id uuid NOT NULL,
    subject text NOT NULL,
    key_hash text NOT NULL,
    body_hash text NOT NULL,
    run_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (journey_id, subject, key_hash)
);
-- For expiring old keys by age.
CREATE INDEX api_idempotency_claims_created_at_idx ON api_idempotency_claims (created_at);

ALTER TABLE api_idempotency_keys ADD COLUMN adopted_by text;
