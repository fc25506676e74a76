"""The plugin API: hook specifications, the registry (entry points -> pluggy -> names with
provenance, passed explicitly, never global), contract checks, the scaffold for new plugins
(templates under ``templates/``), and for plugin authors' tests the pytest plugin
:mod:`~harness.plugin_api.testing` and :class:`~harness.plugin_api.overlay.OverlayEnv`.
"""
