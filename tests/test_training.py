"""The recipes' shared pieces: schedule, optimiser, DDP evaluation
sampler, labels, checkpoint averaging, ensembles.

Authors
 * speechbrain-ast developers
"""

import copy

import pytest
import torch

from speechbrain_ast.training import (
    checkpoint,
    ddp,
    ensemble,
    labels,
    optim,
    recipe as recipe_utils,
)


def test_schedule_equals_reference_multisteplr():
    """Epoch-wise decay = the reference's MultiStepLR stepped per epoch."""
    for start, every, factor in [(5, 1, 0.85), (2, 1, 0.5), (10, 5, 0.5)]:
        param = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.Adam([param], lr=1e-3)
        ref = torch.optim.lr_scheduler.MultiStepLR(
            opt, list(range(start, 1000, every)), gamma=factor
        )
        ours = optim.WarmupStepDecay(
            1e-3, decay_start=start, decay_every=every, decay_factor=factor
        )
        for epoch in range(1, 31):  # the reference counts epochs from 1
            assert ours(epoch) == pytest.approx(
                opt.param_groups[0]["lr"], rel=1e-12
            )
            opt.step()
            ref.step()


def test_schedule_is_not_speechbrains_step_scheduler():
    """Why WarmupStepDecay is ours: SpeechBrain's StepScheduler decays from
    the first epoch on, the reference only from its start epoch."""
    from speechbrain.nnet.schedulers import StepScheduler

    theirs = StepScheduler(1.0, decay_factor=0.85, decay_drop=1)
    ours = optim.WarmupStepDecay(1.0, decay_start=5, decay_factor=0.85)
    assert [ours(epoch) for epoch in (1, 2, 5)] == [1.0, 1.0, 1.0]
    assert theirs(2)[0] == pytest.approx(0.85**2)


def test_apply_sets_every_group_as_update_learning_rate_silently(caplog):
    """The recipes apply the schedule's rate with ``apply``: every
    parameter group gets what SpeechBrain's update_learning_rate would set,
    without its log line at every warm-up step."""
    import logging

    from speechbrain.nnet.schedulers import update_learning_rate

    def groups():
        net = torch.nn.Linear(2, 2)
        return optim.make_optimizer(
            [{"params": [net.weight]}, {"params": [net.bias], "lr": 2.0}], 1.0
        )

    sched = optim.WarmupStepDecay(1.0, 4)
    theirs, ours = groups(), groups()
    with caplog.at_level(logging.INFO):
        update_learning_rate(theirs, sched(1, step=2))
        assert "Changing lr" in caplog.text
        caplog.clear()
        assert sched.apply(ours, 1, step=2) == 0.5
        assert caplog.text == ""
    assert [g["lr"] for g in ours.param_groups] == [
        g["lr"] for g in theirs.param_groups
    ]
    assert [g["lr"] for g in ours.param_groups] == [0.5, 0.5]


def test_warmup_is_linear_then_flat():
    sched = optim.WarmupStepDecay(1e-5, warmup_steps=1000)
    assert sched(1, step=1) == pytest.approx(1e-8)
    assert sched(1, step=500) == pytest.approx(5e-6)
    assert sched(1, step=1000) == sched(1, step=5000) == 1e-5


def test_optimizer_is_the_papers():
    opt = optim.make_optimizer(torch.nn.Linear(2, 2).parameters(), 1e-5)
    assert isinstance(opt, torch.optim.Adam)
    group = opt.param_groups[0]
    assert group["betas"] == (0.95, 0.999)
    assert group["weight_decay"] == 5e-7 and group["lr"] == 1e-5


