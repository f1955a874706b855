"""WebDataset shards: writing (deterministic, resumable, checked), exact
streaming epochs over DDP ranks and workers, mid-epoch resume, balanced
resampling statistics.

The clips: 30 generated ones (0.1-0.5 s, 16 kHz, FLAC and WAV) and three
real recordings from ``tests/data/shards`` (FSDD at 8 kHz, Speech
Commands; licences in its README).

Authors
 * speechbrain-ast developers
"""

import csv
import filecmp
import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from speechbrain_ast.data.audio import AudioError, load_audio
from speechbrain_ast.data.shards import (
    DecodeClip,
    ShardLoader,
    ShardStream,
    balanced_repeats,
    load_index,
    read_clip_list,
    read_shard,
    write_shards,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL = os.path.join(ROOT, "tests", "data", "shards")
MAKE_SHARDS = os.path.join(ROOT, "recipes", "AudioSet", "make_shards.py")
CLASSES = [f"/m/c{k}" for k in range(5)]


def _make_clips(folder, n=30, seed=0):
    """n generated clips + the real ones, with 1-2 labels each (skewed:
    class 0 is common, class 4 rare)."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    clips = []
    for i in range(n):
        length = int(rng.integers(1600, 8001))
        wav = (0.1 * rng.standard_normal(length)).astype(np.float32)
        ext = "flac" if i % 2 else "wav"
        path = os.path.join(folder, f"gen{i:02d}.{ext}")
        sf.write(path, wav, 16000)
        labels = [CLASSES[min(int(rng.exponential(1.2)), 4)]]
        if rng.random() < 0.3:
            labels.append(CLASSES[int(rng.integers(5))])
        labels = sorted(set(labels))
        clips.append({"ID": f"gen{i:02d}", "wav": path, "labels": labels})
    for k, name in enumerate(sorted(os.listdir(REAL))):
        if name.endswith((".flac", ".wav")):
            labels = [CLASSES[4], CLASSES[k % 4]]
            path = os.path.join(REAL, name)
            clips.append({"ID": f"real{k}", "wav": path, "labels": labels})
    for clip in clips:
        info = sf.info(clip["wav"])
        clip["duration"] = round(info.frames / info.samplerate, 4)
    return clips


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return _make_clips(str(tmp_path_factory.mktemp("clips")))


@pytest.fixture(scope="module")
def shards(clips, tmp_path_factory):
    """33 clips in shards of 4 (the last one holds 1)."""
    folder = str(tmp_path_factory.mktemp("shards") / "train")
    write_shards(clips, folder, shard_size=4, workers=2)
    return folder


def _tars(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".tar"))


# -- writing -----------------------------------------------------------------


def test_shards_hold_the_clips_bytes_and_labels(clips, shards):
    index = load_index(shards)
    assert index["num_clips"] == len(clips) == 33
    assert [s["clips"] for s in index["shards"]] == [4] * 8 + [1]
    assert _tars(shards) == [f"shard-{n:06d}.tar" for n in range(9)]
    samples = [
        s for name in _tars(shards) for s in read_shard(f"{shards}/{name}")
    ]
    for n, (sample, clip) in enumerate(zip(samples, clips)):
        ext = os.path.splitext(clip["wav"])[1][1:]
        assert sample["__key__"] == f"{n:09d}"
        with open(clip["wav"], "rb") as f:
            assert sample[ext] == f.read()  # compressed bytes, not decoded
        assert sample["json"]["id"] == clip["ID"]
        assert sample["json"]["labels"] == clip["labels"]
    ids, labels = read_clip_list(shards)
    assert ids == [c["ID"] for c in clips]
    assert labels == [c["labels"] for c in clips]


def test_decoding_equals_reading_the_file(clips, shards):
    from speechbrain_ast.training.labels import MultiHotEncoder

    encoder = MultiHotEncoder(CLASSES)
    stream = ShardStream(shards, DecodeClip(encoder), batch_size=5, train=False)
    out = [x for batch in stream for x in batch]
    assert [x["id"] for x in out] == [c["ID"] for c in clips]
    for x, clip in zip(out, clips):
        # the file-based recipe's load_audio (resamples the 8 kHz FSDD clips)
        assert torch.equal(x["sig"], load_audio(clip["wav"], 16000))
        assert torch.equal(x["target"], encoder.encode(clip["labels"]))


def test_tar_members_are_normalised_and_webdataset_reads_them(shards):
    import tarfile

    with tarfile.open(f"{shards}/shard-000000.tar") as tar:
        members = tar.getmembers()
    assert [m.name for m in members][:2] == ["000000000.json", "000000000.wav"]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {
        (0, 0, 0, "", "")
    }
    wds = pytest.importorskip("webdataset")
    urls = [f"{shards}/{n}" for n in _tars(shards)]
    theirs = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False))
    ours = [s for u in urls for s in read_shard(u)]
    assert [s["__key__"] for s in theirs] == [s["__key__"] for s in ours]
    for a, b in zip(theirs, ours):
        assert json.loads(a["json"]) == b["json"]
        ext = "wav" if "wav" in b else "flac"
        assert a[ext] == b[ext]


def test_webdataset_writer_gives_the_plain_tarfile_bytes(clips, shards):
    """webdataset's TarWriter writes what tarfile writes by hand with the
    normalised members (USTAR, mtime 0, uid/gid 0, no names, sorted)."""
    import hashlib
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(
        fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT
    ) as tar:
        for n, clip in enumerate(clips[:4]):
            with open(clip["wav"], "rb") as f:
                audio = f.read()
            meta = {
                "duration": clip["duration"],
                "id": clip["ID"],
                "labels": clip["labels"],
                "sha256": hashlib.sha256(audio).hexdigest(),
            }
            ext = os.path.splitext(clip["wav"])[1][1:]
            members = {
                f"{n:09d}.{ext}": audio,
                f"{n:09d}.json": json.dumps(
                    meta, sort_keys=True, separators=(",", ":")
                ).encode(),
            }
            for name in sorted(members):
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(members[name]), 0o644
                tar.addfile(info, io.BytesIO(members[name]))
    with open(f"{shards}/shard-000000.tar", "rb") as f:
        assert f.read() == buf.getvalue()


def test_training_shuffle_moves_clips_at_most_a_buffer_early(shards):
    stream = ShardStream(shards, None, 4, seed=1, buffer_size=5)
    part, batches = stream.plan(1)
    order = np.concatenate(batches)
    assert sorted(order.tolist()) == sorted(part.tolist())
    assert order.tolist() != part.tolist()
    where = {int(p): i for i, p in enumerate(part)}
    assert all(i >= where[int(p)] - 5 for i, p in enumerate(order))
    unshuffled = ShardStream(shards, None, 4, seed=1, buffer_size=0).plan(1)
    assert np.concatenate(unshuffled[1]).tolist() == part.tolist()


def test_writing_is_deterministic(clips, shards, tmp_path):
    again = str(tmp_path / "again")
    write_shards(clips, again, shard_size=4, workers=1)
    assert _tars(again) == _tars(shards)
    for name in _tars(shards) + ["index.json", "clips.csv"]:
        assert filecmp.cmp(f"{shards}/{name}", f"{again}/{name}", shallow=False)


def test_resume_after_a_kill_keeps_good_shards_and_redoes_the_rest(
    clips, shards, tmp_path
):
    folder = str(tmp_path / "killed")
    shutil.copytree(shards, folder)
    # what a kill leaves: no index, a half-written temporary shard, a
    # missing one, plus a damaged complete one
    os.remove(f"{folder}/index.json")
    os.remove(f"{folder}/shard-000005.tar")
    with open(f"{shards}/shard-000005.tar", "rb") as f:
        half = f.read()[:3000]
    with open(f"{folder}/shard-000005.tar.tmp4242", "wb") as f:
        f.write(half)
    with open(f"{folder}/shard-000002.tar", "r+b") as f:
        f.seek(2000)
        f.write(b"damage")
    index = write_shards(clips, folder, shard_size=4, workers=2)
    assert (index["written"], index["verified"]) == (2, 7)
    assert sorted(os.listdir(folder)) == sorted(os.listdir(shards))
    for name in _tars(shards) + ["index.json"]:
        assert filecmp.cmp(
            f"{shards}/{name}", f"{folder}/{name}", shallow=False
        )


def _mini_audioset(tmp_path):
    from speechbrain_ast.testing.audioset import make_audioset

    return make_audioset(
        str(tmp_path / "as"),
        clips=(("balanced_train", 9), ("unbalanced_train", 2), ("eval", 5)),
        duration=0.3,
    )


def test_make_shards_command_gives_the_manifest_clips(tmp_path):
    data = _mini_audioset(tmp_path)
    out = str(tmp_path / "shards")
    cmd = [
        sys.executable, MAKE_SHARDS, "--data_folder", data,
        "--save_folder", out, "--shard_size", "3", "--workers", "2",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "train: 8 clips in 3 shards" in run.stderr
    for split in ("train", "eval"):
        with open(f"{out}/manifests/{split}.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        ids, labels = read_clip_list(f"{out}/{split}")
        assert ids == [r["ID"] for r in rows]
        assert labels == [r["labels"].split(",") for r in rows]
    assert os.path.isfile(f"{out}/class_labels_indices.csv")
    # the second run verifies and keeps everything
    again = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "0 written, 3 verified" in again.stderr


def test_bad_clips_are_listed_and_stop_the_run(tmp_path):
    from make_shards import make_shards

    data = _mini_audioset(tmp_path)
    make_shards(str(tmp_path / "first"), data_folder=data, shard_size=3)
    manifests = str(tmp_path / "first" / "manifests")
    with open(f"{manifests}/train.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    broken = rows[1]["wav"]
    with open(broken, "wb") as f:  # changed after preparation
        f.write(b"not audio any more")
    out = str(tmp_path / "second")
    with pytest.raises(AudioError, match=rows[1]["ID"]) as err:
        make_shards(out, manifest_folder=manifests, shard_size=3)
    assert "1 of 11 clips" in str(err.value) and "--skip_bad" in str(err.value)
    with open(f"{out}/bad_clips.csv", newline="") as f:
        [bad] = list(csv.DictReader(f))
    assert (bad["split"], bad["ID"], bad["path"]) == (
        "train",
        rows[1]["ID"],
        broken,
    )
    done = make_shards(
        out, manifest_folder=manifests, shard_size=3, skip_bad=True
    )
    assert done["train"]["num_clips"] == len(rows) - 1
    assert rows[1]["ID"] not in read_clip_list(f"{out}/train")[0]


# -- streaming plans -------------------------------------------------------------


def _ids(batches):
    return [
        list(b.id) if hasattr(b, "id") else [x["id"] for x in b]
        for b in batches
    ]


@pytest.mark.parametrize(
    "world,batch", [(1, 4), (2, 4), (3, 5), (4, 2), (2, 17)]
)
def test_training_plan_is_exact_with_equal_batch_counts(shards, world, batch):
    clips = load_index(shards)["num_clips"]
    for epoch in (1, 2):
        seen, lengths = [], set()
        for rank in range(world):
            stream = ShardStream(
                shards, None, batch, seed=3, buffer_size=6, rank=rank,
                world_size=world,
            )  # fmt: skip
            _, batches = stream.plan(epoch)
            lengths.add(len(batches))
            assert all(1 <= len(b) <= batch for b in batches)
            seen += [int(p) for b in batches for p in b]
        assert sorted(seen) == list(range(clips))  # each clip once
        assert len(lengths) == 1  # the same number of steps on every rank


def test_epochs_differ_and_batches_do_not_depend_on_workers(shards):
    def run(workers, epoch):
        stream = ShardStream(shards, DecodeClip(), 3, seed=7, buffer_size=5)
        loader = ShardLoader(stream, num_workers=workers)
        loader._epoch, loader._consumed = epoch - 1, 0
        return _ids(list(loader))

    one = run(0, 1)
    assert run(2, 1) == one
    assert run(3, 1) == one
    assert run(0, 2) != one
    assert sorted(sum(one, [])) == sorted(sum(run(0, 2), []))


# -- DDP: 2 gloo ranks x 2 workers ---------------------------------------------


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_rank(rank, world, port, shards, weights, out):
    """One rank: two training epochs, a balanced one and an evaluation."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
        world_size=world,
    )  # fmt: skip
    try:
        result = {}
        train = ShardLoader(
            ShardStream(shards, DecodeClip(), 4, seed=11, buffer_size=6),
            num_workers=2,
        )
        result["train"] = [_ids(train), _ids(train)]
        balanced = ShardLoader(
            ShardStream(shards, DecodeClip(), 4, seed=11, weights=weights),
            num_workers=2,
        )
        result["balanced"] = _ids(balanced)
        evaluate = ShardLoader(
            ShardStream(shards, DecodeClip(), 3, train=False), num_workers=2
        )
        result["eval"] = _ids(evaluate)
        gathered = [None] * world
        dist.all_gather_object(gathered, result)
        if rank == 0:
            torch.save(gathered, out)
    finally:
        dist.destroy_process_group()


