"""First-party losses plugin (filled in by its own module)."""
