"""Host-side loss vocabulary shared by plugins and the trainer.

A content loss is ``loss(sr, hr) -> scalar``; the host applies its weight (a ``[losses.<key>]``
table each, so a recipe of several weighted terms, such as the seed's Per-Pix, is several
tables). A content loss that declares an ``ema_sr`` parameter (``loss(sr, hr, ema_sr)``, LDL)
also gets the output of the EMA generator on the same LR batch; such a loss needs ``[train] ema``
above 0. An adversarial loss has ``generator_loss`` and ``discriminator_loss``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

Loss = Callable[[Any, Any], Any]
Schedule = Callable[[int], float]


def wants_real_logits(adversarial: Any) -> bool:
    """Whether an adversarial loss's ``generator_loss`` declares ``real_logits`` (relativistic
    losses): the trainer then passes the discriminator's logits on the HR batch."""
    return "real_logits" in inspect.signature(adversarial.generator_loss).parameters


def wants_ema_sr(loss: Any) -> bool:
    """Whether a content loss declares ``ema_sr`` (LDL's artifact map): the trainer then
    passes the EMA generator's output on the same LR batch, without gradient."""
    try:
        return "ema_sr" in inspect.signature(loss).parameters
    except (TypeError, ValueError):  # a callable without a readable signature
        return False
