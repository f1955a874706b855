#!/usr/bin/env python3
"""Self-supervised pretraining of the AST encoder with SSAST (Gong, Lai,
Chung & Glass, AAAI 2022): masked patch modelling on unlabelled audio.

To run (from the repository root or from this folder), on a CSV with a
``wav`` column (paths relative to the CSV's folder or absolute)::

    python recipes/SSAST/pretrain.py hparams/ssast_small.yaml \
        --train_manifest /path/to/unlabelled.csv --output_folder DIR

or on every ``.wav`` / ``.flac`` file under a folder, recursively::

    python recipes/SSAST/pretrain.py hparams/ssast_small.yaml \
        --data_folder /path/to/audio --output_folder DIR

Multi-GPU: ``torchrun --nproc_per_node=N pretrain.py hparams/ssast_base.yaml
...`` (``--distributed_backend gloo --device cpu`` on CPUs). A run that is
stopped (killed, or out of time) starts again from its last checkpoint when
the same command is given again; ``--ckpt_interval_minutes 30`` also saves
inside long epochs. At the end the encoder is written, weights only, to
``DIR/ssast_encoder.pt``, which ``speechbrain_ast.weights.load_ssast`` loads
into an AST lobe for fine-tuning.

Each step: waveforms -> Kaldi fbank (padded / cut to ``target_length``) ->
fixed normalisation -> SSAST (masking, encoder, the discriminative and the
generative head) -> ``mpc + mpg_weight * mpg``. A held-out share of the
clips (``valid_fraction``) is scored after every epoch with masks from a
fixed seed, so that its figures are comparable between epochs; the
learning rate is halved when its masked-patch accuracy stops improving for
``lr_patience`` epochs (the reference's schedule).

Authors
 * speechbrain-ast developers
"""

import csv
import logging
import os
import random
import sys

import torch
from hyperpyyaml import load_hyperpyyaml

import speechbrain as sb
from speechbrain.nnet.schedulers import update_learning_rate
from speechbrain.utils.distributed import ddp_all_reduce, if_main_process
from speechbrain_ast.data.audio import load_audio
from speechbrain_ast.data.prepare import check_audio_files, raise_for_bad_audio
from speechbrain_ast.training.checkpoint import SafeCheckpointer
from speechbrain_ast.training.ddp import end_ddp
from speechbrain_ast.training.recipe import parse_arguments
from speechbrain_ast.weights import save_ssast_encoder

AUDIO_EXTENSIONS = (".wav", ".flac")
STAT_NAMES = ("mpc", "acc", "mpg")

logger = logging.getLogger(__name__)


