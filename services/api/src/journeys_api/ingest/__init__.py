"""The ingest: other teams' Kafka topics in, patient events out as commands, by the API's path.

A second process of the API package (`python -m journeys_api.ingest`): it seals events under
the patients' data keys, which live in the API's database and are guarded by the API's
erasure locks, so it shares that code rather than copying it into a service of its own.
"""
