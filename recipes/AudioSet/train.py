#!/usr/bin/env python3
"""Recipe: AST on AudioSet (full or balanced), as in the AST paper.

Run from the repository root or from this folder (a relative hparams path
is looked up here first):

    python recipes/AudioSet/train.py hparams/ast_full.yaml \
        --data_folder /path/to/audioset

or, from the tar shards ``make_shards.py`` writes (no preparation; the
same clips and labels streamed, shuffled in a buffer of ``shard_buffer``
clips, split over DDP ranks and workers; a killed run resumes mid-epoch
with ``--ckpt_interval_minutes``)::

    python recipes/AudioSet/train.py hparams/ast_full.yaml \
        --shards /path/to/shards

Preparation reports the listed clips that are missing or unreadable before
training starts (counts in the log, the list in
``<output_folder>/manifests/missing_or_unreadable.csv``) and trains on the
clips that exist. Multi-hot targets, BCE, mixup, SpecAugment, warm-up and
step decay, the balanced sampler (full set) and per-epoch mAP / mAUC /
d-prime on the eval set: :class:`AudioSetBrain` below and the library
functions it calls.

The test stage evaluates the best epoch by validation mAP, then (with
``weight_averaging``) the average of the epoch ``wa_start..wa_end``
checkpoints; both write ``test mAP``, ``test mAUC`` and ``test dprime`` to
``<output_folder>/train_log.txt``, the last line being the final model's.
Its scores are saved as ``test_predictions.pt`` (input of ``ensemble.py``),
the best single epoch's as ``test_predictions_best_epoch.pt``.

Authors
 * speechbrain-ast developers
"""

import logging
import os
import sys

import torch
from audioset_prepare import prepare_audioset

import speechbrain as sb
from speechbrain.utils.distributed import if_main_process, run_on_main
from speechbrain_ast.data.audio import load_audio
from speechbrain_ast.data.prepare import check_manifests
from speechbrain_ast.data.shards import make_shard_loaders
from speechbrain_ast.inference.model_folder import export_model_folder
from speechbrain_ast.training.checkpoint import (
    average_checkpoints,
    find_epoch_checkpoints,
)
from speechbrain_ast.training.ddp import (
    ShardedEvaluation,
    end_ddp,
    sharded_loader_kwargs,
    unwrap,
)
from speechbrain_ast.training.labels import (
    MultiHotEncoder,
    as_float_targets,
    balanced_sample_weights,
    make_balanced_sampler,
)
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
SPLITS = ("train", "eval")


