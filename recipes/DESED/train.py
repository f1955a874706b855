#!/usr/bin/env python3
"""Sound event detection on DESED (DCASE task 4) with the Audio
Spectrogram Transformer: a frame head on the lobe's patch columns.

To run (from the repository root or from this folder)::

    python recipes/DESED/train.py hparams/ast.yaml \
        --data_folder /path/to/dcase/dataset

The lobe's patch tokens, averaged over frequency, give one vector per
patch column (``forward_frames``); the frame head scores each column and
pools them into clip scores. The weak loss (binary cross-entropy on the
clip scores) trains on every labelled clip, the strong loss (on the frame
scores) on the strongly labelled ones; the clip head, on the mean of the
columns (the lobe's ``mean`` pooling), learns the weak labels too, so
the exported folder also tags whole clips. The unlabelled clips are listed
(``unlabelled.json``) but not used.

Each validation tunes per-class thresholds and a median filter for
event-based F1 and logs PSDS1, PSDS2, event- and segment-based F1; the
checkpoint with the best PSDS1 is tested and exported with its frame head,
thresholds and median window to ``<output_folder>/model``
(``speechbrain_ast.events.detector.frame_scores`` loads it). A single
process: the frame path calls the lobe's ``forward_frames``, which a DDP
wrapper would not synchronise.

Authors
 * speechbrain-ast developers
"""

import json
import logging
import os
import sys

import torch
import torch.nn.functional as F
from desed_prepare import prepare_desed
from hyperpyyaml import load_hyperpyyaml

import speechbrain as sb
from speechbrain.utils.distributed import if_main_process, run_on_main
from speechbrain_ast.data.audio import load_audio
from speechbrain_ast.events.evaluate import evaluate_events
from speechbrain_ast.events.frames import (
    lobe_column_edges,
    sed_loss,
    strong_targets,
)
from speechbrain_ast.events.model_folder import event_extras
from speechbrain_ast.events.postprocess import tune_thresholds
from speechbrain_ast.inference import export_trained_model
from speechbrain_ast.training.recipe import parse_arguments, user_errors
from speechbrain_ast.weights import init_from_pretrained

logger = logging.getLogger(__name__)
# the validation metrics a checkpoint can be kept by (select_by)
METRICS = ("psds1", "psds2", "event_f1", "segment_f1")


