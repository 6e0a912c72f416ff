-- Each patient's data key, wrapped under a key-encryption key (its id in `kek_id`); the patient
-- named by keyed hash only. Triggers seal the patient's id and context under it; erasing the
-- patient deletes the row, after which every sealed copy, in Kafka or in the read models,
-- is noise. One live key per patient: a patient erased and triggered again gets a new key
-- with a new `kid`.
CREATE TABLE api_patient_data_keys (
    patient_key text PRIMARY KEY,
    kid text NOT NULL UNIQUE,
    kek_id text NOT NULL,
    wrapped bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- The patient of each Idempotency-Key claim (keyed hash), so an erasure also clears the body
-- hash of a claim whose run the read model does not show yet. NULL in claims from before this
-- migration and from pods of the previous version: those are found through the read model.
ALTER TABLE api_idempotency_claims ADD COLUMN patient_key text;
CREATE INDEX api_idempotency_claims_patient_key_idx ON api_idempotency_claims (patient_key)
    WHERE patient_key IS NOT NULL;
