"""The plugin API: hook specifications, the registry (entry points -> pluggy -> names with
provenance), contract checks, the scaffold for new plugins and pytest helpers for their authors.
"""
