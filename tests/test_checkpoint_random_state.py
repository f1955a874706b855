"""The random state as a checkpoint recoverable (``RandomState``): after
loading, the draws of torch, CUDA, numpy and Python's ``random`` are the
draws made right after saving, where SpeechBrain's ``SaveableGenerator``
misses some; through ``SafeCheckpointer``: old checkpoints without it,
damaged files, intra-epoch checkpoints and DDP.

Authors
 * speechbrain-ast developers
"""

import random
import socket
import warnings

import numpy as np
import pytest
import torch

from speechbrain_ast.training.checkpoint import SafeCheckpointer
from speechbrain_ast.training.random_state import RandomState


def _draws(device="cpu"):
    """Draws of every generator, including the cached second normals of
    numpy and Python (``has_gauss`` / ``gauss_next``)."""
    return {
        "torch": torch.rand(3, device=device).cpu(),
        "torch_normal": torch.randn(5, device=device).cpu(),
        "numpy": np.random.rand(3).tolist() + [np.random.randn()],
        "python": [random.random(), random.gauss(0, 1)],
    }


def _assert_same(a, b):
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


def _scramble():
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    _draws()


def test_draws_after_load_equal_draws_after_save(tmp_path):
    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    np.random.randn()  # leaves numpy's second normal cached
    random.gauss(0, 1)  # and Python's
    state = RandomState()
    path = tmp_path / "random_state.ckpt"
    state.save(path)
    after_save = _draws()
    _scramble()
    assert _draws()["numpy"] != after_save["numpy"]
    state.load(path)
    _assert_same(_draws(), after_save)
    # tensors and plain numbers only
    saved = torch.load(path, weights_only=True)
    assert saved["world_size"] == 1 and len(saved["ranks"]) == 1
    assert saved["ranks"][0]["numpy"]["has_gauss"] == 1
    # restore() puts the loaded state back again
    assert state.restore()
    _assert_same(_draws(), after_save)
    assert not RandomState().restore()  # nothing loaded: nothing changed


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_draws_after_load_equal_draws_after_save(tmp_path):
    torch.cuda.manual_seed_all(3)
    torch.rand(1, device="cuda")  # CUDA initialised and drawn from
    state = RandomState()
    state.save(tmp_path / "r.ckpt")
    saved = torch.load(tmp_path / "r.ckpt", weights_only=True)
    assert len(saved["ranks"][0]["cuda"]) == torch.cuda.device_count()
    after_save = _draws("cuda")
    torch.cuda.manual_seed_all(99)
    state.load(tmp_path / "r.ckpt")
    _assert_same(_draws("cuda"), after_save)


def test_saveable_generator_misses_numpy_python_and_other_ranks(tmp_path):
    """Why RandomState is not SpeechBrain's SaveableGenerator: that one
    puts torch's draws back but not numpy's nor Python's, and its saver runs
    on the main process only (under DDP every rank would resume with rank
    0's stream), where RandomState's runs on every rank."""
    from speechbrain.utils.checkpoints import DEFAULT_SAVE_HOOKS
    from speechbrain.utils.repro import SaveableGenerator

    torch.manual_seed(7)
    np.random.seed(7)
    random.seed(7)
    generator = SaveableGenerator()
    generator.save(tmp_path / "generator.ckpt")
    after_save = _draws()
    _scramble()
    generator.load(tmp_path / "generator.ckpt", end_of_epoch=True)
    after_load = _draws()
    assert torch.equal(after_load["torch"], after_save["torch"])
    assert after_load["numpy"] != after_save["numpy"]
    assert after_load["python"] != after_save["python"]
    # SpeechBrain wraps a main-only saver; RandomState's is the method
    assert DEFAULT_SAVE_HOOKS[SaveableGenerator] is not SaveableGenerator.save
    assert DEFAULT_SAVE_HOOKS[RandomState] is RandomState.save


def _checkpointer(folder, **extra):
    model = torch.nn.Linear(2, 2)
    recoverables = {"model": model, "random_state": RandomState(), **extra}
    return SafeCheckpointer(folder, recoverables), model


def test_checkpoint_without_random_state_loads_with_a_warning(tmp_path):
    """A checkpoint written before the random state was saved: the model
    loads, the random state stays as it is, a warning says so."""
    ckpt, model = _checkpointer(tmp_path)
    saved = ckpt.save_checkpoint()
    (saved.path / "random_state.ckpt").unlink()
    ckpt2, model2 = _checkpointer(tmp_path)
    torch.manual_seed(5)
    expected = torch.rand(4)
    torch.manual_seed(5)
    with pytest.warns(UserWarning, match="saved without the random state"):
        assert ckpt2.recover_if_possible() is not None
    assert torch.equal(torch.rand(4), expected)
    assert torch.equal(model2.weight, model.weight)


