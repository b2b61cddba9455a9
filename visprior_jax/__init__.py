"""visprior_jax: where an LLM's visual priors come from, studied in JAX.

Notebook entry point::

    import visprior_jax as vp
    model = vp.load_model("runs/demo/export")       # a parameter export or a training workdir
    logits = model(tokens)                          # tokens: int array (batch, length)
"""

__version__ = "0.1.0"


def load_model(path, **kwargs):
  """Loads a Llama checkpoint (export dir, training workdir or step dir); see checkpoint.params."""
  from visprior_jax.checkpoint.params import load_model as _load
  return _load(path, **kwargs)
