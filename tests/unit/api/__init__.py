"""Unit tests of the API: validation paths that never reach Kafka or PostgreSQL."""
