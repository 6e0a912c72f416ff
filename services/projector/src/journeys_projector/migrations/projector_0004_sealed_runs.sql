-- Sealed runs: rows that hold the patient's data only as envelopes sealed under the
-- patient's data key, which the projector never has (erasing the patient deletes the key,
-- and the envelopes become noise).
--
-- A run is sealed when it was started by `journeys.command.start_run.v2`; its events are
-- read from `journeys.events.v2`. Column semantics, per kind of row:
--
--   column             sealed run                                unsealed run
--   patient_id         NULL                                      the patient id, in clear
--   patient_id_sealed  the `patientId` envelope                  NULL
--                      {"enc":"v1","kid","ct"}, AD field
--                      `patientId`
--   patient_context    the `patientContext` envelope (jsonb      the context object, in clear
--                      object {"enc","kid","ct"}), AD field
--                      `patientContext`
--   patient_key        the record's `patientKey` (HMAC of the    HMAC-SHA256 of patient_id under
--                      id under JOURNEYS_PATIENT_KEY_SECRET)     JOURNEYS_PATIENT_KEY_SECRET, hex;
--                                                               NULL on rows projected before
--                                                               this migration
--   error              NULL                                      run.failed reason, in clear
--   error_sealed       run.failed.v2 `reason` envelope, AD       NULL
--                      field `reason` (NULL until it fails)
--
-- Every envelope opens with `open_value(key, patient_key, field, envelope)` where `key` is
-- the data key named by the envelope's `kid`. `run_events` of a sealed run hold each v2 event
-- as received: `type` is the `.v2` type, `data` its JSON (sealed fields as envelopes, plus
-- `patientKey`; `open_fields(data, key)` gives the v1 twin's JSON). A row is sealed exactly
-- when `patient_id IS NULL`. Search by patient: `patient_key = $1 OR patient_id = $2` (the
-- second arm finds unsealed rows projected before this migration).

ALTER TABLE runs ALTER COLUMN patient_id DROP NOT NULL;
ALTER TABLE runs ADD COLUMN patient_key text;
ALTER TABLE runs ADD COLUMN patient_id_sealed jsonb;
ALTER TABLE runs ADD COLUMN error_sealed jsonb;
CREATE INDEX runs_patient_key_idx ON runs (patient_key, created_at, run_id);
