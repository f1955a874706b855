#!/usr/bin/env python3
"""Fine-tunes the Audio Spectrogram Transformer on ESC-50.

To run (from the repository root or from this folder)::

    python recipes/ESC50/train.py hparams/ast.yaml \
        --data_folder /path/to/ESC-50-master \
        --audioset_pretrain /path/to/audioset_10_10_0.4593.pth

A tiny model on a CPU::

    python train.py hparams/ast.yaml --data_folder ... --embed_dim 64 \
        --depth 2 --num_heads 2 --imagenet_pretrain False \
        --audioset_pretrain False

Multi-GPU: ``torchrun --nproc_per_node=N train.py hparams/ast.yaml ...``
(``--distributed_backend gloo --device cpu`` on CPUs). Everything but the
data lives in :class:`speechbrain_ast.training.ASTBrain`; at the end the best
checkpoint is evaluated on the test folds (``acc`` in train_log.txt) and
exported as an ``EncoderClassifier`` folder in ``<output_folder>/model``.

Authors
 * speechbrain-ast developers
"""

import logging
import os
import sys

import torch
from hyperpyyaml import load_hyperpyyaml

import speechbrain as sb
from speechbrain.utils.distributed import if_main_process, run_on_main
from speechbrain_ast.audio import load_audio
from speechbrain_ast.dataprep import check_manifests
from speechbrain_ast.training import (
    ASTBrain,
    export_recipe_model,
    init_recipe_model,
    resolve_hparams_file,
)

RECIPE_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, RECIPE_DIR)
from esc50_prepare import prepare_esc50  # noqa: E402

logger = logging.getLogger(__name__)


class ESC50Brain(ASTBrain):
    """ESC-50: single label, cross-entropy, accuracy (all in ASTBrain)."""


def dataio_prepare(hparams):
    """Datasets of the three splits and the labels in index order."""

    # "sig" and "target" are dynamic items: not names of manifest columns
    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return load_audio(wav, sample_rate=16000)

    @sb.utils.data_pipeline.takes("class_index")
    @sb.utils.data_pipeline.provides("target")
    def label_pipeline(class_index):
        return torch.tensor([int(class_index)])

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
    n_classes = hparams["n_classes"]
    if max(labels) >= n_classes:
        raise ValueError(
            f"the manifests have class index {max(labels)} but n_classes is "
            f"{n_classes}: pass --n_classes {max(labels) + 1}"
        )
    names = [labels.get(i, f"class{i}") for i in range(n_classes)]
    return datasets, names


if __name__ == "__main__":
    hparams_file, run_opts, overrides = sb.parse_arguments(sys.argv[1:])
    hparams_file = resolve_hparams_file(hparams_file, RECIPE_DIR)
    sb.utils.distributed.ddp_init_group(run_opts)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    logger.info("hparams file: %s", hparams_file)

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

    init_recipe_model(hparams)

    brain = ESC50Brain(
        modules=hparams["modules"],
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
        max_key=brain.best_metric,
        test_loader_kwargs=hparams["test_dataloader_options"],
    )
    if hparams["export_model"] and if_main_process():
        export_recipe_model(hparams, labels)
