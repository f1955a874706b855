#!/usr/bin/env python3
"""Fine-tunes the Audio Spectrogram Transformer on ESC-50.

To run (from the repository root or from this folder)::

    python recipes/ESC50/train.py hparams/ast.yaml \
        --data_folder /path/to/ESC-50-master

(the AudioSet checkpoint, ``--audioset_pretrain``, is fetched from the
HuggingFace hub, or read from a local path).

A tiny model on a CPU: ``--embed_dim 64 --depth 2 --num_heads 2
--imagenet_pretrain False --audioset_pretrain False``. Multi-GPU:
``torchrun --nproc_per_node=N train.py hparams/ast.yaml ...``. The best
checkpoint is evaluated on the test folds (``test acc`` in train_log.txt)
and exported as an ``EncoderClassifier`` folder, ``<output_folder>/model``.

Authors
 * speechbrain-ast developers
"""

import logging
import os
import sys

import torch
import torch.nn.functional as F
from esc50_prepare import class_names, prepare_esc50
from hyperpyyaml import load_hyperpyyaml

import speechbrain as sb
from speechbrain.utils.distributed import run_on_main
from speechbrain_ast.data.audio import load_audio
from speechbrain_ast.data.prepare import check_manifests
from speechbrain_ast.inference import export_trained_model
from speechbrain_ast.training import ddp
from speechbrain_ast.training.losses import classification_loss
from speechbrain_ast.training.recipe import (
    log_evaluation,
    parse_arguments,
    user_errors,
)
from speechbrain_ast.weights import init_from_pretrained
from speechbrain_ast.weights.labels import LABEL_FILES, read_labels

logger = logging.getLogger(__name__)


class ESC50Brain(sb.core.Brain):
    """AST on ESC-50: one class per clip, cross-entropy, accuracy.

    Under DDP each rank evaluates its own slice of the validation and test
    sets with the unwrapped modules; the metrics are computed on the
    gathered set, equal to a single-process run.
    """

    def compute_forward(self, batch, stage):
        """Waveforms -> logits ``[B, C]``, with the (mixed) targets."""
        batch = batch.to(self.device)
        wavs, lens = batch.sig
        targets = batch.target.data
        train = stage == sb.Stage.TRAIN

        # Mixup on waveforms and targets (off in the paper's ESC-50 set-up)
        if train and self.hparams.mixup.prob > 0:
            wavs, targets = self.hparams.mixup(wavs, targets, lens)

        # Kaldi fbank in float32, also under --precision fp16/bf16
        with torch.autocast(self.device_type, enabled=False):
            feats = self.hparams.compute_features(wavs.float(), lens)
        if train:
            feats = self.hparams.spec_augment(feats)
        feats = self.hparams.mean_var_norm(feats)

        # evaluation: no DDP wrapper, so ranks need not step together
        modules = self.modules if train else ddp.unwrapped(self.modules)
        logits = modules.classifier(modules.embedding_model(feats))
        return logits, targets

    def compute_objectives(self, predictions, batch, stage):
        """Cross-entropy with soft targets (``loss: ce``) or binary
        cross-entropy (``bce``); outside training the scores are kept."""
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
        """Validation and test under DDP: one disjoint slice per rank."""
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
        """Metrics on the gathered set, logs, checkpoints."""
        if stage == sb.Stage.TRAIN:
            self.train_loss = stage_loss
            return
        if stage == sb.Stage.TEST:
            epoch = self.hparams.epoch_counter.current
        # metrics.jsonl (and the test predictions) before the checkpoint
        stats = log_evaluation(
            self.hparams.output_folder, stage, epoch, self.evaluation.gather()
        )
        if stage == sb.Stage.TEST:
            self.hparams.train_logger.log_stats(
                {"Epoch loaded": epoch}, test_stats=stats
            )
        if stage == sb.Stage.VALID:
            self.hparams.train_logger.log_stats(
                stats_meta={
                    "epoch": epoch,
                    "lr": self.optimizer.param_groups[0]["lr"],
                },
                train_stats={"loss": self.train_loss},
                valid_stats=stats,
            )
            # the best by accuracy (and the latest) are kept
            self.checkpointer.save_and_keep_only(
                meta={**stats, "epoch": epoch},
                max_keys=["acc"],
                num_to_keep=self.hparams.ckpt_keep,
            )


