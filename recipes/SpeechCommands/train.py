#!/usr/bin/env python3
"""Recipe: AST on Speech Commands V2 (35 words), as in the AST paper.

Run from the repository root or from this folder (a relative hparams path
is looked up here first):

    python recipes/SpeechCommands/train.py hparams/ast.yaml \
        --data_folder /path/to/speech_commands_v0.02

Trains on the official training clips, keeps the checkpoint with the best
validation accuracy and writes the test accuracy (``acc`` in [0, 1]) to
``<output_folder>/train_log.txt``. The training loop (mixup, SpecAugment,
noise + roll, BCE, the paper's optimiser and schedule, sharded DDP
evaluation) is :class:`SpeechCommandsBrain` below.

Authors
 * speechbrain-ast developers
"""

import logging
import os
import sys

import torch
from speechcommands_prepare import prepare_speech_commands

import speechbrain as sb
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.utils.distributed import if_main_process, run_on_main
from speechbrain_ast.data.audio import load_audio
from speechbrain_ast.data.prepare import check_manifests
from speechbrain_ast.inference.model_folder import export_model_folder
from speechbrain_ast.training.ddp import (
    ShardedEvaluation,
    end_ddp,
    sharded_loader_kwargs,
    unwrap,
)
from speechbrain_ast.training.labels import as_float_targets
from speechbrain_ast.training.losses import class_scores, classification_loss
from speechbrain_ast.training.metrics import classification_stats
from speechbrain_ast.training.optim import set_lr
from speechbrain_ast.training.recipe import (
    init_from_pretrained,
    load_recipe_hparams,
    log_jsonl,
    parse_recipe_arguments,
    save_predictions,
    user_errors,
)

# a relative hparams path is looked up here first (the prepare script is
# imported from here too: Python puts the script's folder on sys.path)
RECIPE_DIR = os.path.dirname(os.path.abspath(__file__))

logger = logging.getLogger(__name__)
SPLITS = ("train", "valid", "test")


