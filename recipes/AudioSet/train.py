#!/usr/bin/env python3
"""Fine-tunes the Audio Spectrogram Transformer on AudioSet (full or
balanced), as in the AST paper.

To run (from the repository root or from this folder)::

    python recipes/AudioSet/train.py hparams/ast_full.yaml \
        --data_folder /path/to/audioset

or, streamed from the tar shards of ``make_shards.py`` (no preparation;
``--ckpt_interval_minutes`` resumes a killed run mid-epoch)::

    python recipes/AudioSet/train.py hparams/ast_full.yaml --shards DIR

The test stage evaluates the best epoch by validation mAP, then (with
``weight_averaging``) the mean weights of epochs ``wa_start..wa_end``; its
scores are saved as ``test_predictions.pt`` (the input of ``ensemble.py``),
the best epoch's as ``test_predictions_best_epoch.pt``.

Authors
 * speechbrain-ast developers
"""

import logging
import os
import sys

import torch
from audioset_prepare import prepare_audioset
from hyperpyyaml import load_hyperpyyaml

import speechbrain as sb
from speechbrain.utils.distributed import if_main_process, run_on_main
from speechbrain_ast.data.audio import load_audio
from speechbrain_ast.data.prepare import check_manifests
from speechbrain_ast.data.shards import make_shard_loaders
from speechbrain_ast.inference import export_trained_model
from speechbrain_ast.training import ddp
from speechbrain_ast.training.labels import MultiHotEncoder, balanced_sampler
from speechbrain_ast.training.losses import classification_loss
from speechbrain_ast.training.recipe import (
    log_evaluation,
    parse_arguments,
    user_errors,
)
from speechbrain_ast.weights import init_from_pretrained

logger = logging.getLogger(__name__)


