-- Patients erased: one row per applied PatientErased, read by the API to answer an erasure
-- "done". Holds the patient's keyed hash, never the id.
CREATE TABLE erased_patients (
    erasure_id uuid PRIMARY KEY,
    patient_key text NOT NULL,
    erased_at timestamptz NOT NULL,
    runs_deleted integer NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX erased_patients_patient_key_idx ON erased_patients (patient_key);

-- The runs an erasure removed. A replay of older records (offsets reset, read models rebuilt,
-- a StartRun read from the commands topic after the events topic's erasure) must not bring
-- them back: every insert into runs and run_events skips the run ids listed here.
CREATE TABLE erased_runs (
    run_id uuid PRIMARY KEY,
    erasure_id uuid NOT NULL
);
