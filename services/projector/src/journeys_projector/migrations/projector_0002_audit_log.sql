-- The audit trail's read model: one row per record of journeys.audit.v1, never changed.
-- Identifiers only: subjects, run and journey ids, patients' keyed hashes.

CREATE TABLE audit_log (
    audit_id uuid PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    subject text,
    action text NOT NULL,
    method text NOT NULL,
    route text NOT NULL,
    status smallint NOT NULL,
    outcome text NOT NULL,
    request_id text NOT NULL,
    journey_id uuid,
    run_ids uuid[] NOT NULL,
    patient_keys text[] NOT NULL
);
CREATE INDEX audit_log_occurred_at_idx ON audit_log (occurred_at);
CREATE INDEX audit_log_subject_idx ON audit_log (subject, occurred_at);
CREATE INDEX audit_log_run_ids_idx ON audit_log USING gin (run_ids);
CREATE INDEX audit_log_patient_keys_idx ON audit_log USING gin (patient_keys);

-- Append-only: the triggers refuse UPDATE, DELETE and TRUNCATE whatever the role; only the
-- table's owner (or a superuser) could drop them. The projector only inserts, and a replay's
-- duplicates are skipped by ON CONFLICT DO NOTHING, which fires no UPDATE trigger.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_log_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
