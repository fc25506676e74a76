"""Experiments: the schema (frozen dataclasses), reading TOML (``extends``, ``--set``), writing the
resolved experiment back, and checking values against the plugins' own signatures.
"""
