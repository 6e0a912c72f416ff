-- Read models of Patient Journeys, written only by the projector and read by the API.

CREATE TABLE journeys (
    journey_id uuid PRIMARY KEY,
    name text NOT NULL,
    definition jsonb NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX journeys_created_at_idx ON journeys (created_at, journey_id);

CREATE TABLE runs (
    run_id uuid PRIMARY KEY,
    journey_id uuid NOT NULL,
    patient_id text NOT NULL,
    status text NOT NULL,
    current_node_id text,
    patient_context jsonb NOT NULL,
    last_seq integer NOT NULL DEFAULT 0,
    wake_at timestamptz,
    error text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX runs_created_at_idx ON runs (created_at, run_id);
CREATE INDEX runs_journey_idx ON runs (journey_id, created_at, run_id);
CREATE INDEX runs_patient_idx ON runs (patient_id, created_at, run_id);
CREATE INDEX runs_status_idx ON runs (status, created_at, run_id);

CREATE TABLE run_events (
    run_id uuid NOT NULL,
    seq integer NOT NULL,
    type text NOT NULL,
    occurred_at timestamptz NOT NULL,
    data jsonb NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE projector_offsets (
    topic text NOT NULL,
    partition integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (topic, partition)
);
