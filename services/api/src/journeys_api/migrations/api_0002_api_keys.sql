-- API keys of machine clients: the secret part is stored only as a salted SHA-256, so this
-- table never holds a usable key. Revoked keys stay, for the audit trail.
CREATE TABLE api_keys (
    key_id text PRIMARY KEY,
    name text NOT NULL UNIQUE,
    scopes text[] NOT NULL,
    salt bytea NOT NULL,
    secret_hash bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
