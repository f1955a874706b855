#!/usr/bin/env python3
"""Small real data, from scratch: our small-AST configuration, the same
model initialised by SSAST pretraining on the training clips' own audio, and
SpeechBrain's xvector peer, on one speaker-disjoint split of real speech.

The data: the Free Spoken Digit Dataset (10 digits, 6 speakers, 8 kHz) in
the Speech Commands layout (``speechbrain_ast/testing/fsdd_speech_commands.py``),
trained on four speakers, validated on one and tested on the sixth, whom no
model hears before the test. What runs, one after the other, all on the
manifests the Speech Commands recipe prepares (the same clips for all):

* ``scratch``: ``recipes/SpeechCommands/train.py
  hparams/ast_scratch_small.yaml`` (a subprocess, as a user runs it);
* ``ssast``: ``recipes/SSAST/pretrain.py hparams/ssast_small.yaml`` on the
  training manifest (audio only, no labels), then the same fine-tuning
  command with ``--ssl_pretrain`` and the same number of epochs;
* ``xvector``: SpeechBrain's Speech Commands model as its
  ``recipes/Google-speech-commands/hparams/xvect.yaml`` defines it (Fbank
  24 mels, sentence mean/variance normalisation, Xvector TDNN [512, 512,
  512, 512, 1500], Classifier, NLL on log-softmax, Adam lr 1e-3, batch 32),
  without its noise and reverberation augmentation (they need downloads),
  for the same epochs, the test at its best validation epoch;
* ``scratch_bf16`` (``--bf16``): the scratch run with ``--precision bf16``
  (step time and accuracy against fp32);
* ``--fit_check``: can a small AST from scratch fit 256 clean training clips
  at all (200 steps of batch 32), with the paper's Speech Commands
  augmentations (mixup 0.6, SpecAugment 48/48, noise + roll, BCE, lr 2.5e-4)
  one at a time, its 16x16 patches or 128x2 frame patches, against
  transformers' AST of the same size: training accuracy after the steps;
* ``--ssast_sweep``: SSAST pretraining settings (``SSAST_SWEEP``: the
  yaml's, fewer frames, fewer masked patches, a larger learning rate), each
  with the curve of its masked-patch accuracy on held-out clips and the
  test accuracy after the same fine-tuning as ``ssast``.

Each run records its per-epoch validation accuracy (the curve), the test
accuracy of the epoch it keeps, and its wall time; the JSON also records
the CPU's model name and flags. ``--splits K`` repeats everything (SSAST
pretraining included, on each split's own training audio) on the first K
of six speaker-disjoint splits, each speaker tested once, and adds the
mean and the spread of each run's test accuracy over the splits.

::

    python benchmarks/small_data.py --out results/small_data.json
    python benchmarks/small_data.py --splits 3 --out results/small_data_splits.json
    python benchmarks/small_data.py --quick     # a smoke run: 2 epochs, 3 digits

``--reuse FILE`` takes the xvector peer's runs (the slowest, 18 minutes a
split on 2 cores) from an earlier results file for the splits it holds.

Authors
 * speechbrain-ast developers
"""

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# speaker-disjoint splits of FSDD's six speakers: four train, one validates,
# one is tested; --splits K runs the first K (each speaker tested once in 6)
SPLITS = [
    {"valid_speakers": ("theo",), "test_speakers": ("jackson",)},
    {"valid_speakers": ("lucas",), "test_speakers": ("george",)},
    {"valid_speakers": ("yweweler",), "test_speakers": ("nicolas",)},
    {"valid_speakers": ("jackson",), "test_speakers": ("theo",)},
    {"valid_speakers": ("george",), "test_speakers": ("lucas",)},
    {"valid_speakers": ("nicolas",), "test_speakers": ("yweweler",)},
]
SPLIT = SPLITS[0]
RUNS = ("scratch", "ssast", "xvector", "scratch_bf16")
# --ssast_sweep: pretraining settings (recipes/SSAST overrides of
# ssast_small.yaml), each pretrained then fine-tuned as the ssast run
SSAST_SWEEP = {
    "yaml": [],
    "t64_m25": ["--target_length", "64", "--mask_patch", "25"],
    "t64_m16": ["--target_length", "64", "--mask_patch", "16"],
    "t64_m25_lr1e-3": [
        "--target_length", "64", "--mask_patch", "25", "--lr", "1.0e-3",
    ],
}  # fmt: skip
DEFAULT_RECORDINGS = os.path.join(
    ROOT, "..", "shared", "data", "fsdd", "recordings"
)


