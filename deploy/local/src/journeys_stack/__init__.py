"""The local stack: Kafka and PostgreSQL as child processes, then the six services."""