class SpeechCommandsBrain(sb.core.Brain):
    """AST on Speech Commands: one word per clip, BCE as in the paper (the
    yaml's ``loss``), accuracy; noise + roll on the normalised features.

    Under DDP each rank evaluates its own shard of the validation and test
    sets with the unwrapped modules, and the metrics are computed on the
    gathered set: equal to a single-process run.
    """

    def compute_forward(self, batch, stage):
        """Waveforms -> logits ``[B, C]``, with the (mixed) targets."""
        batch = batch.to(self.device)
        wavs, lens = batch.sig
        targets = as_float_targets(batch.target, self.hparams.n_classes)
        train = stage == sb.Stage.TRAIN

        # Mixup on waveforms and targets (the paper: probability 0.6)
        if train and self.hparams.mixup.prob > 0:
            wavs, targets = self.hparams.mixup(wavs, targets, lens)

        # Kaldi fbank in float32, also under --precision fp16/bf16
        with torch.autocast(self.device_type, enabled=False):
            feats = self.hparams.compute_features(wavs.float(), lens)
        if train:
            feats = self.hparams.spec_augment(feats)
        feats = self.hparams.mean_var_norm(feats)
        if train:
            feats = self.hparams.noise_roll(feats)

        # evaluation: no DDP wrapper, so ranks need not step together
        embedding_model = self.modules.embedding_model
        classifier = self.modules.classifier
        if not train:
            embedding_model = unwrap(embedding_model)
            classifier = unwrap(classifier)
        logits = classifier(embedding_model(feats))
        return logits, targets

    def compute_objectives(self, predictions, batch, stage):
        """The loss; outside training also collects scores for metrics."""
        logits, targets = predictions
        loss = classification_loss(logits, targets, self.hparams.loss)
        if stage != sb.Stage.TRAIN:
            scores = class_scores(logits, self.hparams.loss)
            self.evaluation.append(batch.id, scores, targets, loss)
        return loss

    def on_fit_batch_start(self, batch, should_step):
        """Sets this step's learning rate (warm-up, then step decay)."""
        if should_step:
            epoch = self.hparams.epoch_counter.current
            lr = self.hparams.lr_scheduler(epoch, self.optimizer_step + 1)
            set_lr(self.optimizer, lr)

    def make_dataloader(
        self, dataset, stage, ckpt_prefix="dataloader-", **loader_kwargs
    ):
        """Validation and test under DDP: one disjoint shard per rank."""
        if stage != sb.Stage.TRAIN:
            loader_kwargs = sharded_loader_kwargs(
                dataset, loader_kwargs, stage.name
            )
        return super().make_dataloader(
            dataset, stage, ckpt_prefix, **loader_kwargs
        )

    def on_stage_start(self, stage, epoch=None):
        """A fresh collector for the evaluation stages."""
        self.evaluation = ShardedEvaluation(self.hparams.n_classes)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Metrics on the gathered set, logs, checkpoints."""
        if stage == sb.Stage.TRAIN:
            self.train_loss = stage_loss
            return
        result = self.evaluation.gather()
        stats = {"loss": result["loss"]}
        stats.update(classification_stats(result["scores"], result["targets"]))
        logger.info(
            "%s: %d examples evaluated (per rank: %s)",
            stage.name,
            len(result["ids"]),
            result["per_rank"],
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
            log_jsonl(
                self.hparams.output_folder,
                {"stage": "valid", "epoch": epoch, **stats},
            )
            # the best by accuracy (and the latest) are kept
            self.checkpointer.save_and_keep_only(
                meta={**stats, "epoch": epoch},
                max_keys=["acc"],
                num_to_keep=self.hparams.ckpt_keep,
            )
        else:
            loaded = self.hparams.epoch_counter.current
            self.hparams.train_logger.log_stats(
                {"Epoch loaded": loaded}, test_stats=stats
            )
            log_jsonl(
                self.hparams.output_folder,
                {
                    "stage": "test",
                    "epoch": loaded,
                    "ids_evaluated": len(result["ids"]),
                    "per_rank": result["per_rank"],
                    **stats,
                },
            )
            save_predictions(self.hparams.output_folder, result)
        self.last_stats = stats


def dataio_prepare(hparams):
    """Builds the train/valid/test datasets and the label encoder.

    Arguments
    ---------
    hparams : dict
        The loaded hyperparameters (``manifest_folder``, ``n_classes``,
        ``sample_rate``, ``save_folder``).

    Returns
    -------
    datasets : dict
        ``train``, ``valid``, ``test``: ``DynamicItemDataset`` giving
        ``id``, ``sig`` (waveform) and ``target`` (class index).
    classes : list of str
        The words in label index order (``classes.txt``; the encoder is
        also saved as ``<save_folder>/label_encoder.txt``).
    """
    manifests = hparams["manifest_folder"]
    with open(os.path.join(manifests, "classes.txt")) as f:
        classes = [line.strip() for line in f if line.strip()]
    if len(classes) != hparams["n_classes"]:
        raise ValueError(
            f"{manifests}/classes.txt lists {len(classes)} words but "
            f"n_classes is {hparams['n_classes']}: pass --n_classes "
            f"{len(classes)} or check the dataset folder."
        )
    label_encoder = CategoricalEncoder()
    label_encoder.update_from_iterable(classes)
    label_encoder.expect_len(hparams["n_classes"])
    if if_main_process():
        os.makedirs(hparams["save_folder"], exist_ok=True)
        label_encoder.save(
            os.path.join(hparams["save_folder"], "label_encoder.txt")
        )

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return load_audio(wav, hparams["sample_rate"])

    @sb.utils.data_pipeline.takes("label")
    @sb.utils.data_pipeline.provides("target")
    def label_pipeline(label):
        return torch.tensor([label_encoder.encode_label(label)])

    # before training, not in the middle of an epoch
    check_manifests([os.path.join(manifests, f"{s}.csv") for s in SPLITS])
    datasets = {}
    for split in SPLITS:
        datasets[split] = sb.dataio.dataset.DynamicItemDataset.from_csv(
            csv_path=os.path.join(manifests, f"{split}.csv"),
            dynamic_items=[audio_pipeline, label_pipeline],
            output_keys=["id", "sig", "target"],
        )
    return datasets, classes


if __name__ == "__main__":
    # --help lists the yaml's keys; a missing --data_folder is one line
    hparams_file, run_opts, overrides = parse_recipe_arguments(
        sys.argv[1:], RECIPE_DIR, "hparams/ast.yaml"
    )
    sb.utils.distributed.ddp_init_group(run_opts)
    hparams = load_recipe_hparams(hparams_file, overrides)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )

    logger.info("hparams file: %s", hparams_file)

    # a wrong data folder, bad clips, n_classes or checkpoint: one line
    with user_errors():
        run_on_main(
            prepare_speech_commands,
            kwargs={
                "data_folder": hparams["data_folder"],
                "save_folder": hparams["manifest_folder"],
                "download": hparams["download"],
                "skip_prep": hparams["skip_prep"],
            },
        )
        datasets, classes = dataio_prepare(hparams)

        loaded = init_from_pretrained(
            hparams["embedding_model"],
            audioset_pretrain=hparams["audioset_pretrain"],
            ssl_pretrain=hparams["ssl_pretrain"],
            imagenet_pretrain=hparams["imagenet_pretrain"],
            imagenet_checkpoint=hparams["imagenet_checkpoint"],
            channel_reduction=hparams["channel_reduction"],
            pos_embed=hparams["pos_embed_adaptation"],
        )
    logger.info("AST initialised from: %s", loaded)

    brain = SpeechCommandsBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.fit(
        brain.hparams.epoch_counter,
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
    if hparams["export_model"] and if_main_process():
        folder = export_model_folder(
            os.path.join(hparams["output_folder"], "model"),
            hparams["embedding_model"],
            hparams["classifier"],
            classes,
            frontend_kwargs={"target_length": hparams["target_length"]},
            norm_stats=(hparams["norm_mean"], hparams["norm_std"]),
            multi_label=hparams["multi_label"],
            overwrite=True,
        )
        logger.info("Model exported to %s", folder)
    end_ddp()