def _weights(shards):
    from speechbrain_ast.training.labels import (
        MultiHotEncoder,
        balanced_sample_weights,
    )

    _, label_lists = read_clip_list(shards)
    return balanced_sample_weights(label_lists, MultiHotEncoder(CLASSES))


def test_ddp_two_ranks_two_workers_see_every_clip_once(shards, tmp_path):
    import torch.multiprocessing as mp

    out = str(tmp_path / "ddp.pt")
    weights = _weights(shards).numpy()
    mp.spawn(
        _ddp_rank, args=(2, _free_port(), shards, weights, out), nprocs=2,
        join=True,
    )  # fmt: skip
    ranks = torch.load(out)
    ids = read_clip_list(shards)[0]
    for epoch in range(2):
        per_rank = [r["train"][epoch] for r in ranks]
        assert len(per_rank[0]) == len(per_rank[1]) == 5  # 33 clips: 17 + 16
        seen = [i for batches in per_rank for b in batches for i in b]
        assert sorted(seen) == sorted(ids)
    assert ranks[0]["train"][0] != ranks[0]["train"][1]  # reshuffled

    # balanced: the ranks share the epoch's draws without overlap
    draws = ShardStream(shards, None, 4, seed=11, weights=weights).epoch_stream(
        1
    )
    seen = [i for r in ranks for b in r["balanced"] for i in b]
    assert sorted(seen) == sorted(ids[p] for p in draws)
    assert len(ranks[0]["balanced"]) == len(ranks[1]["balanced"])

    # evaluation: every clip once; the DistributedEvalSampler interleaving
    # (rank r holds positions r, r + 2, ...) restores the position order
    local = [[i for b in r["eval"] for i in b] for r in ranks]
    assert local[0] == ids[0::2] and local[1] == ids[1::2]


