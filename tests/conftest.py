"""Test setup: 8 fake CPU devices for sharding tests, offline HF, absl flags marked parsed (grain)."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()

import pytest  # noqa: E402
from absl import flags  # noqa: E402

flags.FLAGS.mark_as_parsed()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pretrain_config(arg: str):
  """configs/pretrain.py:<arg> as a ConfigDict, the way --config= loads it."""
  import importlib.util
  spec = importlib.util.spec_from_file_location("pretrain_config", os.path.join(REPO, "configs", "pretrain.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def subprocess_env() -> dict:
  """Environment for child processes: CPU JAX with the same 8 fake devices as the tests."""
  return dict(os.environ)


@pytest.fixture
def repo_root():
  return REPO
