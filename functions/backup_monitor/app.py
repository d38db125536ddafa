"""Lambda entry point (placeholder until the handler issue lands)."""