class SEDBrain(sb.core.Brain):
    """AST with a frame head: weak and strong losses, event scores."""

    def compute_forward(self, batch, stage):
        """Waveforms -> frame probabilities ``[B, T, C]``, the frame
        head's clip probabilities ``[B, C]`` and the clip head's logits."""
        batch = batch.to(self.device)
        wavs, lens = batch.sig
        # Kaldi fbank in float32, also under --precision fp16/bf16
        with torch.autocast(self.device_type, enabled=False):
            feats = self.hparams.compute_features(wavs.float(), lens)
        if stage == sb.Stage.TRAIN:
            feats = self.hparams.spec_augment(feats)
        feats = self.hparams.mean_var_norm(feats)
        frames = self.modules.embedding_model.forward_frames(feats)
        frame_probs, clip_probs = self.modules.frame_head(frames, lens)
        # the lobe's "mean" pooling of the same tokens: one forward for both
        logits = self.modules.classifier(frames.mean(dim=1))
        return frame_probs, clip_probs, logits

    def edges(self, num_columns):
        """The seconds each patch column stands for."""
        return lobe_column_edges(
            num_columns,
            self.hparams.embedding_model,
            self.hparams.compute_features,
        )

    def compute_objectives(self, predictions, batch, stage):
        """Weak loss on every clip, strong loss on the strongly labelled
        ones, the clip head's binary cross-entropy; outside training the
        frame scores are kept for the event metrics."""
        frame_probs, clip_probs, logits = (p.float() for p in predictions)
        weak = batch.weak.data
        edges = self.edges(frame_probs.shape[1])
        strong = torch.stack(
            [strong_targets(ev, edges, self.labels) for ev in batch.events]
        ).to(frame_probs.device)
        # binary cross-entropy on probabilities is refused under autocast
        with torch.autocast(self.device_type, enabled=False):
            loss = sed_loss(frame_probs, clip_probs, weak, strong, batch.strong)
            clip_loss = F.binary_cross_entropy_with_logits(logits, weak)
        if stage != sb.Stage.TRAIN:
            for i, clip_id in enumerate(batch.id):
                self.scores[clip_id] = (edges, frame_probs[i].detach().cpu())
                self.references[clip_id] = [tuple(e) for e in batch.events[i]]
                self.durations[clip_id] = float(batch.duration[i])
        return loss + self.hparams.clip_loss_weight * clip_loss

    def on_fit_batch_start(self, batch, should_step):
        """Sets this step's learning rate (warm-up, then step decay)."""
        if should_step:
            epoch = self.hparams.epoch_counter.current
            self.hparams.lr_scheduler.apply(
                self.optimizer, epoch, self.optimizer_step + 1
            )

    def on_stage_start(self, stage, epoch=None):
        """Fresh collectors of the evaluation stages."""
        self.scores, self.references, self.durations = {}, {}, {}

    def tune(self):
        """Per-class thresholds for each median window; the window with
        the best event-based F1, its thresholds and its metrics."""
        best = None
        for window in self.hparams.median_windows:
            thresholds = tune_thresholds(
                self.scores, self.references, self.labels,
                self.hparams.threshold_grid, window,
            )  # fmt: skip
            stats = self.event_stats(thresholds, window)
            if best is None or stats["event_f1"] > best[2]["event_f1"]:
                best = (thresholds, window, stats)
        return best

    def event_stats(self, thresholds, median_window):
        """PSDS1, PSDS2, event- and segment-based F1 of the stage."""
        stats = evaluate_events(
            self.scores,
            self.references,
            self.durations,
            self.labels,
            thresholds=thresholds,
            median_window=median_window,
        )
        return {k: round(v, 4) for k, v in stats.items()}

    def on_evaluate_start(self, max_key=None, min_key=None):
        """Loads the best checkpoint and the thresholds tuned with it."""
        checkpoint = self.checkpointer.recover_if_possible(max_key=max_key)
        meta = checkpoint.meta if checkpoint is not None else {}
        self.thresholds = meta.get("thresholds", 0.5)
        self.median_window = meta.get("median_window", 1)
        self.tested_epoch = meta.get("epoch")

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Event metrics, logs, checkpoints."""
        if stage == sb.Stage.TRAIN:
            self.train_loss = stage_loss
            return
        if stage == sb.Stage.VALID:
            thresholds, window, stats = self.tune()
            self.hparams.train_logger.log_stats(
                stats_meta={
                    "epoch": epoch,
                    "lr": self.optimizer.param_groups[0]["lr"],
                },
                train_stats={"loss": self.train_loss},
                valid_stats={"loss": stage_loss, **stats, "median": window},
            )
            self.log_metrics("valid", epoch, stats, thresholds, window)
            # the best by select_by (and the latest) are kept, with the
            # thresholds and median window tuned for them
            self.checkpointer.save_and_keep_only(
                meta={
                    **stats,
                    "epoch": epoch,
                    "thresholds": [float(t) for t in thresholds],
                    "median_window": int(window),
                },
                max_keys=[self.hparams.select_by],
                num_to_keep=self.hparams.ckpt_keep,
            )
        if stage == sb.Stage.TEST:
            stats = self.event_stats(self.thresholds, self.median_window)
            self.hparams.train_logger.log_stats(
                {"Epoch loaded": self.tested_epoch},
                test_stats={"loss": stage_loss, **stats},
            )
            self.log_metrics(
                "test", self.tested_epoch, stats, self.thresholds,
                self.median_window,
            )  # fmt: skip

    def log_metrics(self, stage, epoch, stats, thresholds, median_window):
        """One line of ``metrics.jsonl``: the stage's event metrics with the
        thresholds (one per class, in ``labels.txt``'s order) and median
        window they were computed with."""
        logger.info(
            "%s thresholds %s, median window %d",
            stage,
            thresholds,
            median_window,
        )
        if not if_main_process():
            return
        record = {"stage": stage, "epoch": epoch, **stats}
        record.update(thresholds=thresholds, median_window=median_window)
        path = os.path.join(self.hparams.output_folder, "metrics.jsonl")
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def dataio_prepare(hparams, manifests, labels):
    """The datasets of the three splits (the unlabelled clips are not
    loaded)."""

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return load_audio(wav, sample_rate=hparams["sample_rate"])

    @sb.utils.data_pipeline.takes("labels")
    @sb.utils.data_pipeline.provides("weak")
    def label_pipeline(clip_labels):
        weak = torch.zeros(len(labels))
        weak[[labels.index(label) for label in clip_labels]] = 1.0
        return weak

    return {
        split: sb.dataio.dataset.DynamicItemDataset.from_json(
            json_path=manifests[split],
            dynamic_items=[audio_pipeline, label_pipeline],
            output_keys=["id", "sig", "weak", "strong", "events", "duration"],
        )
        for split in ("train", "valid", "test")
    }


if __name__ == "__main__":
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.exit("train.py: error: the DESED recipe runs on one process.")
    hparams_file, run_opts, overrides = parse_arguments(
        sys.argv[1:], "hparams/ast.yaml"
    )
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )

    # a wrong data folder, missing clips, n_classes or checkpoint: one line
    with user_errors():
        prepare_kwargs = {
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["save_folder"],
            "train_sets": hparams["train_sets"],
            "valid_sets": hparams["valid_sets"],
            "test_sets": hparams["test_sets"],
            "unlabelled_sets": hparams["unlabelled_sets"],
            "skip_missing": hparams["skip_missing"],
            "download": hparams["download"],
        }
        run_on_main(prepare_desed, kwargs=prepare_kwargs)
        prepared = prepare_desed(**prepare_kwargs)  # up to date: reads it
        labels = prepared["labels"]
        if hparams["select_by"] not in METRICS:
            raise ValueError(
                f"select_by must be one of {METRICS}, not "
                f"{hparams['select_by']!r}."
            )
        if len(labels) != hparams["n_classes"]:
            raise ValueError(
                f"the data has {len(labels)} classes ({labels[:10]}) but "
                f"n_classes is {hparams['n_classes']}: pass --n_classes "
                f"{len(labels)}."
            )
        datasets = dataio_prepare(hparams, prepared, labels)
        loaded = init_from_pretrained(
            hparams["embedding_model"],
            audioset_pretrain=hparams["audioset_pretrain"],
            ssl_pretrain=hparams["ssl_pretrain"],
            imagenet_pretrain=hparams["imagenet_pretrain"],
            imagenet_checkpoint=hparams["imagenet_checkpoint"],
            channel_reduction=hparams["channel_reduction"],
            pos_embed=hparams["pos_embed_adaptation"],
            # the clip head reads the mean of the columns, as "mean" pools
            pooling="mean",
            savedir=os.path.join(hparams["save_folder"], "pretrained"),
        )
    logger.info("AST initialised from: %s", loaded)

    brain = SEDBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.labels = labels
    brain.fit(
        hparams["epoch_counter"],
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=hparams["train_dataloader_options"],
        valid_loader_kwargs=hparams["test_dataloader_options"],
    )
    brain.evaluate(
        datasets["test"],
        max_key=hparams["select_by"],
        test_loader_kwargs=hparams["test_dataloader_options"],
    )
    if hparams["export_model"]:
        tuned = (brain.thresholds, brain.median_window)
        export_trained_model(
            os.path.join(hparams["output_folder"], "model"),
            hparams["modules"],
            hparams["mean_var_norm"],
            labels,
            multi_label=True,
            frontend=hparams["compute_features"],
            **event_extras(labels, hparams["frame_head"], *tuned),
        )
