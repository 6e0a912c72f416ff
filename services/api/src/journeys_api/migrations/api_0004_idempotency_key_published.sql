-- When the StartRun of a key was acknowledged by the broker. A retry of a key whose StartRun
-- was published answers the same run without producing again: the executor forgets a run an
-- hour after it ended, and a StartRun it met after that would start the journey a second time.
-- Adopted keys stay NULL (a retry publishes again, as before): whether the StartRun of a key in
-- api_idempotency_keys went out is not known here.

ALTER TABLE api_idempotency_claims ADD COLUMN published_at timestamptz;
