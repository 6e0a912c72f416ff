-- A clinic's events, for its weekly figures (GET /analytics/weekly): one row per patient event
-- whose data names a clinic, from every way in (POST /events, webhooks, other teams' topics,
-- CSV imports). Keyed by `fact_id`, an HMAC of the event's receipt id under the deployment's
-- secret: the same event projected again (a replay, a file imported again) adds nothing, and
-- no row can be joined to a patient's key or receipt. Kept when a patient is erased: what is
-- left is a clinic's figure, not the patient's.
CREATE TABLE clinic_events (
    fact_id text PRIMARY KEY,
    clinic_id text NOT NULL,
    event_type text NOT NULL,
    occurred_at timestamptz NOT NULL,
    revenue numeric,
    treatment_type text
);
CREATE INDEX clinic_events_clinic_idx ON clinic_events (clinic_id, occurred_at);
CREATE INDEX clinic_events_occurred_idx ON clinic_events (occurred_at);
