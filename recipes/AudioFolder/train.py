#!/usr/bin/env python3
"""Trains AST on a folder of your own labelled recordings.

To run (from the repository root or from this folder)::

    python recipes/AudioFolder/train.py --data_folder MY_SOUNDS

``MY_SOUNDS`` holds one sub-folder per class, or a ``metadata.csv`` (see
``audiofolder_prepare.py``). Without a yaml, the configuration is chosen by
what is given: ``--audioset_pretrain CHECKPOINT`` fine-tunes AST-Base from
the AudioSet checkpoint (``hparams/audioset_finetune.yaml``);
``--ssl_pretrain ENCODER`` fine-tunes an SSAST encoder, of its own shape, as
the SSAST reference does (``hparams/ssast_finetune.yaml``); otherwise a small
AST trains from scratch (``hparams/scratch_small.yaml``). The settings that depend on the data (the
classes, single- or multi-label, the target length, the normalisation
statistics) are chosen from the training split unless given on the command
line; all are printed and written to ``<output_folder>/chosen_settings.json``.

At the end the best checkpoint is tested, the report (per-class precision,
recall and F1, ``confusion.png``, the most confused classes and the clips
most wrong) is written to ``<output_folder>/report.md`` and the model to
``<output_folder>/model``, which ``EncoderClassifier.from_hparams`` and
``python -m speechbrain_ast.tag --model`` load.

Authors
 * speechbrain-ast developers
"""

import json
import logging
import os
import sys

import torch
from audiofolder_prepare import (
    LABEL_SEPARATOR,
    choose_settings,
    prepare_audio_folder,
    read_settings,
)
from audiofolder_report import classification_report, write_report
from hyperpyyaml import load_hyperpyyaml, resolve_references
from ruamel.yaml import YAML

import speechbrain as sb
from speechbrain.utils.distributed import if_main_process, run_on_main
from speechbrain_ast.data.audio import load_audio
from speechbrain_ast.inference import export_trained_model
from speechbrain_ast.training import ddp
from speechbrain_ast.training.losses import classification_loss
from speechbrain_ast.training.metrics import evaluation_stats
from speechbrain_ast.training.recipe import parse_arguments, user_errors
from speechbrain_ast.weights import fetch_pretrained, init_from_pretrained

logger = logging.getLogger(__name__)


def default_hparams(argv):
    """The yaml of a run that names none: by the weights given."""
    options = {a.split("=")[0] for a in argv}
    if "--audioset_pretrain" in options:
        return "hparams/audioset_finetune.yaml"
    if "--ssl_pretrain" in options:
        return "hparams/ssast_finetune.yaml"
    return "hparams/scratch_small.yaml"


class AudioFolderBrain(sb.core.Brain):
    """AST on your own sounds: single- or multi-label, with the report.

    Under DDP each rank evaluates its own part of the validation and test
    sets with the unwrapped modules; metrics are computed on the gathered
    set.
    """

    def compute_forward(self, batch, stage):
        """Waveforms -> logits ``[B, C]``, with the (mixed) targets."""
        batch = batch.to(self.device)
        wavs, lens = batch.sig
        targets = batch.targets.data
        train = stage == sb.Stage.TRAIN
        if train and self.hparams.mixup.prob > 0:
            wavs, targets = self.hparams.mixup(wavs, targets, lens)
        # Kaldi fbank in float32, also under --precision fp16/bf16
        with torch.autocast(self.device_type, enabled=False):
            feats = self.hparams.compute_features(wavs.float(), lens)
        if train:
            feats = self.hparams.spec_augment(feats)
        feats = self.hparams.mean_var_norm(feats)
        noise_roll = getattr(self.hparams, "noise_roll", None)  # SSAST's
        if train and noise_roll is not None:
            feats = noise_roll(feats)
        modules = self.modules if train else ddp.unwrapped(self.modules)
        return modules.classifier(modules.embedding_model(feats)), targets

    def compute_objectives(self, predictions, batch, stage):
        """The loss; outside training also collects scores for metrics."""
        logits, targets = predictions
        loss, scores = classification_loss(logits, targets, self.hparams.loss)
        if stage != sb.Stage.TRAIN:
            self.evaluation.append(batch.id, scores, targets, loss)
        return loss

    def on_fit_batch_start(self, batch, should_step):
        """Sets this step's learning rate (warm-up, then step decay)."""
        if should_step:
            epoch = self.hparams.epoch_counter.current
            self.hparams.lr_scheduler.apply(
                self.optimizer, epoch, self.optimizer_step + 1
            )

    def make_dataloader(
        self, dataset, stage, ckpt_prefix="dataloader-", **loader_kwargs
    ):
        """Validation and test under DDP: one disjoint part per rank."""
        if stage != sb.Stage.TRAIN:
            loader_kwargs = ddp.distributed_loader_kwargs(
                dataset, loader_kwargs, stage.name
            )
        return super().make_dataloader(
            dataset, stage, ckpt_prefix, **loader_kwargs
        )

    def on_stage_start(self, stage, epoch=None):
        """A fresh collector for the evaluation stages."""
        self.evaluation = ddp.DistributedEvaluation(self.hparams.n_classes)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Metrics on the gathered set, logs, checkpoints, the report."""
        if stage == sb.Stage.TRAIN:
            self.train_loss = stage_loss
            return
        result = self.evaluation.gather()
        stats = evaluation_stats(result, self.hparams.multi_label)
        key = "mAP" if self.hparams.multi_label else "acc"
        if stage == sb.Stage.VALID:
            self.hparams.train_logger.log_stats(
                stats_meta={
                    "epoch": epoch,
                    "lr": self.optimizer.param_groups[0]["lr"],
                },
                train_stats={"loss": self.train_loss},
                valid_stats=stats,
            )
            self.checkpointer.save_and_keep_only(
                meta={**stats, "epoch": epoch},
                max_keys=[key],
                num_to_keep=self.hparams.ckpt_keep,
            )
            return
        self.hparams.train_logger.log_stats(
            {"Epoch loaded": self.hparams.epoch_counter.current},
            test_stats=stats,
        )
        if if_main_process():
            report = classification_report(
                result["scores"],
                result["targets"],
                self.classes,
                [self.files[i] for i in result["ids"]],
                multi_label=self.hparams.multi_label,
            )
            path = write_report(
                self.hparams.output_folder, report, self.classes
            )
            logger.info("Report written to %s", path)
        self.test_stats = stats


def dataio_prepare(hparams, classes):
    """The three splits as datasets with waveforms and multi-hot targets."""
    index = {name: i for i, name in enumerate(classes)}

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return load_audio(wav, sample_rate=hparams["sample_rate"])

    @sb.utils.data_pipeline.takes("labels")
    @sb.utils.data_pipeline.provides("targets")
    def label_pipeline(labels):
        target = torch.zeros(len(classes))
        for label in labels.split(LABEL_SEPARATOR):
            target[index[label]] = 1.0
        return target

    datasets, files = {}, {}
    for split in ("train", "valid", "test"):
        datasets[split] = sb.dataio.dataset.DynamicItemDataset.from_csv(
            csv_path=os.path.join(hparams["save_folder"], f"{split}.csv"),
            dynamic_items=[audio_pipeline, label_pipeline],
            output_keys=["id", "sig", "targets"],
        )
        with datasets[split].output_keys_as(["id", "wav"]):
            files.update({item["id"]: item["wav"] for item in datasets[split]})
    return datasets, files


def preview(hparams_file, overrides):
    """The yaml's plain values with the overrides, no object built."""
    with open(hparams_file, encoding="utf-8") as f:
        text = resolve_references(f, overrides).getvalue()
    return YAML(typ="rt").load(text)


