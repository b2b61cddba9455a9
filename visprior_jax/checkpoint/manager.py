"""Training-run checkpoints: one orbax CheckpointManager with four items per step.

  checkpoints/<step>/params     model parameters (sharded arrays)
  checkpoints/<step>/opt_state  optimizer state (sharded arrays)
  checkpoints/<step>/data       the data iterator's state (JSON)
  checkpoints/<step>/meta       step, model config and run config (JSON)

Saves are asynchronous; orbax writes into a temporary directory and renames it when complete, so a
process killed mid-save leaves the previous checkpoint as the latest one. Restores take target
shardings, so a run can resume on a different mesh.
"""

from __future__ import annotations

from typing import Any

import orbax.checkpoint as ocp

from visprior_jax.checkpoint.params import absolute, check_shapes, restore_target


class RunCheckpoints:

  def __init__(self, workdir, *, keep: int = 3, async_save: bool = True):
    self.directory = absolute(workdir) / "checkpoints"
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=async_save)
    # Handlers are registered up front: a fresh process (a resumed run) must read item metadata
    # before its first save, which orbax only answers for items whose handler it knows.
    handlers = dict(params=ocp.StandardCheckpointHandler(), opt_state=ocp.StandardCheckpointHandler(),
                    data=ocp.JsonCheckpointHandler(), meta=ocp.JsonCheckpointHandler())
    self._mngr = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

  def latest_step(self) -> int | None:
    return self._mngr.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._mngr.all_steps())

  def save(self, step: int, params, opt_state, data_state: dict, meta: dict) -> None:
    self._mngr.save(step, args=ocp.args.Composite(
        params=ocp.args.StandardSave(params),
        opt_state=ocp.args.StandardSave(opt_state),
        data=ocp.args.JsonSave(data_state),
        meta=ocp.args.JsonSave(meta),
    ), force=True)

  def restore(self, step: int, abstract_params, param_shardings, abstract_opt_state=None,
              opt_shardings=None) -> dict[str, Any]:
    """Restores one step onto the given shardings after checking every parameter's shape."""
    stored = self._mngr.item_metadata(step)
    where = f"{self.directory}/{step}"
    check_shapes(abstract_params, stored["params"], f"{where}/params")
    items = dict(params=ocp.args.StandardRestore(restore_target(abstract_params, param_shardings)),
                 data=ocp.args.JsonRestore(), meta=ocp.args.JsonRestore())
    if abstract_opt_state is not None:
      check_shapes(abstract_opt_state, stored["opt_state"], f"{where}/opt_state")
      items["opt_state"] = ocp.args.StandardRestore(restore_target(abstract_opt_state, opt_shardings))
    return dict(self._mngr.restore(step, args=ocp.args.Composite(**items)))

  def wait(self) -> None:
    self._mngr.wait_until_finished()

  def close(self) -> None:
    self._mngr.wait_until_finished()
    self._mngr.close()
