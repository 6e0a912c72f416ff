-- Inbound SMS (POST /channels/sms/inbound) by the gateway's message id (Twilio's MessageSid):
-- claimed before its commands are produced, marked once Kafka has them, so a repeat (the
-- gateway trying again, or a captured request replayed: the gateway's signature has no
-- timestamp) changes nothing. Provider ids only: no number, no text.
CREATE TABLE api_sms_inbound (
    message_sid text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
