"""The train step: a pure function of (params, opt_state, batch), jitted with explicit shardings.

Loss is token-level cross-entropy over the positions whose ``loss_mask`` is 1, averaged over the
whole global batch (all micro-batches together, so gradient accumulation gives the same update as
one big batch), plus an optional z-loss ``z_loss * mean(logsumexp(logits)^2)``.

A task may bring its own objective instead: when it has ``loss(params, batch) -> (sum, aux)``
(the contrastive encoder's sigmoid loss, tasks.py), that replaces the token path. The contract is
the token path's: ``sum`` is the objective summed over the micro-batch's examples, ``aux`` holds
``ce_sum`` (the same sum, logged as ``loss``), ``tokens`` (the number of examples it sums over:
gradients and metrics are divided by the global total) and optionally ``z_sum``; any further aux
entry is a per-example sum and is logged as its mean over the global batch. ``z_loss`` applies to
the token path only. For a loss that couples examples (the sigmoid loss compares every pair in a
batch), gradient accumulation pairs examples within each micro-batch only.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from visprior_jax.models import axes


def token_losses(logits, targets):
  """Per-token cross-entropy and log-partition, float32."""
  logits = logits.astype(jnp.float32)
  log_z = jax.nn.logsumexp(logits, axis=-1)
  target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  return log_z - target_logit, log_z


def summed_loss(task, params, batch, z_loss: float):
  """(sum of masked loss incl. z-loss, aux sums) for one (micro-)batch; ``task``: see tasks.py."""
  if hasattr(task, "loss"):   # a task's own objective (module docstring)
    return task.loss(params, batch)
  logits = task.logits(params, batch)
  ce, log_z = token_losses(logits, batch["targets"])
  mask = batch["loss_mask"]
  ce_sum = jnp.sum(ce * mask)
  z_sum = jnp.sum(jnp.square(log_z) * mask)
  return ce_sum + z_loss * z_sum, dict(ce_sum=ce_sum, z_sum=z_sum, tokens=jnp.sum(mask))


def make_train_step(task, tx: optax.GradientTransformation, schedule: optax.Schedule, *,
                    grad_accum: int = 1, z_loss: float = 0.0, resolver=None) -> Callable:
  """Returns ``step(params, opt_state, batch, step_index) -> (params, opt_state, metrics)``."""
  grad_fn = jax.grad(lambda p, b: summed_loss(task, p, b, z_loss), has_aux=True)

  def accumulate(params, batch):
    if grad_accum == 1:
      return grad_fn(params, batch)
    # Micro-batch a takes rows a, a+A, a+2A, ...: each device keeps the rows it already holds.
    micro = jax.tree.map(lambda x: jnp.swapaxes(x.reshape(x.shape[0] // grad_accum, grad_accum, *x.shape[1:]), 0, 1),
                         batch)

    def body(carry, mb):
      grads, aux = grad_fn(params, mb)
      return jax.tree.map(jnp.add, carry, (grads, aux)), None

    zeros = jax.tree.map(jnp.zeros_like, params)
    aux_shapes = jax.eval_shape(grad_fn, params, jax.tree.map(lambda x: x[0], micro))[1]
    aux0 = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), aux_shapes)   # the task's aux keys, all 0
    (grads, aux), _ = jax.lax.scan(body, (zeros, aux0), micro)
    return grads, aux

  def step(params, opt_state, batch, step_index):
    with axes.use_resolver(resolver):
      grads, aux = accumulate(params, batch)
    count = jnp.maximum(aux["tokens"], 1.0)
    grads = jax.tree.map(lambda g: g / count, grads)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    metrics = dict(loss=aux["ce_sum"] / count)
    if "z_sum" in aux:   # the token path; a task's own loss may have none
      metrics["z_loss"] = aux["z_sum"] / count
    metrics.update(grad_norm=optax.global_norm(grads), lr=schedule(step_index), tokens=aux["tokens"])
    metrics.update({k: v / count for k, v in aux.items() if k not in ("ce_sum", "z_sum", "tokens")})
    return params, opt_state, metrics

  return step


def opt_state_shardings(tx: optax.GradientTransformation, abstract_params: Any, param_shardings: Any,
                        replicated) -> tuple[Any, Any]:
  """(abstract optimizer state, its shardings): moments follow their parameter, the rest replicate."""
  abstract = jax.eval_shape(tx.init, abstract_params)
  masked = optax.transforms.MaskedNode   # frozen parameters' slots (multi_transform): no state at all
  shardings = optax.tree_map_params(tx, lambda p, s: p if isinstance(p, masked) else s, abstract, param_shardings,
                                    transform_non_params=lambda _: replicated,
                                    is_leaf=lambda x: isinstance(x, masked))
  return abstract, shardings
