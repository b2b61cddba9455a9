"""Logical axis names and the hook through which model code constrains activation sharding.

Model code names only logical axes. Parameters carry them as ``logical_axes`` metadata; activations
pass them to :func:`constrain`. Which mesh axes those names map to is decided outside ``models/``
(``visprior_jax.parallel.rules``), which installs a resolver with :func:`use_resolver` while a
train or eval step is traced. Without a resolver, :func:`constrain` is the identity (one device,
notebooks).

Parameter axes: ``vocab embed heads kv_heads head_dim mlp layers norm vision_embed`` (the last: the
vision encoder's output width, the projector's input).
Activation axes: ``act_batch act_length act_embed act_heads act_kv_heads act_head_dim act_mlp act_vocab``.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Sequence

import jax

PARAM_AXES = ("vocab", "embed", "heads", "kv_heads", "head_dim", "mlp", "layers", "norm", "vision_embed")
ACTIVATION_AXES = ("act_batch", "act_length", "act_embed", "act_heads", "act_kv_heads",
                   "act_head_dim", "act_mlp", "act_vocab")

# A resolver maps (logical names, shape) to a jax.sharding.Sharding (or None: leave alone).
Resolver = Callable[[Sequence[str | None], Sequence[int]], "jax.sharding.Sharding | None"]
_resolver: contextvars.ContextVar[Resolver | None] = contextvars.ContextVar("resolver", default=None)


@contextlib.contextmanager
def use_resolver(resolver: Resolver | None):
  token = _resolver.set(resolver)
  try:
    yield
  finally:
    _resolver.reset(token)


def constrain(x: jax.Array, logical_axes: Sequence[str | None]) -> jax.Array:
  """Asks for ``x`` to be laid out as its logical axes say (no-op without a resolver)."""
  resolver = _resolver.get()
  if resolver is None:
    return x
  sharding = resolver(tuple(logical_axes), x.shape)
  return x if sharding is None else jax.lax.with_sharding_constraint(x, sharding)


def current_resolver() -> Resolver | None:
  return _resolver.get()
