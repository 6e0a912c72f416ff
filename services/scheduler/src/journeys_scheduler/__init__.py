"""Durable timers: learn of delays and event waits from events, store them, fire a FireTimer
command when due."""