class SSASTBrain(sb.Brain):
    """Masked patch pretraining: the loss, its parts and the schedule.

    The schedule is the reference's: a linear warm-up over
    ``warmup_steps``, then PyTorch's ``ReduceLROnPlateau`` on the masked
    patch accuracy (``mode="max"``, ``threshold=0``: any increase is an
    improvement), saved with the checkpoints.
    """

    def init_optimizers(self):
        """The optimiser and, on it, the plateau schedule."""
        super().init_optimizers()
        self.lr_plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer,
            mode="max",
            factor=self.hparams.lr_factor,
            patience=self.hparams.lr_patience,
            threshold=0,
        )
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable("lr_plateau", self.lr_plateau)

    def compute_forward(self, batch, stage):
        """Waveforms -> features -> the SSAST losses (a dict)."""
        batch = batch.to(self.device)
        wavs, lens = batch.sig
        # the Kaldi frontend always runs in float32
        with torch.autocast(device_type=self.device_type, enabled=False):
            feats = self.hparams.compute_features(wavs.float(), lens)
        feats = self.hparams.mean_var_norm(feats)
        # validation masks come from a fixed seed: comparable epochs
        rng = None if stage == sb.Stage.TRAIN else self.valid_rng
        return self.modules.ssast_model(feats, rng=rng)

    def compute_objectives(self, predictions, batch, stage):
        """The weighted sum; its parts are summed up for the epoch's log."""
        n = len(batch.id)
        for name in STAT_NAMES:
            self.sums[name] += predictions[name].item() * n
        self.sums["count"] += n
        return predictions["loss"]

    def on_fit_batch_start(self, batch, should_step):
        """Linear warm-up over ``warmup_steps``; afterwards the plateau
        schedule alone sets the learning rate."""
        step = self.optimizer_step + 1
        if should_step and step <= self.hparams.warmup_steps:
            lr = self.hparams.lr * step / self.hparams.warmup_steps
            update_learning_rate(self.optimizer, lr)

    def on_stage_start(self, stage, epoch=None):
        """Resets the sums; a fresh fixed-seed mask source to validate."""
        self.sums = dict.fromkeys((*STAT_NAMES, "count"), 0.0)
        self.valid_rng = random.Random(self.hparams.seed)

    def stage_stats(self, stage_loss):
        """Mean loss, InfoNCE, accuracy and MSE of the stage, over every
        process (DDP: each one saw its own share)."""
        sums = torch.tensor(
            [stage_loss * self.sums["count"]]
            + [self.sums[name] for name in STAT_NAMES]
            + [self.sums["count"]],
            dtype=torch.float64,
            device=self.device,
        )
        sums = ddp_all_reduce(sums, torch.distributed.ReduceOp.SUM)
        count = max(float(sums[-1]), 1.0)
        names = ("loss", *STAT_NAMES)
        return {name: float(sums[i]) / count for i, name in enumerate(names)}

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs the epoch, updates the plateau schedule, checkpoints."""
        stats = self.stage_stats(stage_loss)
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            if self.has_valid:
                return
            valid_stats, score = None, stats["acc"]
        else:
            valid_stats, score = stats, stats["acc"]
        lr = self.optimizer.param_groups[0]["lr"]
        self.lr_plateau.step(score)
        self.hparams.train_logger.log_stats(
            stats_meta={"epoch": epoch, "lr": lr},
            train_stats=self.train_stats,
            valid_stats=valid_stats,
        )
        self.checkpointer.save_and_keep_only(
            meta={**stats, "epoch": epoch},
            num_to_keep=self.hparams.ckpt_keep,
        )


def _manifest_clips(manifest):
    """``{id: path}`` from a CSV with a ``wav`` column."""
    if not os.path.isfile(manifest):
        raise FileNotFoundError(
            f"train_manifest {manifest!r} does not exist: give a CSV with a "
            "'wav' column (one audio file per row)."
        )
    folder = os.path.dirname(os.path.abspath(manifest))
    with open(manifest, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "wav" not in reader.fieldnames:
            raise ValueError(
                f"{manifest!r} has no 'wav' column (columns: "
                f"{reader.fieldnames}); name the audio path column 'wav'."
            )
        id_column = next(
            (c for c in ("ID", "id") if c in reader.fieldnames), None
        )
        clips = {}
        for n, row in enumerate(reader):
            key = row[id_column] if id_column else f"clip{n:07d}"
            if key in clips:
                raise ValueError(
                    f"{manifest!r}: the id {key!r} appears twice; ids must "
                    "be unique."
                )
            clips[key] = os.path.join(folder, os.path.expanduser(row["wav"]))
    return clips


def _folder_clips(data_folder):
    """``{id: path}`` of every .wav / .flac file under ``data_folder``."""
    if not os.path.isdir(data_folder):
        raise FileNotFoundError(
            f"data_folder {data_folder!r} is not a folder: give the folder "
            "that holds the audio files (searched recursively)."
        )
    paths = []
    for root, dirs, files in os.walk(data_folder):
        dirs.sort()
        paths += [
            os.path.join(root, name)
            for name in sorted(files)
            if name.lower().endswith(AUDIO_EXTENSIONS)
        ]
    top = os.path.abspath(data_folder)
    return {os.path.relpath(p, top): os.path.abspath(p) for p in paths}


def list_clips(hparams):
    """The unlabelled clips: from ``train_manifest`` or ``data_folder``."""
    manifest, folder = hparams["train_manifest"], hparams["data_folder"]
    if bool(manifest) == bool(folder):
        raise ValueError(
            "give exactly one of --train_manifest CSV (a 'wav' column) or "
            f"--data_folder DIR (got train_manifest={manifest!r}, "
            f"data_folder={folder!r})."
        )
    clips = _manifest_clips(manifest) if manifest else _folder_clips(folder)
    where = manifest or folder
    if not clips:
        raise ValueError(
            f"no audio in {where!r}: a CSV needs rows, a folder .wav or "
            ".flac files."
        )
    _, problems = check_audio_files(
        list(clips.values()), hparams["num_workers"] or 1
    )
    raise_for_bad_audio(
        [
            f"{path}: {problems[path]}"
            for path in clips.values()
            if path in problems
        ],
        len(clips),
        f"audio files of {where}",
        "remove or replace them",
    )
    return clips


def dataio_prepare(hparams):
    """Training and validation datasets (validation None when empty)."""
    clips = list_clips(hparams)
    keys = sorted(clips)
    random.Random(hparams["seed"]).shuffle(keys)
    fraction = hparams["valid_fraction"]
    n_valid = 0
    if fraction > 0 and len(keys) >= 2:
        n_valid = min(max(1, round(fraction * len(keys))), len(keys) - 1)

    # "sig" is a dynamic item, not the name of a manifest column
    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return load_audio(wav, sample_rate=hparams["sample_rate"])

    def dataset(part):
        if not part:
            return None
        data = sb.dataio.dataset.DynamicItemDataset(
            {key: {"wav": clips[key]} for key in sorted(part)},
            dynamic_items=[audio_pipeline],
        )
        data.set_output_keys(["id", "sig"])
        return data

    logger.info(
        "%d clips: %d for training, %d held out", len(keys),
        len(keys) - n_valid, n_valid,
    )  # fmt: skip
    return dataset(keys[n_valid:]), dataset(keys[:n_valid])


if __name__ == "__main__":
    # --help lists the yaml's keys; the hparams file is looked up here first
    hparams_file, run_opts, overrides = parse_arguments(
        sys.argv[1:], "hparams/ssast_small.yaml"
    )
    sb.utils.distributed.ddp_init_group(run_opts)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    train_data, valid_data = dataio_prepare(hparams)

    checkpointer = SafeCheckpointer(
        hparams["save_folder"],
        recoverables={
            "ssast_model": hparams["ssast_model"],
            "counter": hparams["epoch_counter"],
        },
    )
    brain = SSASTBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=checkpointer,
    )
    brain.has_valid = valid_data is not None
    brain.fit(
        hparams["epoch_counter"],
        train_data,
        valid_data,
        train_loader_kwargs=hparams["train_dataloader_options"],
        valid_loader_kwargs=hparams["valid_dataloader_options"],
    )
    if if_main_process():
        save_ssast_encoder(
            hparams["ssast_model"],
            hparams["encoder_file"],
            norm_stats=(hparams["norm_mean"], hparams["norm_std"]),
        )
        logger.info("encoder written to %s", hparams["encoder_file"])
    end_ddp()
