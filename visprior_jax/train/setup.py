"""Everything a train step needs, built from a config: the one place trainer and benchmarks share.

``build_step(config)`` validates the config, builds the mesh, the rules table, the parameter and
optimizer-state shardings (from abstract shapes: nothing is allocated unsharded), the optimizer
and the jitted train step. It does no I/O and touches no data source or checkpoint.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding

from visprior_jax.models.llama import LlamaConfig
from visprior_jax.parallel.mesh import make_mesh, num_granules
from visprior_jax.parallel.rules import Rules, param_shardings
from visprior_jax.train.optim import make_optimizer, schedule
from visprior_jax.train.step import make_train_step, opt_state_shardings
from visprior_jax.train.tasks import make_task
from visprior_jax.train.validate import validate


@dataclasses.dataclass(frozen=True)
class StepSetup:
  task: Any                # train.tasks.LanguageModel | MultimodalModel
  mesh: Mesh
  mesh_shape: dict[str, int]
  rules: Rules
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  abstract_params: Any
  param_shardings: Any
  abstract_opt_state: Any
  opt_shardings: Any
  batch_sharding: NamedSharding
  step: Callable  # jitted (params, opt_state, batch, step_index) -> (params, opt_state, metrics); donates 0, 1

  @property
  def cfg(self) -> LlamaConfig:
    """The (language) model config."""
    return self.task.llm

  def init_state(self, seed: int):
    """Fresh (params, opt_state), created sharded."""
    with jax.set_mesh(self.mesh):
      params = jax.jit(lambda: self.task.init_params(seed), out_shardings=self.param_shardings)()
      return params, self.init_opt_state(params)

  def init_opt_state(self, params):
    with jax.set_mesh(self.mesh):
      return jax.jit(self.tx.init, out_shardings=self.opt_shardings)(params)

  def data_shard(self, batch_size: int) -> tuple[int, int]:
    """(index, count): this process supplies rows ``source.batch(step, index, count)`` of the global batch.

    Usually (process_index, process_count). When the batch axes do not span every process (e.g.
    ``tensor`` across hosts), processes whose devices hold the same rows are replicas: they share an
    index and load the same rows, and ``count`` is the number of distinct row groups."""
    owned: dict[int, set] = {}
    for device, index in self.batch_sharding.devices_indices_map((batch_size, 1)).items():
      rows = index[0]
      owned.setdefault(device.process_index, set()).add((rows.start or 0, batch_size if rows.stop is None
                                                        else rows.stop))
    groups = sorted({frozenset(v) for v in owned.values()}, key=min)
    sizes = {sum(b - a for a, b in g) for g in groups}
    if len(sizes) != 1 or sizes.pop() * len(groups) != batch_size:
      raise ValueError(f"the batch sharding gives processes overlapping or unequal row sets {groups}; "
                       f"put the axes that span processes into act_batch (mesh data/fsdp)")
    return groups.index(frozenset(owned[jax.process_index()])), len(groups)

  def put_batch(self, batch: dict[str, np.ndarray], batch_size: int | None = None) -> dict[str, jax.Array]:
    """This process's rows of the global batch -> global arrays sharded over the batch axes.
    ``batch_size``: the global batch (default: inferred, right when every process holds distinct rows)."""
    def put(v):
      shape = None if batch_size is None else (batch_size,) + v.shape[1:]
      return jax.make_array_from_process_local_data(self.batch_sharding, v, shape)
    return {k: put(v) for k, v in batch.items()}


def build_step(config, *, task=None, devices=None) -> StepSetup:
  """Validates ``config`` and builds the sharded train step (``task`` overrides the config's).
  ``devices``: the devices of the mesh (default all; AOT passes a TPU topology's)."""
  devices = jax.devices() if devices is None else list(devices)
  mesh_shape = validate(config, len(devices), num_granules(devices)[0])
  task = task or make_task(config)
  tr = config.train
  dcn = config.get("dcn_mesh")
  mesh = make_mesh(config.mesh, devices, dcn.to_dict() if dcn else None)
  rules = Rules(mesh, config.get("rules", {}).to_dict())
  abstract = task.abstract_params()
  p_sh = param_shardings(rules, abstract, task.logical_axes())
  tx = make_optimizer(config.optim, abstract, tr.steps)
  sched = schedule(config.optim, tr.steps)
  abstract_opt, opt_sh = opt_state_shardings(tx, abstract, p_sh, rules.replicated())
  batch_sh = rules.batch_sharding(2)
  step_fn = make_train_step(task, tx, sched, grad_accum=tr.grad_accum, z_loss=tr.z_loss,
                            resolver=rules.activation_resolver())
  jitted = jax.jit(step_fn, in_shardings=(p_sh, opt_sh, batch_sh, rules.replicated()),
                   out_shardings=(p_sh, opt_sh, rules.replicated()), donate_argnums=(0, 1))
  return StepSetup(task, mesh, mesh_shape, rules, tx, sched, abstract, p_sh, abstract_opt, opt_sh, batch_sh, jitted)
