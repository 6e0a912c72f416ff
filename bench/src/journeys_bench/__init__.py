"""Benchmarks of the engine, the API, the timers and the projections (`make bench`)."""
