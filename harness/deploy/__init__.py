"""Deployment: trained models put to use.

- :mod:`~harness.deploy.models`: model references -> loaded generators and upscalers;
- :mod:`~harness.deploy.upscaler`: the :class:`~harness.deploy.upscaler.Upscaler` (tiling, the
  receptive-field probe, the generator -> ``[0, 1]`` mapping);
- :mod:`~harness.deploy.upscaling`: image, folder and video pipelines (``harness upscale``);
- :mod:`~harness.deploy.export`: SavedModels for TF Serving (``harness export``);
- :mod:`~harness.deploy.onnx`: ONNX models checked against TensorFlow (``--format onnx``);
- :mod:`~harness.deploy.interpolate`: network interpolation of two generators
  (``harness interpolate``);
- :mod:`~harness.deploy.mlflow_model`: the logged MLflow model (a pyfunc over the SavedModel,
  run by :mod:`~harness.deploy.mlflow_pyfunc`) and registering it;
- :mod:`~harness.deploy.serve`, :mod:`~harness.deploy.routes` and
  :mod:`~harness.deploy.codecs`: the REST app (``harness serve``), its routes, and its
  request/response codecs and limits.
"""
