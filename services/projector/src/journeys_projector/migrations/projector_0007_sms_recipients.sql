-- The patients a number was texted for: `journeys.message.sent` events that carry the keyed
-- hash of the SMS number (`recipientKey`), by that hash. POST /channels/sms/inbound reads it
-- to find whose reply came in. Erasing a patient deletes their runs' events, and with them
-- their entries here.
CREATE INDEX run_events_recipient_key_idx
    ON run_events ((data ->> 'recipientKey'), occurred_at)
    WHERE type IN ('journeys.message.sent.v1', 'journeys.message.sent.v2')
      AND data ? 'recipientKey';
