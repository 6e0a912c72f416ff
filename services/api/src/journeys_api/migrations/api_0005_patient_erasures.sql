-- Erasure requests (DELETE /patients/{patientId}, POST /patients/erasures). A row names the
-- patient by keyed hash only, never by id. `published_at` stays NULL until the broker has
-- acknowledged the ErasePatient command: the API's outbox loop sends every row still NULL, so
-- an erasure whose first produce failed (Kafka away, the client gave up) still completes.
-- `done` is read from the projector's erased_patients, not kept here.
CREATE TABLE api_patient_erasures (
    erasure_id uuid PRIMARY KEY,
    patient_key text NOT NULL,
    subject text NOT NULL,
    requested_at timestamptz NOT NULL,
    published_at timestamptz,
    -- The patient's runs in the read model when the erasure was asked for: the command names
    -- them, so a run the executor has already forgotten is erased from the read models too.
    run_ids uuid[] NOT NULL DEFAULT '{}'
);
-- An erased patient's Idempotency-Key claims stay as markers, without the body's hash: a
-- retry of such a key after the erasure is refused instead of starting the erased run again
-- under the same run id (the executor and the read models no longer know it).
ALTER TABLE api_idempotency_claims ALTER COLUMN body_hash DROP NOT NULL;
ALTER TABLE api_idempotency_claims ADD COLUMN erased_at timestamptz;
-- A repeat request finds the patient's erasures; the outbox finds the unpublished ones.
CREATE INDEX api_patient_erasures_patient_key_idx ON api_patient_erasures (patient_key);
CREATE INDEX api_patient_erasures_unpublished_idx ON api_patient_erasures (requested_at)
    WHERE published_at IS NULL;