def epoch_curve(train_log):
    """Per-epoch validation accuracy and the test accuracy of a recipe's
    ``train_log.txt``.

    Example
    -------
    >>> import tempfile
    >>> path = tempfile.mkdtemp() + "/train_log.txt"
    >>> _ = open(path, "w").write(
    ...     "epoch: 1, lr: 1.00e-03 - train loss: 2.1 - valid loss: 2.0, "
    ...     "valid acc: 2.50e-01\\nEpoch loaded: 1 - test loss: 2.0, "
    ...     "test acc: 3.00e-01\\n"
    ... )
    >>> epoch_curve(path)
    ([0.25], 0.3)
    """
    curve, test = [], None
    with open(train_log, encoding="utf-8") as f:
        for line in f:
            valid = re.search(r"valid acc: ([0-9.e+-]+)", line)
            if valid and line.startswith("epoch:"):
                curve.append(float(valid.group(1)))
            found = re.search(r"test acc: ([0-9.e+-]+)", line)
            if found:
                test = float(found.group(1))
    return curve, test


def run(cmd, log):
    """Runs ``cmd`` (a list) from the repository root; returns seconds."""
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=out)
    if proc.returncode:
        with open(log, encoding="utf-8") as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{tail}")
    return time.perf_counter() - start


def recipe_run(data, out, epochs, n_classes, extra=()):
    """Our small configuration through the Speech Commands recipe."""
    cmd = [
        sys.executable,
        "recipes/SpeechCommands/train.py",
        "hparams/ast_scratch_small.yaml",
        "--data_folder", data,
        "--output_folder", out,
        "--n_classes", str(n_classes),
        "--number_of_epochs", str(epochs),
        "--download", "False",
        "--noprogressbar",
        *extra,
    ]  # fmt: skip
    seconds = run(cmd, out + ".log")
    curve, test = epoch_curve(os.path.join(out, "train_log.txt"))
    return {"valid_curve": curve, "test_acc": test, "seconds": seconds}


def ssast_pretrain(manifest, out, epochs, extra=()):
    """SSAST pretraining on the training manifest's audio; returns the
    encoder file and the seconds it took."""
    cmd = [
        sys.executable,
        "recipes/SSAST/pretrain.py",
        "hparams/ssast_small.yaml",
        "--train_manifest", manifest,
        "--output_folder", out,
        "--number_of_epochs", str(epochs),
        "--noprogressbar",
        *extra,
    ]  # fmt: skip
    seconds = run(cmd, out + ".log")
    return os.path.join(out, "ssast_encoder.pt"), seconds


def ssast_sweep(data, manifest, work, sizes, extra=()):
    """Each setting of ``SSAST_SWEEP``: pretraining on the training
    manifest's audio (the validation curve of its masked-patch accuracy),
    then fine-tuning as the ``ssast`` run; ``sizes`` is (fine-tuning
    epochs, pretraining epochs, classes)."""
    epochs, ssast_epochs, n_classes = sizes
    os.makedirs(work, exist_ok=True)
    results = {}
    for name, overrides in SSAST_SWEEP.items():
        out = os.path.join(work, name)
        encoder, seconds = ssast_pretrain(
            manifest, out, ssast_epochs, [*extra, *overrides]
        )
        pretext, _ = epoch_curve(os.path.join(out, "train_log.txt"))
        tuned = recipe_run(
            data,
            out + "_finetuned",
            epochs,
            n_classes,
            [*extra, "--ssl_pretrain", encoder],
        )
        results[name] = {
            "overrides": overrides,
            "pretext_curve": pretext,
            "pretrain_seconds": seconds,
            **tuned,
        }
        print(name, results[name], flush=True)
    return results


