-- An operator's retry of a message given up (`journeys.command.retry_message`, POST
-- /deliveries/{messageId}/retry), and its outcome: the delivery service's report of that
-- attempt (`journeys.command.record_delivery` with the same message id and attempt), which the
-- executor does not put in the run's timeline (the run went on when the message was given up).
-- No outcome: not reported yet, or never sent (the patient revoked consent to the channel
-- since: the retry is then in the DLQ, stage `consent`). Reasons are the delivery service's
-- own words, never a provider's text. Deleted with the run's other rows on erasure.
CREATE TABLE delivery_retries (
    message_id uuid PRIMARY KEY,
    attempt integer NOT NULL,
    run_id uuid NOT NULL,
    requested_at timestamptz NOT NULL,
    delivered boolean,
    channel text,
    reason text,
    reported_at timestamptz
);
CREATE INDEX delivery_retries_run_id_idx ON delivery_retries (run_id);
