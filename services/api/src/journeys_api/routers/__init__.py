"""One router module per resource: journeys, runs, and the operational endpoints."""