def _manifest(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def xvector_run(manifests, epochs, seed=1986):
    """SpeechBrain's xvector Speech Commands model on the same manifests.

    Arguments
    ---------
    manifests : str
        The folder with ``train.csv``, ``valid.csv``, ``test.csv`` and
        ``classes.txt`` that the recipe prepared.
    epochs : int
    seed : int

    Returns
    -------
    dict
        ``valid_curve``, ``test_acc`` (at the best validation epoch),
        ``seconds``.
    """
    import torch

    from speechbrain.lobes.features import Fbank
    from speechbrain.lobes.models.Xvector import Classifier, Xvector
    from speechbrain.processing.features import InputNormalization
    from speechbrain_ast.data.audio import load_audio

    torch.manual_seed(seed)
    with open(os.path.join(manifests, "classes.txt"), encoding="utf-8") as f:
        classes = [line.strip() for line in f if line.strip()]

    def load(split):
        rows = _manifest(os.path.join(manifests, f"{split}.csv"))
        wavs = [load_audio(r["wav"], 16000) for r in rows]
        labels = torch.tensor([classes.index(r["label"]) for r in rows])
        return wavs, labels

    def batches(wavs, labels, size, shuffle):
        order = (
            torch.randperm(len(wavs)) if shuffle else torch.arange(len(wavs))
        )
        for i in range(0, len(wavs), size):
            idx = order[i : i + size]
            longest = max(len(wavs[j]) for j in idx)
            x = torch.zeros(len(idx), longest)
            lens = torch.zeros(len(idx))
            for k, j in enumerate(idx):
                x[k, : len(wavs[j])] = wavs[j]
                lens[k] = len(wavs[j]) / longest
            yield x, lens, labels[idx]

    start = time.perf_counter()
    data = {split: load(split) for split in ("train", "valid", "test")}
    fbank = Fbank(n_mels=24)
    norm = InputNormalization(norm_type="sentence")
    embed = Xvector(
        in_channels=24,
        activation=torch.nn.LeakyReLU,
        tdnn_blocks=5,
        tdnn_channels=[512, 512, 512, 512, 1500],
        tdnn_kernel_sizes=[5, 3, 3, 1, 1],
        tdnn_dilations=[1, 2, 3, 1, 1],
        lin_neurons=512,
    )
    head = Classifier(
        input_shape=[None, None, 512],
        activation=torch.nn.LeakyReLU,
        lin_blocks=1,
        lin_neurons=512,
        out_neurons=len(classes),
    )
    params = list(embed.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)

    def logits(x, lens, train):
        feats = norm(fbank(x), lens)
        return head(embed(feats, lens)).squeeze(1)

    def accuracy(split):
        embed.eval(), head.eval()
        correct = 0
        with torch.no_grad():
            for x, lens, y in batches(*data[split], 64, False):
                correct += (logits(x, lens, False).argmax(-1) == y).sum()
        return float(correct) / len(data[split][1])

    curve, best, test = [], -1.0, None
    for _ in range(epochs):
        embed.train(), head.train()
        for x, lens, y in batches(*data["train"], 32, True):
            loss = torch.nn.functional.nll_loss(
                torch.log_softmax(logits(x, lens, True), -1), y
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
        curve.append(accuracy("valid"))
        if curve[-1] > best:
            best, test = curve[-1], accuracy("test")
    return {
        "valid_curve": curve,
        "test_acc": test,
        "seconds": time.perf_counter() - start,
    }


FIT_CHECKS = {
    # name: (model, patch, mixup, freqm/timem, noise, loss, lr)
    "paper settings, 16x16": ("ours", 16, 0.6, 48, 0.1, "bce", 2.5e-4),
    "no augmentation, CE, lr 1e-3, 16x16": ("ours", 16, 0, 0, 0, "ce", 1e-3),
    "same, transformers' AST, 16x16": ("hf", 16, 0, 0, 0, "ce", 1e-3),
    "no augmentation, CE, lr 1e-3, 128x2": ("ours", 128, 0, 0, 0, "ce", 1e-3),
    "paper settings, 128x2": ("ours", 128, 0.6, 48, 0.1, "bce", 2.5e-4),
    "paper, CE, lr 1e-3, 128x2": ("ours", 128, 0.6, 48, 0.1, "ce", 1e-3),
    "no augmentation, BCE, lr 2.5e-4, 128x2": (
        "ours",
        128,
        0,
        0,
        0,
        "bce",
        2.5e-4,
    ),
    "mixup 0.6 only, 128x2": ("ours", 128, 0.6, 0, 0, "ce", 1e-3),
    "SpecAugment 48/48 only, 128x2": ("ours", 128, 0, 48, 0, "ce", 1e-3),
    "noise + roll only, 128x2": ("ours", 128, 0, 0, 0.1, "ce", 1e-3),
}


def _fit_lobe(model, patch):
    """A 96-wide, 4-block lobe on 128 frames (ours or transformers')."""
    import torch

    from speechbrain_ast.model.lobe import AST

    if model == "hf":
        from transformers import ASTConfig, ASTModel

        hf = ASTModel(
            ASTConfig(
                hidden_size=96,
                num_hidden_layers=4,
                num_attention_heads=4,
                intermediate_size=384,
                max_length=128,
                num_mel_bins=128,
                hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0,
            )
        )

        class Pooled(torch.nn.Module):
            """transformers' pooled (CLS + DIST) / 2 output."""

            def __init__(self):
                super().__init__()
                self.model = hf

            def forward(self, feats):
                """[B, T, F] -> [B, 96]."""
                return self.model(input_values=feats).pooler_output

        return Pooled()
    if patch == 16:
        return AST(input_tdim=128, embed_dim=96, depth=4, num_heads=4)
    return AST(
        input_tdim=128,
        embed_dim=96,
        depth=4,
        num_heads=4,
        patch_size=(128, 2),
        fstride=128,
        tstride=2,
    )


def fit_check(manifest, classes, clips=256, steps=200, seed=0):
    """Training accuracy of a small AST after ``steps`` steps on ``clips``
    clean training clips, for each setting of :data:`FIT_CHECKS`.

    Returns
    -------
    dict
        name -> {"train_acc", "clean_loss", "seconds"}.
    """
    import torch
    import torch.nn.functional as F

    from speechbrain_ast.data.audio import load_audio
    from speechbrain_ast.features import FixedNormalization, KaldiFbank
    from speechbrain_ast.model.lobe import ASTHead
    from speechbrain_ast.training.augment import (
        Mixup,
        NoiseAndRoll,
        SpecAugment,
    )
    from speechbrain_ast.training.optim import make_optimizer

    def classification_loss(logits, targets, loss):
        if loss == "bce":
            return F.binary_cross_entropy_with_logits(logits, targets)
        return F.cross_entropy(logits, targets)

    rows = _manifest(manifest)
    order = torch.randperm(
        len(rows), generator=torch.Generator().manual_seed(seed)
    )
    rows = [rows[i] for i in order[:clips].tolist()]
    wavs = torch.zeros(len(rows), 16000)
    lens = torch.zeros(len(rows))
    for i, row in enumerate(rows):
        wav = load_audio(row["wav"], 16000)[:16000]
        wavs[i, : len(wav)] = wav
        lens[i] = len(wav) / 16000
    labels = torch.tensor([classes.index(r["label"]) for r in rows])
    onehot = torch.nn.functional.one_hot(labels, len(classes)).float()
    fbank = KaldiFbank(target_length=128)
    norm = FixedNormalization(-6.845978, 5.5654526)  # Speech Commands'
    out = {}
    for name, (model, patch, mix, mask, noise, loss, lr) in FIT_CHECKS.items():
        torch.manual_seed(seed)
        lobe, head = _fit_lobe(model, patch), ASTHead(96, len(classes))
        params = list(lobe.parameters()) + list(head.parameters())
        opt = make_optimizer(params, lr)
        mixup, masks = Mixup(mix), SpecAugment(mask, mask)
        noise_roll = NoiseAndRoll(noise, 10)
        start = time.perf_counter()
        for _ in range(steps):
            lobe.train(), head.train()
            idx = torch.randperm(len(rows))[:32]
            x, y = wavs[idx], onehot[idx]
            if mix:
                x, y = mixup(x, y, lens[idx])
            feats = fbank(x, lens[idx])
            feats = norm(masks(feats) if mask else feats)
            feats = noise_roll(feats) if noise else feats
            batch_loss = classification_loss(head(lobe(feats)), y, loss)
            opt.zero_grad()
            batch_loss.backward()
            opt.step()
        lobe.eval(), head.eval()
        with torch.no_grad():
            logits = head(lobe(norm(fbank(wavs, lens))))
        out[name] = {
            "train_acc": float((logits.argmax(-1) == labels).float().mean()),
            "clean_loss": float(classification_loss(logits, onehot, loss)),
            "seconds": time.perf_counter() - start,
        }
        print(f"{name:42s} {out[name]['train_acc']:.2f}", flush=True)
    return out


def main(argv=None):
    """Command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        description="Small real data from scratch: our small AST, SSAST "
        "initialisation and SpeechBrain's xvector peer on one "
        "speaker-disjoint split of FSDD."
    )
    parser.add_argument(
        "--recordings",
        default=DEFAULT_RECORDINGS,
        help="FSDD's recordings folder (<digit>_<speaker>_<take> files)",
    )
    parser.add_argument("--out", help="JSON file for the results")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--ssast_epochs", type=int, default=20)
    parser.add_argument("--skip", default="", help="e.g. ssast,xvector")
    parser.add_argument(
        "--seed", type=int, help="the recipes' seed (default: the yamls')"
    )
    parser.add_argument(
        "--ssast_encoder",
        help="fine-tune from this ssast_encoder.pt instead of pretraining",
    )
    parser.add_argument(
        "--splits", type=int, default=1, help="speaker splits (1 to 6)"
    )
    parser.add_argument("--bf16", action="store_true", help="also bf16")
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument(
        "--fit_check",
        action="store_true",
        help="only the fitting check (training accuracy per setting)",
    )
    parser.add_argument(
        "--ssast_sweep",
        action="store_true",
        help="only the SSAST pretraining settings of SSAST_SWEEP, each "
        "with its pretext-accuracy curve and fine-tuned test accuracy",
    )
    parser.add_argument("--work", help="folder for the runs (default: temp)")
    parser.add_argument(
        "--reuse",
        help="a results JSON of this script: the xvector peer's runs are "
        "taken from it for the splits it holds, not run again",
    )
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.ssast_epochs < 1:
        parser.error("--epochs and --ssast_epochs must be at least 1")
    if not 1 <= args.splits <= len(SPLITS):
        parser.error(f"--splits is 1 to {len(SPLITS)}, got {args.splits}")
    if args.splits > 1 and (
        args.ssast_encoder or args.fit_check or args.ssast_sweep
    ):
        parser.error(
            "--ssast_encoder, --fit_check and --ssast_sweep take one split"
        )
    if not os.path.isdir(args.recordings):
        parser.error(f"--recordings {args.recordings!r} is not a folder")
    args.reused = reused_runs(args)
    work = args.work or tempfile.mkdtemp(prefix="small_data_")
    if args.splits == 1:
        results = run_split(args, SPLITS[0], work)
    else:
        runs = [
            run_split(args, split, os.path.join(work, f"split{i}"))
            for i, split in enumerate(SPLITS[: args.splits])
        ]
        results = {"cpu": runs[0]["cpu"], "splits": runs}
        results["summary"] = summarize(runs)
        print(f"\n{'run':14s} {'mean':>6s} {'std':>6s}  test acc per split")
        for name, row in results["summary"].items():
            each = " ".join(f"{v:.3f}" for v in row["test_acc"])
            print(f"{name:14s} {row['mean']:6.3f} {row['std']:6.3f}  {each}")
    argv = sys.argv[1:] if argv is None else argv
    results["command"] = " ".join(["python benchmarks/small_data.py", *argv])
    return _write(results, args.out)


def reused_runs(args):
    """``{(valid speakers, test speakers): xvector results}`` of
    ``--reuse``, each marked with the file it comes from."""
    if not args.reuse:
        return {}
    try:
        with open(args.reuse, encoding="utf-8") as f:
            old = json.load(f)
        splits = old.get("splits", [old])
        keys = [_split_key(split["split"]) for split in splits]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise SystemExit(
            f"--reuse {args.reuse}: not a results file of this script "
            f"({type(err).__name__}: {err}); give the JSON of an --out."
        ) from err
    found, epochs = {}, 2 if args.quick else args.epochs
    for key, split in zip(keys, splits):
        if split.get("epochs") != epochs:
            raise SystemExit(
                f"--reuse {args.reuse} ran {split.get('epochs')} epochs, "
                f"not {epochs}: its runs are not comparable."
            )
        if "xvector" in split:
            found[key] = {**split["xvector"], "reused_from": args.reuse}
    return found


def _split_key(split):
    return tuple(split["valid_speakers"]), tuple(split["test_speakers"])


def summarize(runs):
    """Mean and (population) standard deviation of each run's test
    accuracy over the splits.

    Example
    -------
    >>> summarize(
    ...     [{"scratch": {"test_acc": 0.8}}, {"scratch": {"test_acc": 0.9}}]
    ... )["scratch"]["mean"]
    0.85
    """
    summary = {}
    for name in RUNS:
        values = [r[name]["test_acc"] for r in runs if name in r]
        if values:
            mean = sum(values) / len(values)
            var = sum((v - mean) ** 2 for v in values) / len(values)
            summary[name] = {
                "mean": round(mean, 4),
                "std": round(var**0.5, 4),
                "test_acc": values,
            }
    return summary


def run_split(args, split, work):
    """Every run on one speaker split; the results of the split."""
    from deploy import cpu_record

    from speechbrain_ast.testing.fsdd_speech_commands import (
        make_fsdd_speech_commands,
    )

    skip = set(filter(None, args.skip.split(",")))
    digits = (0, 1, 2) if args.quick else tuple(range(10))
    epochs = 2 if args.quick else args.epochs
    ssast_epochs = 1 if args.quick else args.ssast_epochs
    data = os.path.join(work, "data")
    if not os.path.isdir(data):
        make_fsdd_speech_commands(
            args.recordings,
            data,
            digits=digits,
            takes=5 if args.quick else None,
            **split,
        )
    quick = ["--embed_dim", "32", "--depth", "1", "--num_heads", "2"]
    quick = quick if args.quick else []
    if args.seed is not None:
        quick = quick + ["--seed", str(args.seed)]
    results = {
        "cpu": cpu_record(),
        "epochs": epochs,
        "split": split,
        "seed": args.seed,
    }
    scratch = os.path.join(work, "scratch")
    if args.fit_check:
        # the recipe's manifests, from a run of no epoch
        recipe_run(data, scratch, 0, len(digits), quick)
        manifests = os.path.join(scratch, "manifests")
        with open(
            os.path.join(manifests, "classes.txt"), encoding="utf-8"
        ) as f:
            classes = [line.strip() for line in f if line.strip()]
        results["fit_check"] = fit_check(
            os.path.join(manifests, "train.csv"),
            classes,
            clips=32 if args.quick else 256,
            steps=2 if args.quick else 200,
        )
        return results
    if args.ssast_sweep:
        recipe_run(data, scratch, 0, len(digits), quick)  # the manifests
        results["ssast_sweep"] = ssast_sweep(
            data,
            os.path.join(scratch, "manifests", "train.csv"),
            os.path.join(work, "sweep"),
            (epochs, ssast_epochs, len(digits)),
            quick,
        )
        return results
    results["scratch"] = recipe_run(data, scratch, epochs, len(digits), quick)
    print("scratch", results["scratch"], flush=True)
    manifests = os.path.join(scratch, "manifests")
    if "ssast" not in skip:
        if args.ssast_encoder:
            encoder, seconds = args.ssast_encoder, None
        else:
            encoder, seconds = ssast_pretrain(
                os.path.join(manifests, "train.csv"),
                os.path.join(work, "pretrain"),
                ssast_epochs,
                quick,
            )
        tuned = recipe_run(
            data,
            os.path.join(work, "ssast"),
            epochs,
            len(digits),
            quick + ["--ssl_pretrain", encoder],
        )
        results["ssast"] = {**tuned, "pretrain_seconds": seconds}
        print("ssast", results["ssast"], flush=True)
    if _split_key(split) in args.reused:
        results["xvector"] = args.reused[_split_key(split)]
    elif "xvector" not in skip:
        results["xvector"] = xvector_run(
            manifests, epochs, 1986 if args.seed is None else args.seed
        )
        print("xvector", results["xvector"], flush=True)
    if args.bf16:
        results["scratch_bf16"] = recipe_run(
            data,
            os.path.join(work, "scratch_bf16"),
            epochs,
            len(digits),
            quick + ["--precision", "bf16"],
        )
        print("scratch_bf16", results["scratch_bf16"], flush=True)
    print(f"\n{'run':14s} {'test acc':>9s} {'minutes':>8s}  valid curve")
    for name in RUNS:
        if name in results:
            r = results[name]
            curve = " ".join(f"{v:.2f}" for v in r["valid_curve"])
            print(
                f"{name:14s} {r['test_acc']:9.3f} {r['seconds'] / 60:8.1f}  "
                f"{curve}"
            )
    return results


def _write(results, out):
    """Writes the results JSON (when asked); returns the exit status 0."""
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