def test_loaders_of_a_make_shards_folder(tmp_path):
    from make_shards import make_shards

    from speechbrain_ast.data.shards import make_shard_loaders
    from speechbrain_ast.training.labels import MultiHotEncoder

    out = str(tmp_path / "shards")
    make_shards(out, data_folder=_mini_audioset(tmp_path), shard_size=3)
    encoder = MultiHotEncoder.from_class_labels_csv(
        f"{out}/class_labels_indices.csv"
    )
    loaders = make_shard_loaders(out, encoder, 2, balanced=True, seed=1)
    ids = read_clip_list(f"{out}/train")[0]
    draws = loaders["train"].dataset.epoch_stream(1)
    seen = [i for b in loaders["train"] for i in b.id]
    assert sorted(seen) == sorted(ids[p] for p in draws)
    batches = list(loaders["eval"])
    assert [i for b in batches for i in b.id] == read_clip_list(f"{out}/eval")[
        0
    ]
    assert batches[0].target.data.shape == (2, len(encoder))


# -- mid-epoch resume ----------------------------------------------------------


def test_loader_resumes_mid_epoch_from_a_checkpoint(shards, tmp_path):
    from speechbrain.utils.checkpoints import Checkpointer
    from speechbrain.utils.epoch_loop import EpochCounter

    def make(folder):
        counter = EpochCounter(3)
        stream = ShardStream(shards, DecodeClip(), 3, seed=5, buffer_size=4)
        loader = ShardLoader(stream, num_workers=2, epoch_counter=counter)
        ckpt = Checkpointer(folder, {"loader": loader, "counter": counter})
        return counter, loader, ckpt

    counter, loader, _ = make(str(tmp_path / "a"))
    full = [_ids(loader) for _ in counter]

    counter, loader, ckpt = make(str(tmp_path / "b"))
    got = []
    for epoch in counter:
        batches = []
        for batch in loader:
            batches.append(list(batch.id))
            if epoch == 2 and len(batches) == 4:
                break
        got.append(batches)
        if epoch == 2:
            ckpt.save_checkpoint(end_of_epoch=False)  # then a kill
            break
    counter, loader, ckpt = make(str(tmp_path / "b"))
    ckpt.recover_if_possible()
    assert loader.state() == {"epoch": 2, "consumed": 4}
    rest = [_ids(loader) for _ in counter]
    got[1] += rest[0]
    assert got + rest[1:] == full