def test_optimizer_is_fused_and_equals_plain_adam():
    """On the CPU the paper's Adam is PyTorch's fused kernel: ten steps give
    the parameters and state of the per-parameter loop to rounding, and a
    state saved by either loads into the other (resuming old checkpoints)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 3))
    plain = copy.deepcopy(model)
    fused = optim.make_optimizer(model.parameters(), 1e-3)
    loop = torch.optim.Adam(
        plain.parameters(), lr=1e-3, betas=(0.95, 0.999), weight_decay=5e-7
    )
    assert fused.defaults["fused"] and not loop.defaults["fused"]
    for _ in range(10):
        x = torch.randn(4, 8)
        for net, opt in ((model, fused), (plain, loop)):
            opt.zero_grad()
            net(x).square().sum().backward()
            opt.step()
    for a, b in zip(model.parameters(), plain.parameters()):
        assert (a - b).abs().max() < 1e-6
    resumed = optim.make_optimizer(copy.deepcopy(plain).parameters(), 1e-3)
    resumed.load_state_dict(loop.state_dict())
    assert len(resumed.state) == len(loop.state)


def test_optimizer_groups_and_fallback():
    """Parameter groups given as generators keep their parameters; a
    parameter the fused kernel cannot take gives the default Adam."""
    net = torch.nn.Linear(2, 2)
    opt = optim.make_optimizer(
        [{"params": iter([net.weight])}, {"params": net.bias, "lr": 1.0}],
        1e-5,
    )
    assert [len(g["params"]) for g in opt.param_groups] == [1, 1]
    assert opt.param_groups[1]["lr"] == 1.0 and opt.defaults["fused"]
    meta = torch.nn.Parameter(torch.zeros(2, device="meta"))
    assert not optim.make_optimizer([meta], 1e-5).defaults["fused"]


def test_resolve_hparams_file(tmp_path, monkeypatch):
    recipe = tmp_path / "recipe"
    (recipe / "hparams").mkdir(parents=True)
    (recipe / "hparams" / "a.yaml").write_text("x: 1\n")
    cwd = tmp_path / "cwd"
    (cwd / "hparams").mkdir(parents=True)
    (cwd / "hparams" / "a.yaml").write_text("x: 2\n")
    (cwd / "hparams" / "b.yaml").write_text("x: 3\n")
    monkeypatch.chdir(cwd)
    # the recipe folder wins, the cwd is the fallback
    assert recipe_utils.resolve_hparams_file("hparams/a.yaml", recipe) == str(
        recipe / "hparams" / "a.yaml"
    )
    assert recipe_utils.resolve_hparams_file("hparams/b.yaml", recipe) == str(
        cwd / "hparams" / "b.yaml"
    )
    with pytest.raises(FileNotFoundError) as err:
        recipe_utils.resolve_hparams_file("hparams/c.yaml", recipe)
    assert str(recipe / "hparams" / "c.yaml") in str(err.value)
    assert str(cwd / "hparams" / "c.yaml") in str(err.value)


def test_eval_sampler_covers_every_example_once():
    for n in (0, 1, 7, 10):
        for world in (1, 2, 3):
            slices = [
                list(ddp.DistributedEvalSampler(n, r, world))
                for r in range(world)
            ]
            assert sorted(i for s in slices for i in s) == list(range(n))
            assert [len(s) for s in slices] == [
                len(ddp.DistributedEvalSampler(n, r, world))
                for r in range(world)
            ]


def test_eval_sampler_is_not_torchs_distributed_sampler():
    """Why DistributedEvalSampler is ours: torch's DistributedSampler pads
    the last rank with a repeated example, which evaluation would count
    twice."""
    padded = torch.utils.data.DistributedSampler(
        range(5), num_replicas=2, rank=1, shuffle=False
    )
    assert list(padded) == [1, 3, 0]
    assert list(ddp.DistributedEvalSampler(5, 1, 2)) == [1, 3]


def test_safe_checkpointer_falls_back_where_speechbrains_stops(tmp_path):
    """Why SafeCheckpointer: with the newest checkpoint's file damaged,
    SpeechBrain's Checkpointer raises; SafeCheckpointer warns, naming the
    file, and loads the one before."""
    from speechbrain.utils.checkpoints import Checkpointer

    saver = checkpoint.SafeCheckpointer(
        tmp_path, {"model": torch.nn.Linear(3, 2)}
    )
    saver.save_checkpoint(meta={"n": 1})
    newest = saver.save_checkpoint(meta={"n": 2})
    (newest.path / "model.ckpt").write_bytes(b"")
    with pytest.raises(EOFError):
        Checkpointer(
            tmp_path, {"model": torch.nn.Linear(3, 2)}
        ).recover_if_possible()
    with pytest.warns(UserWarning, match="model.ckpt is empty"):
        found = checkpoint.SafeCheckpointer(
            tmp_path, {"model": torch.nn.Linear(3, 2)}
        ).recover_if_possible()
    assert found.meta["n"] == 1


def test_multi_hot_encoder_roundtrip(tmp_path):
    csv_path = tmp_path / "class_labels_indices.csv"
    csv_path.write_text(
        'index,mid,display_name\n1,/m/b,"Dog, bark"\n0,/m/a,Speech\n'
    )
    enc = labels.MultiHotEncoder.from_class_labels_csv(csv_path)
    assert enc.labels == ["/m/a", "/m/b"]
    assert enc.display_names["/m/b"] == "Dog, bark"
    assert enc.encode(["/m/b"]).tolist() == [0.0, 1.0]
    assert enc.decode(torch.tensor([0.9, 0.6])) == ["/m/a", "/m/b"]
    enc.save(tmp_path / "labels.txt")
    back = labels.MultiHotEncoder.load(tmp_path / "labels.txt")
    assert back.labels == enc.labels and back.display_names == enc.display_names
    with pytest.raises(KeyError, match="/m/zzz"):
        enc.encode(["/m/zzz"])


def test_balanced_weights_follow_reference_formula():
    clips = [["a"], ["a", "b"], ["c"], ["a"]]
    enc = labels.MultiHotEncoder(["a", "b", "c"])
    weights = labels.balanced_sample_weights(clips, enc)
    count = {"a": 3, "b": 1, "c": 1}
    expected = [sum(1000 / (count[k] + 0.01) for k in c) for c in clips]
    torch.testing.assert_close(weights, torch.tensor(expected).double())
    from speechbrain.dataio.sampler import ReproducibleWeightedRandomSampler

    sampler = ReproducibleWeightedRandomSampler(
        weights, num_samples=4000, replacement=True
    )
    drawn = torch.bincount(torch.tensor(list(sampler)), minlength=4).double()
    # draws are proportional to the weights (rare classes over-sampled)
    torch.testing.assert_close(
        drawn / 4000, weights / weights.sum(), atol=0.03, rtol=0
    )


def test_ensemble_averages_scores():
    a, b = torch.rand(5, 4), torch.rand(5, 4)
    torch.testing.assert_close(
        ensemble.ensemble_predictions([a, b]), (a + b) / 2
    )
    with pytest.raises(ValueError, match="one shape"):
        ensemble.ensemble_predictions([a, torch.rand(4, 4)])
