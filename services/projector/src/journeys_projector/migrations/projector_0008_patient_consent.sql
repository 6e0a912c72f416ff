-- A patient's consent to be messaged, per channel, as last set (`journeys.command.set_consent`
-- through PUT /patients/{patientId}/consent, or a STOP or START texted back). A channel without
-- a row has consent: every channel has it until it is revoked. `command_offset` is the
-- command's offset on its commands partition (a patient's are all on one): the executor
-- applies them in that order, so a row is replaced only by a later command. Erasing the
-- patient deletes the rows set before the erasure. Keyed hashes, channels and times only.
CREATE TABLE patient_consent (
    patient_key text NOT NULL,
    channel text NOT NULL,
    granted boolean NOT NULL,
    source text NOT NULL,
    consent_id uuid NOT NULL,
    changed_at timestamptz NOT NULL,
    command_offset bigint NOT NULL,
    PRIMARY KEY (patient_key, channel)
);