class AudioSetBrain(sb.core.Brain):
    """AST on AudioSet: multi-label, binary cross-entropy, mAP (the best
    checkpoint), mean AUC, d-prime; evaluation of averaged weights.

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

        # Mixup on waveforms and targets (the paper: probability 0.5)
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

    average_epochs = None

    def on_evaluate_start(self, max_key=None, min_key=None):
        """Recovers the best checkpoint or, with :attr:`average_epochs`
        ``(first, last)``, the mean weights of those epochs' checkpoints
        (also saved in ``<save_folder>/averaged_epochs_<first>-<last>/``)."""
        super().on_evaluate_start(max_key=max_key, min_key=min_key)
        if self.average_epochs is not None:
            self.checkpointer.recover_epoch_average(
                *self.average_epochs, self.modules, self.hparams.save_folder
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
        result = self.evaluation.gather()
        stats = log_evaluation(
            self.hparams.output_folder, stage, epoch, result, multi_label=True
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
            # the best by mAP (and the latest; every epoch for averaging)
            self.checkpointer.save_and_keep_only(
                meta={**stats, "epoch": epoch},
                max_keys=["mAP"],
                num_to_keep=self.hparams.ckpt_keep,
            )


def read_encoder(folder, n_classes):
    """The multi-hot encoder of ``<folder>/class_labels_indices.csv``,
    checked against ``n_classes``."""
    labels_file = os.path.join(folder, "class_labels_indices.csv")
    if not os.path.isfile(labels_file):
        raise FileNotFoundError(
            f"{labels_file} is missing: --shards must be the --save_folder "
            "of make_shards.py (it holds train/, eval/ and "
            "class_labels_indices.csv)."
        )
    encoder = MultiHotEncoder.from_class_labels_csv(labels_file)
    if len(encoder) != n_classes:
        raise ValueError(
            f"{labels_file} has {len(encoder)} labels but n_classes is "
            f"{n_classes}: pass --n_classes {len(encoder)}."
        )
    return encoder


def dataio_prepare(hparams):
    """The train and eval datasets (``id``, ``sig``, multi-hot ``target``)
    and the multi-hot encoder."""
    manifests = hparams["manifest_folder"]
    encoder = read_encoder(manifests, hparams["n_classes"])

    # "sig" and "target" are dynamic items: not names of manifest columns
    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return load_audio(wav, sample_rate=16000)

    @sb.utils.data_pipeline.takes("labels")
    @sb.utils.data_pipeline.provides("target")
    def label_pipeline(labels):
        return encoder.encode(labels.split(","))

    splits = ("train", "eval")
    # before training, not in the middle of an epoch
    check_manifests([os.path.join(manifests, f"{s}.csv") for s in splits])
    datasets = {}
    for split in splits:
        datasets[split] = sb.dataio.dataset.DynamicItemDataset.from_csv(
            csv_path=os.path.join(manifests, f"{split}.csv"),
            dynamic_items=[audio_pipeline, label_pipeline],
            output_keys=["id", "sig", "target"],
        )
    return datasets["train"], datasets["eval"], encoder


if __name__ == "__main__":
    # --help lists the yaml's keys; a missing --data_folder is one line
    hparams_file, run_opts, overrides = parse_arguments(
        sys.argv[1:], "hparams/ast_full.yaml"
    )
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
        if hparams["shards"]:
            # streamed from make_shards.py's tar shards: no preparation
            encoder = read_encoder(hparams["shards"], hparams["n_classes"])
            loaders = make_shard_loaders(
                hparams["shards"],
                encoder,
                hparams["batch_size"],
                num_workers=hparams["num_workers"],
                seed=hparams["seed"],
                balanced=hparams["balanced_sampler"],
                buffer_size=hparams["shard_buffer"],
                epoch_counter=hparams["epoch_counter"],
            )
            train_data, eval_data = loaders["train"], loaders["eval"]
            # a killed run resumes mid-epoch where the loader stopped
            hparams["checkpointer"].add_recoverable("train_loader", train_data)
        else:
            if not hparams["data_folder"]:
                raise ValueError(
                    f"{os.path.basename(hparams_file)} needs --data_folder "
                    "VALUE (the AudioSet folder) or --shards VALUE (the "
                    "folder make_shards.py wrote). All keys: --help"
                )
            run_on_main(
                prepare_audioset,
                kwargs={
                    "data_folder": hparams["data_folder"],
                    "save_folder": hparams["manifest_folder"],
                    "train_splits": hparams["train_splits"],
                    "test_split": hparams["test_split"],
                    "skip_prep": hparams["skip_prep"],
                },
            )
            train_data, eval_data, encoder = dataio_prepare(hparams)
            # AudioSet's per-clip weights (rare labels drawn more often)
            if hparams["balanced_sampler"]:
                with train_data.output_keys_as(["labels"]):
                    labels = [x["labels"].split(",") for x in train_data]
                train_options = hparams["train_dataloader_options"]
                train_options.pop("shuffle", None)
                train_options["sampler"] = balanced_sampler(
                    labels, encoder, hparams["seed"]
                )
        if if_main_process():
            encoder.save(os.path.join(hparams["save_folder"], "labels.txt"))
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

    brain = AudioSetBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    # the reference validates on the eval set every epoch; so do we (the
    # shards' loaders batch, shuffle and split over ranks: no options used)
    brain.fit(
        hparams["epoch_counter"],
        train_data,
        eval_data,
        train_loader_kwargs=hparams["train_dataloader_options"],
        valid_loader_kwargs=hparams["test_dataloader_options"],
    )
    test_options = hparams["test_dataloader_options"]
    brain.evaluate(eval_data, max_key="mAP", test_loader_kwargs=test_options)
    if hparams["weight_averaging"]:
        predictions = os.path.join(hparams["output_folder"], "test_predictions")
        if if_main_process():
            os.replace(predictions + ".pt", predictions + "_best_epoch.pt")
        first, last = hparams["wa_start"], hparams["wa_end"]
        brain.average_epochs = (first, last)
        hparams["train_logger"].log_stats(
            {"weight averaging of epochs": f"{first}-{last}"}
        )
        brain.evaluate(eval_data, test_loader_kwargs=test_options)
    if hparams["export_model"]:
        export_trained_model(
            os.path.join(hparams["output_folder"], "model"),
            hparams["modules"],
            hparams["mean_var_norm"],
            encoder.labels,
            multi_label=hparams["multi_label"],
            frontend=hparams["compute_features"],
        )
    ddp.end_ddp()
