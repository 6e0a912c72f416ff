"""The Patient Journeys HTTP API: validates requests, publishes commands, reads the read models."""
