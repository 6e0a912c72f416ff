-- Idempotency-Key of POST /journeys/{journeyId}/trigger: hashes only, never the key or body.
-- The API's own table; the read models stay the projector's alone.

CREATE TABLE api_idempotency_keys (
    journey_id uuid NOT NULL,
    key_hash text NOT NULL,
    body_hash text NOT NULL,
    run_id uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (journey_id, key_hash)
);
-- For expiring old keys by age.
CREATE INDEX api_idempotency_keys_created_at_idx ON api_idempotency_keys (created_at);
