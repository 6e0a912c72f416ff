"""Durable timers: learn of delays from events, store them, fire a FireTimer command when due."""
