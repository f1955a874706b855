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
import torch.nn.functional as F
from audioset_prepare import prepare_audioset
from hyperpyyaml import load_hyperpyyaml

import speechbrain as sb
from speechbrain.dataio.sampler import ReproducibleWeightedRandomSampler
from speechbrain.utils.checkpoints import average_checkpoints
from speechbrain.utils.distributed import if_main_process, run_on_main
from speechbrain_ast.data.audio import load_audio
from speechbrain_ast.data.prepare import check_manifests
from speechbrain_ast.data.shards import make_shard_loaders
from speechbrain_ast.inference import export_model_folder
from speechbrain_ast.training import ddp
from speechbrain_ast.training.labels import (
    MultiHotEncoder,
    balanced_sample_weights,
)
from speechbrain_ast.training.metrics import classification_stats
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
        embedding_model = self.modules.embedding_model
        classifier = self.modules.classifier
        if not train:
            embedding_model = ddp.unwrap(embedding_model)
            classifier = ddp.unwrap(classifier)
        logits = classifier(embedding_model(feats))
        return logits, targets

    def compute_objectives(self, predictions, batch, stage):
        """Cross-entropy with soft targets (``loss: ce``) or binary
        cross-entropy (``bce``); outside training the scores are kept."""
        logits, targets = predictions
        logits = logits.float()
        if self.hparams.loss == "ce":  # soft targets: one-hot or mixed
            loss = F.cross_entropy(logits, targets)
            scores = torch.softmax(logits, dim=-1)
        elif self.hparams.loss == "bce":
            loss = F.binary_cross_entropy_with_logits(logits, targets)
            scores = torch.sigmoid(logits)
        else:
            raise ValueError(f"loss is ce or bce, not {self.hparams.loss!r}")
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
        if self.average_epochs is None:
            return
        first, last = self.average_epochs
        checkpoints = self.checkpointer.find_checkpoints(
            ckpt_predicate=lambda c: first <= c.meta.get("epoch", 0) <= last
        )
        if len(checkpoints) != last - first + 1:
            raise ValueError(
                f"weight averaging of epochs {first}-{last} needs one "
                f"checkpoint per epoch, found {len(checkpoints)} in "
                f"{self.checkpointer.checkpoints_dir}: keep them (ckpt_keep)."
            )
        out = os.path.join(
            self.hparams.save_folder, f"averaged_epochs_{first}-{last}"
        )
        os.makedirs(out, exist_ok=True)
        for name in ("embedding_model", "classifier"):
            state = average_checkpoints(checkpoints, name)
            ddp.unwrap(self.modules[name]).load_state_dict(state)
            if if_main_process():
                torch.save(state, os.path.join(out, f"{name}.ckpt"))

    def on_stage_start(self, stage, epoch=None):
        """A fresh collector for the evaluation stages."""
        self.evaluation = ddp.DistributedEvaluation(self.hparams.n_classes)

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
        if stage == sb.Stage.TEST:
            epoch = self.hparams.epoch_counter.current
            self.hparams.train_logger.log_stats(
                {"Epoch loaded": epoch}, test_stats=stats
            )
        # metrics.jsonl (and the test predictions) before the checkpoint
        log_evaluation(self.hparams.output_folder, stage, epoch, stats, result)
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


def read_encoder(labels_file, n_classes):
    """The multi-hot encoder of ``class_labels_indices.csv``, checked
    against ``n_classes``."""
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
    encoder = read_encoder(
        os.path.join(manifests, "class_labels_indices.csv"),
        hparams["n_classes"],
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
    return datasets, encoder


def balanced_sampler(train_set, encoder, seed):
    """AudioSet's per-clip weights (rare labels drawn more often) in a
    reproducible weighted sampler, replacing shuffling."""
    with train_set.output_keys_as(["labels"]):
        label_lists = [item["labels"].split(",") for item in train_set]
    weights = balanced_sample_weights(label_lists, encoder)
    logger.info("Balanced sampler over %d clips", len(weights))
    return ReproducibleWeightedRandomSampler(
        weights.double(), num_samples=len(weights), replacement=True, seed=seed
    )


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
            encoder = read_encoder(
                os.path.join(hparams["shards"], "class_labels_indices.csv"),
                hparams["n_classes"],
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
            train_data, eval_data = loaders["train"], loaders["eval"]
            # a killed run resumes mid-epoch where the loader stopped
            hparams["checkpointer"].add_recoverable("train_loader", train_data)
            # the shard loaders batch, shuffle and split over ranks
            fit_options, test_options = {}, {}
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
            train_options = dict(hparams["train_dataloader_options"])
            if hparams["balanced_sampler"]:
                train_options.pop("shuffle", None)
                train_options["sampler"] = balanced_sampler(
                    train_data, encoder, hparams["seed"]
                )
            fit_options = {
                "train_loader_kwargs": train_options,
                "valid_loader_kwargs": hparams["test_dataloader_options"],
            }
            test_options = {
                "test_loader_kwargs": hparams["test_dataloader_options"]
            }
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
    # the reference validates on the eval set every epoch; so do we
    brain.fit(hparams["epoch_counter"], train_data, eval_data, **fit_options)
    brain.evaluate(eval_data, max_key="mAP", **test_options)
    if hparams["weight_averaging"]:
        predictions = os.path.join(
            hparams["output_folder"], "test_predictions.pt"
        )
        if if_main_process():
            os.replace(
                predictions, predictions.replace(".pt", "_best_epoch.pt")
            )
        first, last = hparams["wa_start"], hparams["wa_end"]
        brain.average_epochs = (first, last)
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
    ddp.end_ddp()
