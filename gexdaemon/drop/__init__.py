"""The drop folder adapter (watchfiles)."""
