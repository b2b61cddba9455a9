"""The trainer's interim token sources: deterministic, split across processes, packed correctly."""

import numpy as np
import pytest

from visprior_jax.data.synthetic import MarkovTokens, TextBytes


@pytest.mark.parametrize("make", [lambda: MarkovTokens(97, 8, 64, seed=3), lambda: TextBytes(8, 64, seed=3)])
def test_batch_is_a_function_of_seed_and_step(make):
  a, b = make(), make()
  for step in (0, 5):
    for k, v in a.batch(step).items():
      np.testing.assert_array_equal(v, b.batch(step)[k])
  assert not np.array_equal(a.batch(0)["inputs"], a.batch(1)["inputs"])


def test_processes_read_disjoint_rows_of_the_same_global_batch():
  src = MarkovTokens(50, 8, 32, seed=1)
  whole = src.batch(7)
  parts = [src.batch(7, process_index=i, process_count=4) for i in range(4)]
  for k in whole:
    np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), whole[k])
  with pytest.raises(ValueError, match="not divisible by the 3 processes"):
    src.batch(0, 0, 3)


def test_packing_restarts_positions_and_masks_cross_document_targets():
  batch = MarkovTokens(50, 4, 256, seed=0, mean_doc_len=20).batch(0)
  seg, pos, mask = batch["segment_ids"], batch["positions"], batch["loss_mask"]
  assert seg.min() == 1 and (np.diff(seg, axis=1) >= 0).all() and seg.max() > 2
  starts = np.concatenate([np.ones((4, 1), bool), np.diff(seg, axis=1) > 0], axis=1)
  assert (pos[starts] == 0).all()
  assert (pos[:, 1:][~starts[:, 1:]] == pos[:, :-1][~starts[:, 1:]] + 1).all()
  # The last token of a document has a target from the next document: masked out.
  assert (mask[:, :-1][starts[:, 1:]] == 0).all() and mask.mean() > 0.8
  np.testing.assert_array_equal(batch["inputs"][:, 1:], batch["targets"][:, :-1])


def test_text_source_is_bytes_of_the_file(tmp_path):
  path = tmp_path / "t.txt"
  path.write_text("first document\nline two\n\nsecond document here\n\n" * 20)
  batch = TextBytes(2, 16, seed=0, path=str(path)).batch(0)
  assert batch["inputs"].max() < 256
  text = bytes(batch["inputs"][0].astype(np.uint8)).decode()
  assert text in ("first document\nline two" + "second document here") * 40
  with pytest.raises(ValueError, match="too short"):
    TextBytes(2, 4096, path=str(path))


def test_state_guards_against_resuming_a_different_source():
  src = MarkovTokens(50, 4, 32, seed=1)
  src.check_state(src.state(10))
  with pytest.raises(ValueError, match="does not match"):
    MarkovTokens(50, 4, 32, seed=2).check_state(src.state(10))
