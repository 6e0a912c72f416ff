-- The operator console's sign-ins. The cookie carries a random token; only its SHA-256 is kept
-- here, with the CSRF token its pages send back. A session signed in with an API key names the
-- key (`key_id`): its scopes are read from `api_keys` on every request, so revoking the key
-- ends the session at once. `scopes` are those of a development key (no `key_id`).
CREATE TABLE api_console_sessions (
    token_hash bytea PRIMARY KEY,
    subject text NOT NULL,
    key_id text,
    scopes text[] NOT NULL,
    csrf text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX api_console_sessions_expiry ON api_console_sessions (expires_at);
