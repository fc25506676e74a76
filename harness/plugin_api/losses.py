"""Host-side loss vocabulary shared by plugins and the trainer.

A content loss is ``loss(sr, hr) -> scalar``; the host applies its weight. A loss that is really
several weighted terms (the seed's Per-Pix: w1·MSE + w2·VGG) returns a :class:`Composite`; the
trainer expands it into ordinary terms named ``<key>/<sub-term>``, each weighted by the outer
weight times the sub-term's own schedule, so each appears separately in MLflow.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Loss = Callable[[Any, Any], Any]
Schedule = Callable[[int], float]


@dataclass(frozen=True)
class Term:
    """One weighted sub-term of a :class:`Composite`."""

    name: str
    loss: Loss
    weight: Schedule


@dataclass(frozen=True)
class Composite:
    """A content loss made of several weighted terms."""

    terms: tuple[Term, ...]


def wants_real_logits(adversarial: Any) -> bool:
    """Whether an adversarial loss's ``generator_loss`` declares ``real_logits`` (relativistic
    losses): the trainer then passes the discriminator's logits on the HR batch."""
    return "real_logits" in inspect.signature(adversarial.generator_loss).parameters