class _Killed(Exception):
    """Stands for a kill in the middle of an epoch."""


def _tiny_brain_class():
    import torch.nn.functional as F

    import speechbrain as sb
    from speechbrain_ast.training.ddp import DistributedEvaluation, unwrap
    from speechbrain_ast.training.metrics import classification_stats

    class TinyBrain(sb.core.Brain):
        """Fbank -> tiny AST -> BCE; mAP on the gathered evaluation."""

        kill_at = None  # (epoch, step)

        def fit_batch(self, batch):
            at = (self.hparams.epoch_counter.current, self.step)
            if at == self.kill_at:
                raise _Killed()
            return super().fit_batch(batch)

        def compute_forward(self, batch, stage):
            wavs, lens = batch.sig
            feats = self.hparams.mean_var_norm(
                self.hparams.compute_features(wavs, lens)
            )
            model = self.modules.embedding_model
            if stage != sb.Stage.TRAIN:
                model = unwrap(model)
            return unwrap(self.modules.classifier)(model(feats))

        def compute_objectives(self, logits, batch, stage):
            targets = batch.target.data
            loss = F.binary_cross_entropy_with_logits(logits, targets)
            if stage != sb.Stage.TRAIN:
                scores = torch.sigmoid(logits)
                self.evaluation.append(batch.id, scores, targets, loss)
            return loss

        def on_stage_start(self, stage, epoch=None):
            self.evaluation = DistributedEvaluation(self.hparams.n_classes)

        def on_stage_end(self, stage, stage_loss, epoch=None):
            if stage == sb.Stage.VALID:
                result = self.evaluation.gather()
                stats = classification_stats(
                    result["scores"], result["targets"], multi_label=True
                )
                self.valid_log.append({"epoch": epoch, **stats})
                self.checkpointer.save_and_keep_only(
                    meta={"mAP": stats["mAP"]}, max_keys=["mAP"]
                )

    return TinyBrain


