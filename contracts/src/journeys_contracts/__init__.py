"""The shared, versioned language of Patient Journeys: definitions, commands and events."""
