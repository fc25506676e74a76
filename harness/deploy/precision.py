"""The precision a loaded generator computes in, chosen for inference, not inherited from training.

A generator trained under ``mixed_bfloat16`` (``precision = "auto"`` on a CPU with bf16 support)
is saved with that policy in every layer, and Keras loads it back so: its SavedModel then runs
most convolutions in bf16 and tf2onnx writes bfloat16 Conv nodes that ONNX Runtime's CPU
provider rejects. Evaluation, upscaling, serving and export therefore rebuild the network with
float32 layers by default (its config with the policies replaced, then its weights: variables
are float32 under every mixed policy, so nothing is lost) and match TensorFlow float32 to about
1e-6. ``bfloat16`` is the explicit choice for hardware that runs it fast: mixed_bfloat16 layers,
float32 variables, the output layers kept float32 as training builds them.
"""

from __future__ import annotations

from typing import Any

from harness.errors import HarnessError

FLOAT32 = "float32"
BFLOAT16 = "bfloat16"
PRECISIONS = (FLOAT32, BFLOAT16)
"""What inference can compute in: ``float32`` (the default) or ``bfloat16``."""
_POLICY = {FLOAT32: "float32", BFLOAT16: "mixed_bfloat16"}
_POLICY_CLASSES = ("DTypePolicy", "FloatDTypePolicy")
_FLOAT_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16", "bfloat16", "float16")


def compute_dtypes(model: Any) -> set[str]:
    """The compute dtypes of ``model``'s layers (``{"float32"}`` for a float32 network)."""
    return {
        str(layer.dtype_policy.compute_dtype)
        for layer in getattr(model, "layers", [])
        if getattr(layer, "dtype_policy", None) is not None
    }


def _policy_name(value: Any) -> str | None:
    """The policy name a layer config's ``dtype`` entry holds (``None``: not a float policy)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and value.get("class_name") in _POLICY_CLASSES:
        return value.get("config", {}).get("name")
    return None


def _rewrite(config: Any, policy: str, keep: frozenset[str]) -> Any:
    """``config`` with every layer's float dtype policy replaced by ``policy`` (layers named
    in ``keep`` stay as they are: the float32 output layer of a mixed-precision network; input
    layers hold float32 data, not a compute policy)."""
    if isinstance(config, list):
        return [_rewrite(item, policy, keep) for item in config]
    if not isinstance(config, dict) or config.get("class_name") == "InputLayer":
        return config
    out = {key: _rewrite(value, policy, keep) for key, value in config.items()}
    name = _policy_name(config.get("dtype"))
    if name in _FLOAT_POLICIES and config.get("name") not in keep:
        out["dtype"] = policy
    return out


def with_precision(model: Any, precision: str = FLOAT32) -> Any:
    """``model`` computing in ``precision`` (one of :data:`PRECISIONS`): the model itself when
    it already does, else the same network rebuilt from its config with the other policy and
    given its weights. A network Keras cannot rebuild from its config gives an error naming it.
    """
    if precision not in PRECISIONS:
        raise HarnessError(
            f'precision "{precision}" is not known; use one of: {", ".join(PRECISIONS)}.'
        )
    import keras  # heavy: the deploy wing imports without TensorFlow

    dtypes = compute_dtypes(model)
    if precision == FLOAT32 and dtypes <= {"float32"}:
        return model
    if precision == BFLOAT16 and "bfloat16" in dtypes and "float16" not in dtypes:
        return model
    keep: frozenset[str] = frozenset()
    if precision == BFLOAT16:  # the output stays float32, as training builds it
        keep = frozenset(layer.name for layer in _output_layers(model))
    try:
        config = _rewrite(model.get_config(), _POLICY[precision], keep)
        rebuilt = type(model).from_config(config)
        rebuilt.set_weights(model.get_weights())
    except Exception as exc:  # Keras and plugin code raise many types here
        raise HarnessError(
            f'the model "{model.name}" computes in {"/".join(sorted(dtypes))} and cannot be '
            f"rebuilt in {precision} from its config ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); a generator must be a "
            "Keras functional model whose layers serialize (get_config / from_config)."
        ) from None
    if isinstance(rebuilt, keras.Model) and rebuilt.name != model.name:
        rebuilt.name = model.name
    return rebuilt


def _output_layers(model: Any) -> list[Any]:
    outputs = getattr(model, "outputs", None) or []
    layers = []
    for tensor in outputs:
        history = getattr(tensor, "_keras_history", None)
        if history is not None:
            layers.append(history[0])
    return layers


__all__ = ["BFLOAT16", "FLOAT32", "PRECISIONS", "compute_dtypes", "with_precision"]
