"""First-party models plugin (filled in by its own module)."""
