#!/usr/bin/env bash
# The built-in demo, on a CPU in a few minutes:
#  1. creates .venv when missing (scripts/venv.sh),
#  2. generates a small synthetic dataset in the ESC-50 layout (5 classes of
#     tones / noise bands / chirps, 1.5 s clips at 44.1 kHz),
#  3. trains a tiny AST from scratch through the real ESC-50 recipe
#     (recipes/ESC50/train.py hparams/ast.yaml + overrides), folds 1-3 train,
#     fold 4 validation, fold 5 held-out test,
#  4. exports the model folder and classifies a held-out clip with
#     EncoderClassifier.from_hparams, and prints the test accuracy.
# Usage: bash scripts/demo.sh [OUTPUT_FOLDER]   (default: demo_output)
# Running it again on the same folder resumes / reuses what is there; a
# folder that is not a demo folder is refused, never overwritten.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh

OUT="${1:-demo_output}"
MARK="$OUT/.speechbrain_ast_demo"
if [ -e "$OUT" ] && [ ! -f "$MARK" ] && [ -n "$(ls -A "$OUT")" ]; then
    echo "demo: $OUT exists and is not a demo folder: refusing to write" \
        "there. Give another folder: bash scripts/demo.sh OTHER_FOLDER" >&2
    exit 1
fi
mkdir -p "$OUT"
touch "$MARK"
DATA="$OUT/ESC-50-synthetic"
TRAIN_OUT="$OUT/train"

echo "== 1/3 synthetic ESC-50-layout dataset in $DATA"
if [ ! -f "$DATA/meta/esc50.csv" ]; then
    python -m speechbrain_ast.testing.esc50 "$DATA" --n_classes 5 \
        --clips_per_fold 6 --duration 1.5 --sample_rate 44100
else
    echo "(exists, reused)"
fi

echo "== 2/3 training a tiny AST (64 wide, 2 blocks, 128x2 patches) on the CPU"
python recipes/ESC50/train.py hparams/ast.yaml \
    --data_folder "$DATA" --output_folder "$TRAIN_OUT" \
    --n_classes 5 --embed_dim 64 --depth 2 --num_heads 2 \
    --imagenet_pretrain False --audioset_pretrain False \
    --target_length 150 --patch_size "[128, 2]" --fstride 128 --tstride 2 \
    --lr 1e-3 --lr_decay_factor 1.0 --batch_size 8 --number_of_epochs 12 \
    --freqm 12 --timem 30 --num_workers 0 --device cpu \
    --train_fold_nums "[1, 2, 3]" --valid_fold_nums "[4]" \
    --test_fold_nums "[5]" --noprogressbar

echo "== 3/3 classifying a held-out clip with EncoderClassifier.from_hparams"
python - "$TRAIN_OUT" <<'PY'
import csv
import json
import os
import sys

from speechbrain.inference.classifiers import EncoderClassifier

from speechbrain_ast.data.audio import load_audio

out = sys.argv[1]
model = EncoderClassifier.from_hparams(
    source=os.path.join(out, "model"),
    savedir=os.path.join(out, "model_loaded"),
)
with open(os.path.join(out, "save", "test.csv"), newline="") as f:
    clip = next(csv.DictReader(f))
wav = load_audio(clip["wav"], sample_rate=16000)
_, _, _, label = model.classify_batch(wav[None])
print(f"clip {os.path.basename(clip['wav'])}: true class "
      f"{clip['category']!r}, predicted {label[0]!r}")
with open(os.path.join(out, "metrics.jsonl")) as f:
    test = [r for r in map(json.loads, f) if r["stage"] == "test"][-1]
print(f"held-out test accuracy (fold 5, {test['ids_evaluated']} clips, "
      f"chance 20%): {100 * test['acc']:.1f}%")
PY
echo "model folder: $TRAIN_OUT/model  (logs: $TRAIN_OUT/train_log.txt)"