def test_damaged_random_state_file_falls_back_to_the_older_one(tmp_path):
    ckpt, _ = _checkpointer(tmp_path)
    ckpt.save_checkpoint(meta={"n": 1})
    older = torch.rand(3)
    newest = ckpt.save_checkpoint(meta={"n": 2})
    with open(newest.path / "random_state.ckpt", "r+b") as f:
        f.truncate(100)
    ckpt2, _ = _checkpointer(tmp_path)
    with pytest.warns(UserWarning, match=r"random_state\.ckpt cannot be read"):
        loaded = ckpt2.recover_if_possible()
    assert loaded.meta["n"] == 1
    assert torch.equal(torch.rand(3), older)


def test_intra_epoch_checkpoint_restores_after_the_loaders_seed_draw(
    tmp_path,
):
    """torch's DataLoader (here SpeechBrain's SaveableDataLoader, as the
    recipes' train loader) draws its base seed from the global generator
    when an iterator is made; after an intra-epoch checkpoint that draw
    is undone, once: the first draws after it equal those after saving.
    After an end-of-epoch checkpoint nothing is changed on the loader."""
    from speechbrain.dataio.dataloader import SaveableDataLoader

    loader = SaveableDataLoader(range(8), batch_size=2)
    ckpt, _ = _checkpointer(tmp_path, loader=loader)
    ckpt.save_checkpoint(end_of_epoch=False)
    after_save = torch.rand(3)

    loader = SaveableDataLoader(range(8), batch_size=2)
    ckpt2, _ = _checkpointer(tmp_path, loader=loader)
    _scramble()
    ckpt2.recover_if_possible()
    assert "_get_iterator" in vars(loader)
    assert next(iter(loader)).tolist() == [0, 1]
    assert torch.equal(torch.rand(3), after_save)
    assert "_get_iterator" not in vars(loader)  # once only
    # without the re-restore the iterator's draw shifts the stream
    ckpt2.recover_if_possible()
    del loader._get_iterator
    iter(loader)
    assert not torch.equal(torch.rand(3), after_save)

    ckpt2.delete_checkpoints(num_to_keep=0)
    ckpt2.save_checkpoint(end_of_epoch=True)
    ckpt2.recover_if_possible()
    assert "_get_iterator" not in vars(loader)


def test_bad_or_foreign_files_are_named(tmp_path):
    state = RandomState()
    bad = tmp_path / "bad.ckpt"
    torch.save({"weights": torch.zeros(2)}, bad)
    with pytest.raises(ValueError, match="bad.ckpt is not a random state"):
        state.load(bad)
    # another world size: a warning, the state is left as it is
    mine = state.state_dict()
    other = tmp_path / "two_ranks.ckpt"
    torch.save({"world_size": 2, "ranks": [mine, mine]}, other)
    torch.manual_seed(1)
    expected = torch.rand(2)
    torch.manual_seed(1)
    with pytest.warns(UserWarning, match="random state of 2 processes"):
        state.load(other)
    assert torch.equal(torch.rand(2), expected)
    broken = tmp_path / "broken.ckpt"
    torch.save({"world_size": 1, "ranks": [{"torch": mine["torch"]}]}, broken)
    with pytest.raises(ValueError, match="rank 0's random state"):
        state.load(broken)


def _ddp_rank(rank, port, path, out):
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
        world_size=2,
    )  # fmt: skip
    try:
        torch.manual_seed(rank)
        np.random.seed(rank)
        random.seed(rank)
        state = RandomState()
        state.save(path)
        torch.distributed.barrier()  # rank 0 has written the file
        after_save = _draws()
        _scramble()
        state.load(path)
        torch.save({"after_save": after_save, "after_load": _draws()},
                   f"{out}/{rank}.pt")  # fmt: skip
    finally:
        torch.distributed.destroy_process_group()


def test_every_ranks_state_is_saved_and_restored_under_ddp(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = str(tmp_path / "random_state.ckpt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.multiprocessing.spawn(
            _ddp_rank, args=(port, path, str(tmp_path)), nprocs=2
        )
    saved = torch.load(path, weights_only=True)
    assert saved["world_size"] == 2
    results = [torch.load(tmp_path / f"{r}.pt") for r in (0, 1)]
    for result in results:
        _assert_same(result["after_load"], result["after_save"])
    # the ranks' streams differ: each got its own state back
    assert (
        results[0]["after_save"]["numpy"] != results[1]["after_save"]["numpy"]
    )
