"""Fault injection: break the real stack on purpose under load, then count what went wrong."""
