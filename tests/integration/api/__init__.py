"""Integration tests of the API against real Kafka and PostgreSQL."""
