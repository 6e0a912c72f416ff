-- When the StartRun of a key was acknowledged by the broker. A retry of a key whose StartRun
-- was published answers the same run without producing again: the executor forgets a run an
-- hour after it ended, and a StartRun it met after that would start the journey a second time.
-- Rows claimed before this column stay NULL (a retry publishes again, as before): whether
-- their StartRun went out is not known here.

ALTER TABLE api_idempotency_keys ADD COLUMN published_at timestamptz;
