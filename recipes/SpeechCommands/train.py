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
evaluation) is the shared :class:`speechbrain_ast.training.ASTBrain`.

Authors
 * speechbrain-ast developers
"""

import logging
import os
import sys

import torch
from hyperpyyaml import load_hyperpyyaml

import speechbrain as sb
from speechbrain.dataio.encoder import CategoricalEncoder
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
from speechcommands_prepare import prepare_speech_commands  # noqa: E402

logger = logging.getLogger(__name__)
SPLITS = ("train", "valid", "test")


class SpeechCommandsBrain(ASTBrain):
    """AST on Speech Commands: the shared loop as it is (one-hot targets from
    class indices, BCE, accuracy, noise + roll from the yaml)."""


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

    init_recipe_model(hparams)

    brain = SpeechCommandsBrain(
        modules=hparams["modules"],
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
        max_key=brain.best_metric,
        test_loader_kwargs=hparams["test_dataloader_options"],
    )
    if hparams["export_model"] and if_main_process():
        export_recipe_model(hparams, classes)
