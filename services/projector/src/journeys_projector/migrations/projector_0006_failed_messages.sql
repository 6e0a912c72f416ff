-- Messages given up (`journeys.message.failed`, clear or sealed), in the order GET /deliveries
-- pages through them: when they failed, then the message id. Only those rows are indexed.
CREATE INDEX run_events_failed_messages_idx
    ON run_events (occurred_at, (data ->> 'messageId'))
    WHERE type IN ('journeys.message.failed.v1', 'journeys.message.failed.v2');
-- A message's events by its id (POST /deliveries/{messageId}/retry reads them back).
CREATE INDEX run_events_message_id_idx
    ON run_events ((data ->> 'messageId'))
    WHERE type LIKE 'journeys.message.%';