def test_training_killed_mid_epoch_ends_as_an_uninterrupted_run(
    shards, tmp_path
):
    from speechbrain.utils.epoch_loop import EpochCounter
    from speechbrain_ast.features import FixedNormalization, KaldiFbank
    from speechbrain_ast.model.lobe import AST, ASTHead
    from speechbrain_ast.training.checkpoint import SafeCheckpointer
    from speechbrain_ast.training.labels import MultiHotEncoder

    TinyBrain = _tiny_brain_class()
    encoder = MultiHotEncoder(CLASSES)
    weights = _weights(shards)

    def run(out, kill_at=None):
        torch.manual_seed(0)
        counter = EpochCounter(2)
        hparams = {
            "compute_features": KaldiFbank(target_length=48),
            "mean_var_norm": FixedNormalization(dataset="audioset"),
            "n_classes": 5,
            "epoch_counter": counter,
        }
        modules = {
            "embedding_model": AST(
                input_tdim=48, embed_dim=32, depth=1, num_heads=2
            ),
            "classifier": ASTHead(32, 5),
        }
        decode = DecodeClip(encoder)
        stream = ShardStream(
            shards, decode, 4, seed=2, buffer_size=5, weights=weights
        )
        train = ShardLoader(stream, num_workers=2, epoch_counter=counter)
        valid = ShardLoader(ShardStream(shards, decode, 8, train=False))
        recoverables = {**modules, "counter": counter, "train_loader": train}
        ckpt = SafeCheckpointer(f"{out}/save", recoverables)
        brain = TinyBrain(
            modules,
            opt_class=lambda p: torch.optim.Adam(p, 1e-3),
            hparams=hparams,
            checkpointer=ckpt,
            run_opts={
                "device": "cpu",
                "noprogressbar": True,
                "ckpt_interval_steps": 2,
            },
        )
        brain.kill_at, brain.valid_log = kill_at, []
        brain.fit(counter, train, valid)
        return brain.valid_log, modules

    once, modules = run(str(tmp_path / "once"))
    killed = str(tmp_path / "killed")
    with pytest.raises(_Killed):
        run(killed, kill_at=(2, 4))  # after the step-2 intra-epoch checkpoint
    resumed, resumed_modules = run(killed)
    assert [r["epoch"] for r in resumed] == [2]  # epoch 1 was done before
    assert resumed[-1] == once[-1]  # the same validation metrics
    for name in modules:
        ours = resumed_modules[name].state_dict()
        for key, value in modules[name].state_dict().items():
            torch.testing.assert_close(ours[key], value, rtol=0, atol=0)


