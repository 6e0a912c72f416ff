-- The scheduler's durable timers and the events offsets stored in the same transactions.

CREATE TABLE scheduler_timers (
    timer_id uuid PRIMARY KEY,
    run_id uuid NOT NULL,
    patient_key text NOT NULL,
    source_partition integer NOT NULL,
    due_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL
);

-- The firing window: per assigned partition, the earliest timers first.
CREATE INDEX scheduler_timers_partition_due ON scheduler_timers (source_partition, due_at);

-- Ending a run deletes its timers by run id.
CREATE INDEX scheduler_timers_run ON scheduler_timers (run_id);

CREATE TABLE scheduler_offsets (
    topic text NOT NULL,
    partition integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (topic, partition)
);
