"""The projector: builds the PostgreSQL read models from the Kafka topics, exactly once."""