# -- balanced resampling -------------------------------------------------------


def test_balanced_resampling_has_the_weighted_samplers_class_frequencies():
    """Over 400 epochs the class counts of per-clip repeats match their
    expectation (z-scores from the exact per-clip variance) and agree with
    SpeechBrain's weighted sampler with replacement (independent code)."""
    from scipy import stats

    from speechbrain.dataio.sampler import ReproducibleWeightedRandomSampler
    from speechbrain_ast.training.labels import (
        MultiHotEncoder,
        balanced_sample_weights,
    )

    rng = np.random.default_rng(0)
    n_clips, n_classes, epochs = 300, 8, 400
    # skewed classes, as AudioSet: class k on a fraction 0.6 / 2^k of clips
    y = rng.random((n_clips, n_classes)) < 0.6 / 2.0 ** np.arange(n_classes)
    y[y.sum(1) == 0, 0] = True
    classes = [f"k{k}" for k in range(n_classes)]
    label_lists = [[classes[k] for k in np.flatnonzero(row)] for row in y]
    weights = balanced_sample_weights(label_lists, MultiHotEncoder(classes))
    weights = weights.numpy()

    counts = np.zeros(n_clips)
    for epoch in range(epochs):
        counts += balanced_repeats(weights, np.random.default_rng([9, epoch]))
    expected = epochs * n_clips * weights / weights.sum()
    frac = expected / epochs - np.floor(expected / epochs)
    variance = epochs * frac * (1 - frac)
    class_obs = counts @ y
    class_exp = expected @ y
    z = (class_obs - class_exp) / np.sqrt(variance @ y)
    assert np.abs(z).max() < 4, z
    assert stats.chi2.sf((z**2).sum(), n_classes) > 1e-3

    sampler = ReproducibleWeightedRandomSampler(
        torch.tensor(weights), epochs * n_clips, replacement=True, seed=3
    )
    drawn = np.bincount(np.fromiter(sampler, int), minlength=n_clips)
    theirs = drawn @ y
    # multinomial draws: std of a class count is at most sqrt(count)
    assert np.all(np.abs(theirs - class_exp) < 4 * np.sqrt(class_exp))
    # balancing: the classes' spread shrinks from over 20x to under 5x
    # (not to 1x: rare classes share clips with common ones)
    assert y.sum(0).max() / y.sum(0).min() > 20
    assert class_obs.max() / class_obs.min() < 5
