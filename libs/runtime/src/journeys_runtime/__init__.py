"""Shared runtime for the services: settings, Kafka clients, topics, logging, metrics, ops HTTP."""