if __name__ == "__main__":
    argv = sys.argv[1:]
    # --help lists the yaml's keys; a missing --data_folder is one line
    hparams_file, run_opts, overrides = parse_arguments(
        argv, default_hparams(argv)
    )
    sb.utils.distributed.ddp_init_group(run_opts)
    given = YAML(typ="safe").load(overrides) or {}
    with user_errors():
        # the plain values first: the settings below depend on the data
        hparams = preview(hparams_file, overrides)
        options = {
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["save_folder"],
            "valid_ratio": hparams["valid_ratio"],
            "test_ratio": hparams["test_ratio"],
            "group_column": hparams["group_column"],
            "group_pattern": hparams["group_pattern"],
            "label_pattern": hparams["label_pattern"],
            "seed": hparams["seed"],
        }
        if not hparams["skip_prep"]:
            run_on_main(prepare_audio_folder, kwargs=options)
        with open(
            os.path.join(hparams["save_folder"], "classes.json"),
            encoding="utf-8",
        ) as f:
            info = json.load(f)
        # an SSAST encoder gives the lobe's shape
        pretrained = os.path.join(hparams["save_folder"], "pretrained")
        encoder = hparams["ssl_pretrain"] and fetch_pretrained(
            hparams["ssl_pretrain"], pretrained, name="ssl_pretrain"
        )
        # chosen once, on the main process (the statistics computed there)
        path = os.path.join(hparams["output_folder"], "chosen_settings.json")
        args = [info, hparams["save_folder"], given, encoder, path]
        run_on_main(choose_settings, args=args)
        chosen = read_settings(path)
    settings = {key: value for key, (value, _) in chosen.items()}
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, {**given, **settings})
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides={**given, **settings},
    )
    logger.info("hparams file: %s", hparams_file)
    for key, (value, why) in chosen.items():
        logger.info("chosen: %s = %s (%s)", key, value, why)

    with user_errors():
        datasets, files = dataio_prepare(hparams, info["classes"])
        loaded = init_from_pretrained(
            hparams["embedding_model"],
            audioset_pretrain=hparams["audioset_pretrain"],
            ssl_pretrain=encoder,  # fetched above
            imagenet_pretrain=hparams["imagenet_pretrain"],
            imagenet_checkpoint=hparams["imagenet_checkpoint"],
            channel_reduction=hparams["channel_reduction"],
            pos_embed=hparams["pos_embed_adaptation"],
            pooling=hparams["pooling"],
            savedir=pretrained,
        )
    logger.info("AST initialised from: %s", loaded)

    brain = AudioFolderBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.classes, brain.files = info["classes"], files
    brain.fit(
        hparams["epoch_counter"],
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=hparams["train_dataloader_options"],
        valid_loader_kwargs=hparams["test_dataloader_options"],
    )
    key = "mAP" if hparams["multi_label"] else "acc"
    brain.evaluate(
        datasets["test"],
        max_key=key,
        test_loader_kwargs=hparams["test_dataloader_options"],
    )
    if hparams["export_model"]:
        export_trained_model(
            os.path.join(hparams["output_folder"], "model"),
            hparams["modules"],
            hparams["mean_var_norm"],
            info["classes"],
            multi_label=hparams["multi_label"],
            frontend=hparams["compute_features"],
        )
    ddp.end_ddp()