class AudioSetBrain(sb.core.Brain):
    """AST on AudioSet: multi-label, BCE, mAP (the best checkpoint), mean
    AUC, d-prime; evaluation of weight-averaged checkpoints.

    Set :attr:`averaged_state` (module name -> state dict) to evaluate
    those weights instead of the checkpoint the Checkpointer recovers.

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

    averaged_state = None

    def on_evaluate_start(self, max_key=None, min_key=None):
        """Recovers the best checkpoint, or loads the averaged weights."""
        super().on_evaluate_start(max_key=max_key, min_key=min_key)
        for name, state in (self.averaged_state or {}).items():
            unwrap(self.modules[name]).load_state_dict(state)

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
        stats.update(
            classification_stats(
                result["scores"], result["targets"], multi_label=True
            )
        )
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
            # the best by mAP (and the latest; every epoch for averaging)
            self.checkpointer.save_and_keep_only(
                meta={**stats, "epoch": epoch},
                max_keys=["mAP"],
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
    """Builds the train and eval datasets and the multi-hot encoder.

    Arguments
    ---------
    hparams : dict
        The loaded hyperparameters (``manifest_folder``, ``n_classes``).

    Returns
    -------
    datasets : dict
        ``train``, ``eval``: ``DynamicItemDataset`` giving ``id``, ``sig``
        (waveform) and ``target`` (float multi-hot ``[n_classes]``).
    encoder : MultiHotEncoder
        Label mids in ``class_labels_indices.csv`` order.
    """
    manifests = hparams["manifest_folder"]
    encoder = MultiHotEncoder.from_class_labels_csv(
        os.path.join(manifests, "class_labels_indices.csv")
    )
    if len(encoder) != hparams["n_classes"]:
        raise ValueError(
            f"{manifests}/class_labels_indices.csv has {len(encoder)} labels"
            f" but n_classes is {hparams['n_classes']}: pass --n_classes "
            f"{len(encoder)}."
        )

    # "sig" and "target" are dynamic items: not names of manifest columns
    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return load_audio(wav, sample_rate=16000)

    @sb.utils.data_pipeline.takes("labels")
    @sb.utils.data_pipeline.provides("target")
    def label_pipeline(labels):
        return encoder.encode(labels.split(","))

    # before training, not in the middle of an epoch
    check_manifests([os.path.join(manifests, f"{s}.csv") for s in SPLITS])
    datasets = {}
    for split in SPLITS:
        datasets[split] = sb.dataio.dataset.DynamicItemDataset.from_csv(
            csv_path=os.path.join(manifests, f"{split}.csv"),
            dynamic_items=[audio_pipeline, label_pipeline],
            output_keys=["id", "sig", "target"],
        )
    return datasets, encoder


def shard_loaders(hparams):
    """The train and eval loaders of a ``make_shards.py`` folder
    (``shards``): streamed, shuffled with ``shard_buffer`` clips, split over
    DDP ranks and workers, balanced resampling with ``balanced_sampler``.

    Arguments
    ---------
    hparams : dict
        The loaded hyperparameters (``shards``, ``n_classes``,
        ``batch_size``, ``num_workers``, ``seed``, ``balanced_sampler``,
        ``shard_buffer``, ``epoch_counter``).

    Returns
    -------
    loaders : dict
        ``train``, ``eval``: ``ShardLoader`` objects for ``fit`` and
        ``evaluate`` (used as they are: no loader options apply).
    encoder : MultiHotEncoder
        Label mids in the shards' ``class_labels_indices.csv`` order.
    """
    labels_file = os.path.join(hparams["shards"], "class_labels_indices.csv")
    if not os.path.isfile(labels_file):
        raise FileNotFoundError(
            f"{labels_file} is missing: --shards must be the --save_folder "
            "of make_shards.py (it holds train/, eval/ and "
            "class_labels_indices.csv)."
        )
    encoder = MultiHotEncoder.from_class_labels_csv(labels_file)
    if len(encoder) != hparams["n_classes"]:
        raise ValueError(
            f"{labels_file} has {len(encoder)} labels but n_classes is "
            f"{hparams['n_classes']}: pass --n_classes {len(encoder)}."
        )
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
    return loaders, encoder


def train_loader_options(hparams, train_set, encoder):
    """The train loader options; with ``balanced_sampler`` a weighted
    sampler (AudioSet's per-clip weights) replaces shuffling."""
    options = dict(hparams["train_dataloader_options"])
    if hparams["balanced_sampler"]:
        with train_set.output_keys_as(["labels"]):
            label_lists = [item["labels"].split(",") for item in train_set]
        weights = balanced_sample_weights(label_lists, encoder)
        logger.info(
            "Balanced sampler over %d clips (weights %.1f .. %.1f)",
            len(weights),
            weights.min(),
            weights.max(),
        )
        options.pop("shuffle", None)
        options["sampler"] = make_balanced_sampler(
            weights, seed=hparams["seed"]
        )
    return options


def average_epochs(brain, first, last):
    """Mean weights of the epoch ``first..last`` checkpoints, also saved
    under ``<save_folder>/averaged_epochs_<first>-<last>/``."""
    folders = find_epoch_checkpoints(
        brain.checkpointer.checkpoints_dir, first, last
    )
    logger.info("Weight averaging of %s", folders)
    averaged = {
        name: average_checkpoints(
            [os.path.join(folder, f"{name}.ckpt") for folder in folders]
        )
        for name in ("embedding_model", "classifier")
    }
    if if_main_process():
        out = os.path.join(
            brain.hparams.save_folder, f"averaged_epochs_{first}-{last}"
        )
        os.makedirs(out, exist_ok=True)
        for name, state in averaged.items():
            torch.save(state, os.path.join(out, f"{name}.ckpt"))
    return averaged


if __name__ == "__main__":
    # --help lists the yaml's keys; a missing --data_folder is one line
    hparams_file, run_opts, overrides = parse_recipe_arguments(
        sys.argv[1:], RECIPE_DIR, "hparams/ast_full.yaml"
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
        if hparams["shards"]:
            # streamed from make_shards.py's tar shards: no preparation
            loaders, encoder = shard_loaders(hparams)
            train_data, eval_data = loaders["train"], loaders["eval"]
            # a killed run resumes mid-epoch where the loader stopped
            hparams["checkpointer"].add_recoverable(
                "train_loader", loaders["train"]
            )
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
            datasets, encoder = dataio_prepare(hparams)
            train_data, eval_data = datasets["train"], datasets["eval"]
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
        )
    logger.info("AST initialised from: %s", loaded)

    brain = AudioSetBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    if hparams["shards"]:
        # the shard loaders batch, shuffle and split over ranks themselves
        fit_options, test_options = {}, {}
    else:
        fit_options = {
            "train_loader_kwargs": train_loader_options(
                hparams, train_data, encoder
            ),
            "valid_loader_kwargs": hparams["test_dataloader_options"],
        }
        test_options = {
            "test_loader_kwargs": hparams["test_dataloader_options"]
        }
    # The reference validates on the eval set every epoch; so do we.
    brain.fit(hparams["epoch_counter"], train_data, eval_data, **fit_options)
    brain.evaluate(eval_data, max_key="mAP", **test_options)
    if hparams["weight_averaging"]:
        predictions = os.path.join(
            hparams["output_folder"], "test_predictions.pt"
        )
        if if_main_process():
            os.replace(
                predictions,
                predictions.replace(".pt", "_best_epoch.pt"),
            )
        first, last = hparams["wa_start"], hparams["wa_end"]
        brain.averaged_state = average_epochs(brain, first, last)
        hparams["train_logger"].log_stats(
            {"weight averaging of epochs": f"{first}-{last}"}
        )
        brain.evaluate(eval_data, **test_options)
    if hparams["export_model"] and if_main_process():
        folder = export_model_folder(
            os.path.join(hparams["output_folder"], "model"),
            hparams["embedding_model"],
            hparams["classifier"],
            encoder.labels,
            frontend_kwargs={"target_length": hparams["target_length"]},
            norm_stats=(hparams["norm_mean"], hparams["norm_std"]),
            multi_label=hparams["multi_label"],
            overwrite=True,
        )
        logger.info("Model exported to %s", folder)
    end_ddp()
