"""DDP with 2 gloo CPU processes: sharded evaluation sees every example once.

The ESC-50 recipe is trained under ``torchrun --nproc_per_node=2``; its test
stage (sharded across the ranks, gathered) must evaluate each test clip
exactly once and give the same accuracy and scores, in the same order, as a
single-process evaluation (``--test_only``) of the same checkpoint.

Authors
 * speechbrain-ast developers
"""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys

import torch

from speechbrain_ast.testing.esc50 import make_esc50

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, "recipes", "ESC50", "train.py")
ARGS = [
    "hparams/ast.yaml", "--embed_dim", "64", "--depth", "2",
    "--num_heads", "2", "--imagenet_pretrain", "False",
    "--audioset_pretrain", "False", "--n_classes", "3",
    "--target_length", "64", "--patch_size", "[128, 2]", "--fstride", "128",
    "--tstride", "2", "--lr", "1e-3", "--batch_size", "2",
    "--num_workers", "0", "--device", "cpu", "--noprogressbar",
    "--number_of_epochs", "2", "--train_fold_nums", "[1, 2]",
    "--valid_fold_nums", "[3, 4, 5]", "--test_fold_nums", "[3, 4, 5]",
]  # fmt: skip


def _run(cmd, timeout=240):
    """Runs cmd; on timeout kills its whole process group (the ranks)."""
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        cmd, env=env, cwd=ROOT, text=True, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        raise AssertionError(f"timed out (a DDP hang?):\n{output[-3000:]}")
    assert proc.returncode == 0, output[-5000:]


def _test_lines(out):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return [r for r in records if r["stage"] == "test"]


def test_ddp_sharded_evaluation_equals_single_process(tmp_path):
    data = make_esc50(
        str(tmp_path / "data"), n_classes=3, clips_per_fold=1, duration=0.7
    )
    out = str(tmp_path / "out")
    common = [*ARGS, "--data_folder", data, "--output_folder", out]
    _run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         "--nproc_per_node=2", TRAIN, *common,
         "--distributed_backend", "gloo"]
    )  # fmt: skip
    ddp = torch.load(os.path.join(out, "test_predictions.pt"))
    shutil.copy(
        os.path.join(out, "test_predictions.pt"), tmp_path / "ddp_pred.pt"
    )
    [ddp_line] = _test_lines(out)
    with open(os.path.join(out, "save", "test.csv"), newline="") as f:
        test_ids = [row["ID"] for row in csv.DictReader(f)]

    # 9 test clips over 2 ranks: uneven shards, no padding duplicates
    assert len(test_ids) == 9
    assert ddp_line["per_rank"] == [5, 4]
    assert ddp_line["ids_evaluated"] == 9
    assert ddp["ids"] == test_ids  # each exactly once, in dataset order

    _run([sys.executable, TRAIN, *common, "--test_only"])
    single = torch.load(os.path.join(out, "test_predictions.pt"))
    single_line = _test_lines(out)[-1]
    assert single_line["per_rank"] == [9]
    assert single["ids"] == ddp["ids"]
    torch.testing.assert_close(single["scores"], ddp["scores"])
    torch.testing.assert_close(single["targets"], ddp["targets"])
    assert single_line["acc"] == ddp_line["acc"]
    assert abs(single_line["loss"] - ddp_line["loss"]) < 1e-5
    log = open(os.path.join(out, "train_log.txt")).read()
    assert log.count("test acc") == 2
