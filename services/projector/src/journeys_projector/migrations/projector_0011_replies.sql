-- A patient's replies to our messages (the patient event `message.replied`: an SMS the
-- patient texted back, or the same event sent by POST /events), with their text, for the
-- conversation view (GET /patients/{patientId}/conversation): messages out are the runs'
-- events, replies in are these. Only replies keep their data; every other receipt keeps none.
--
--   column        sealed command (record_patient_event.v2)   clear command (.v1)
--   data          NULL                                        the event's data, in clear
--   data_sealed   the `eventData` envelope {"enc","kid","ct"}, NULL
--                 AD field `eventData`, under the patient's
--                 data key (opened by the API, never here)
--
-- Erasing the patient deletes their receipts, replies with them (and their key, so a sealed
-- copy anywhere else is noise).
ALTER TABLE event_receipts ADD COLUMN data jsonb;
ALTER TABLE event_receipts ADD COLUMN data_sealed jsonb;
CREATE INDEX event_receipts_replies_idx ON event_receipts (patient_key, received_at)
    WHERE event_type = 'message.replied';
