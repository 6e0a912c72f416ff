-- Patient events: what a run waits for, each event received, and what it did to runs.
-- Keyed hashes, ids, types and times only: never a patient id or an event's data.

-- While a run waits at a WAIT_FOR_EVENT node (status `waiting_event`): the event type it
-- waits for and when it times out; NULL otherwise (cleared when met, timed out or ended).
ALTER TABLE runs ADD COLUMN waiting_event_type text;
ALTER TABLE runs ADD COLUMN waiting_until timestamptz;

-- One row per patient event received (`journeys.command.record_patient_event.v1`/`.v2`),
-- by its receipt id (uuid5 of the patient key and the sender's event id). `source` is the way
-- in: `api`, `hook:<source>` or `topic:<topic>`. The sender's event id is unique per patient
-- only: several patients' receipts may share one.
CREATE TABLE event_receipts (
    receipt_id uuid PRIMARY KEY,
    event_id text NOT NULL,
    patient_key text NOT NULL,
    event_type text NOT NULL,
    source text NOT NULL,
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX event_receipts_event_id_idx ON event_receipts (event_id);
CREATE INDEX event_receipts_patient_key_idx ON event_receipts (patient_key);

-- What an event did, one row per run event naming its receipt id: `started` (run.started
-- with `triggerReceiptId`: a trigger started the run), `resumed` (event.matched: a wait was
-- met, `node_id` the wait) or `exited` (run.exited: the journey's exit_on ended the run,
-- `node_id` where it was). Keyed like the run's event, so a replay adds nothing. An effect
-- may be projected before its receipt (commands and events are separate topics).
CREATE TABLE event_effects (
    run_id uuid NOT NULL,
    seq integer NOT NULL,
    receipt_id uuid NOT NULL,
    journey_id uuid NOT NULL,
    effect text NOT NULL CHECK (effect IN ('started', 'resumed', 'exited')),
    node_id text,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX event_effects_receipt_idx ON event_effects (receipt_id, occurred_at);
