"""Test doubles of the providers' HTTP APIs (not mocks of our code): real servers on loopback
that check what a real provider checks, remember what they received, and can be told to fail,
throttle, hang or come back."""
