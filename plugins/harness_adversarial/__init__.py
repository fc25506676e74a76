"""First-party adversarial plugin (filled in by its own module)."""
