-- Messages given up that an operator sent again (POST /deliveries/{messageId}/retry): one row
-- per message, claimed before the delivery request is produced, so a message is sent again
-- once however often the retry is asked for. Ids and the caller only: no patient data.
CREATE TABLE api_delivery_replays (
    message_id uuid PRIMARY KEY,
    run_id uuid NOT NULL,
    attempt integer NOT NULL,
    subject text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now()
);
