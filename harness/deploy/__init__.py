"""Deployment: model references -> upscalers, tiling, export, and the REST app."""