def dataio_prepare(hparams):
    """The datasets of the three splits and the class names in index
    order (the classes no clip has take ESC-50's official names)."""

    # "sig" and "target" are dynamic items: not names of manifest columns
    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return load_audio(wav, sample_rate=16000)

    @sb.utils.data_pipeline.takes("class_index")
    @sb.utils.data_pipeline.provides("target")
    def label_pipeline(class_index):
        index = torch.tensor(int(class_index))
        return F.one_hot(index, hparams["n_classes"]).float()

    manifests = {
        split: os.path.join(hparams["save_folder"], f"{split}.csv")
        for split in ("train", "valid", "test")
    }
    # before training, not in the middle of an epoch
    check_manifests(list(manifests.values()))
    datasets, labels = {}, {}
    for split, manifest in manifests.items():
        datasets[split] = sb.dataio.dataset.DynamicItemDataset.from_csv(
            csv_path=manifest,
            dynamic_items=[audio_pipeline, label_pipeline],
            output_keys=["id", "sig", "target"],
        )
        with datasets[split].output_keys_as(["class_index", "category"]):
            for item in datasets[split]:
                labels[int(item["class_index"])] = item["category"]
    official = os.path.join(LABEL_FILES, "esc_class_labels_indices.csv")
    names = class_names(
        labels,
        hparams["n_classes"],
        official=read_labels(official),
        allow_unseen=hparams["allow_unseen_classes"],
        source=f"the manifests in {hparams['save_folder']}",
    )
    return datasets, names


if __name__ == "__main__":
    # without a yaml, an SSAST encoder is fine-tuned as its reference does
    ssl = any(a.split("=")[0] == "--ssl_pretrain" for a in sys.argv[1:])
    default = "hparams/ssast_patch.yaml" if ssl else "hparams/ast.yaml"
    # --help lists the yaml's keys; a missing --data_folder is one line
    hparams_file, run_opts, overrides = parse_arguments(sys.argv[1:], default)
    sb.utils.distributed.ddp_init_group(run_opts)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )

    # a wrong data folder, bad clips, n_classes or checkpoint: one line
    with user_errors():
        if not hparams["skip_prep"]:
            run_on_main(
                prepare_esc50,
                kwargs={
                    "data_folder": hparams["data_folder"],
                    "save_folder": hparams["save_folder"],
                    "train_fold_nums": hparams["train_fold_nums"],
                    "valid_fold_nums": hparams["valid_fold_nums"],
                    "test_fold_nums": hparams["test_fold_nums"],
                },
            )
        datasets, labels = dataio_prepare(hparams)
        loaded = init_from_pretrained(
            hparams["embedding_model"],
            audioset_pretrain=hparams["audioset_pretrain"],
            ssl_pretrain=hparams["ssl_pretrain"],
            imagenet_pretrain=hparams["imagenet_pretrain"],
            imagenet_checkpoint=hparams["imagenet_checkpoint"],
            channel_reduction=hparams["channel_reduction"],
            pos_embed=hparams["pos_embed_adaptation"],
            pooling=hparams["pooling"],
            savedir=os.path.join(hparams["save_folder"], "pretrained"),
        )
    logger.info("AST initialised from: %s", loaded)

    brain = ESC50Brain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.fit(
        hparams["epoch_counter"],
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs=hparams["train_dataloader_options"],
        valid_loader_kwargs=hparams["test_dataloader_options"],
    )
    brain.evaluate(
        datasets["test"],
        max_key="acc",
        test_loader_kwargs=hparams["test_dataloader_options"],
    )
    if hparams["export_model"]:
        export_trained_model(
            os.path.join(hparams["output_folder"], "model"),
            hparams["modules"],
            hparams["mean_var_norm"],
            labels,
            multi_label=hparams["multi_label"],
            frontend=hparams["compute_features"],
        )
    ddp.end_ddp()
