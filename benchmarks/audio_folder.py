#!/usr/bin/env python3
"""Your own sounds, measured: the audio-folder recipe with its defaults on
real recordings, against our small configuration through the Speech
Commands recipe on the same speaker split.

* ``folder``: the Free Spoken Digit Dataset copied into one sub-folder per
  digit, run as ``recipes/AudioFolder/train.py --data_folder F
  --group_pattern "_([a-z]+)_"`` (the speaker in the file name is the
  group; every other setting is the recipe's choice from the data);
* ``speech_commands``: the same clips in the Speech Commands layout with
  the speakers that the folder recipe's split put into validation and test
  (``speechbrain_ast/testing/fsdd_speech_commands.py``), run as
  ``recipes/SpeechCommands/train.py hparams/ast_scratch_small.yaml``;
* ``ssast``: ``recipes/SSAST/pretrain.py hparams/ssast_small.yaml`` on the
  audio of the folder run's training split (its ``save/train.csv``), then
  the folder recipe again with ``--ssl_pretrain`` and that encoder (its
  default ``hparams/ssast_finetune.yaml``: the SSAST reference's
  fine-tuning), on the same split and for the same 30 epochs;
  ``ssast_small_settings``: the same encoder fine-tuned with
  ``hparams/scratch_small.yaml``'s settings (the from-scratch run's);
* ``sounds`` (``--sounds FOLDER``): the 17 freesound recordings, one per
  class, and the five ESC-50 clips the tests ship (dog, car horn,
  thunderstorm: into the freesound classes of those names), cut into 1 s
  pieces in one sub-folder per class: the recipe end to end and its
  report. The pieces of one recording land in all three
  splits, so this accuracy says nothing about new recordings; it shows the
  report (``report.md``, ``confusion.png``) on real sounds.

Each run records its per-epoch validation accuracy, its test accuracy and
its wall time (the pretraining its pretext accuracy per epoch); the JSON
also records the CPU's model name and flags; ``--plot`` draws the
validation curves of the folder runs from scratch and from SSAST.

::

    python benchmarks/audio_folder.py --out results/audio_folder.json \
        --plot results/audio_folder_curves.png
    python benchmarks/audio_folder.py --quick     # a smoke run: 2 epochs

Authors
 * speechbrain-ast developers
"""

import argparse
import csv
import json
import os
import shutil
import sys
import tempfile

import soundfile as sf
from small_data import (
    DEFAULT_RECORDINGS,
    epoch_curve,
    recipe_run,
    run,
    ssast_pretrain,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOUNDS = os.path.join(ROOT, "..", "shared", "data", "sounds")
ESC50 = os.path.join(ROOT, "tests", "data", "real", "esc50")
# ESC-50 categories -> the freesound classes of the same sound
ESC50_CLASSES = {
    "dog": "dog",
    "car_horn": "car-horn",
    "thunderstorm": "thunder",
}
SPEAKER = "_([a-z]+)_"
RUNS = ("folder", "ssast", "ssast_small_settings", "speech_commands", "sounds")


def class_folders(recordings, out, digits, takes=None):
    """FSDD ``digit_speaker_take.wav`` files copied into ``out/<digit>/``.

    Example
    -------
    >>> import tempfile
    >>> src, out = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> for name in ("0_a_0.wav", "1_a_0.wav", "2_b_7.wav"):
    ...     open(os.path.join(src, name), "w").close()
    >>> class_folders(src, out, (0, 1))
    2
    >>> sorted(os.listdir(out))
    ['0', '1']
    """
    count = 0
    for name in sorted(os.listdir(recordings)):
        digit, _, take = os.path.splitext(name)[0].split("_")
        if int(digit) not in digits or (takes and int(take) >= takes):
            continue
        os.makedirs(os.path.join(out, digit), exist_ok=True)
        shutil.copy(os.path.join(recordings, name), os.path.join(out, digit))
        count += 1
    return count


def split_speakers(split_csv):
    """The speakers of each split in the folder recipe's ``split.csv``.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "split.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("wav,split\\n/d/0/0_ann_1.wav,test\\n")
    >>> split_speakers(path)
    {'test': ['ann']}
    """
    found = {}
    with open(split_csv, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            speaker = os.path.basename(row["wav"]).split("_")[1]
            found.setdefault(row["split"], set()).add(speaker)
    return {split: sorted(s) for split, s in sorted(found.items())}


def sound_pieces(sounds, out, seconds=1.0, esc50=ESC50):
    """Each recording of ``sounds`` (and the ESC-50 clips of its classes)
    cut into ``seconds`` pieces in ``out/<class>/``; returns the number of
    pieces per class."""
    recordings = [
        (os.path.join(sounds, name), os.path.splitext(name)[0])
        for name in sorted(os.listdir(sounds))
        if name.endswith((".flac", ".wav", ".mp3"))
    ]
    meta = os.path.join(esc50, "meta", "esc50.csv")
    if os.path.isfile(meta):
        with open(meta, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                name = row["filename"].replace(".wav", ".flac")
                label = ESC50_CLASSES.get(row["category"])
                if label:
                    recordings.append(
                        (os.path.join(esc50, "audio", name), label)
                    )
    counts = {}
    for path, label in recordings:
        audio, rate = sf.read(path, always_2d=True)
        size = int(seconds * rate)
        os.makedirs(os.path.join(out, label), exist_ok=True)
        stem = os.path.splitext(os.path.basename(path))[0]
        for i in range(len(audio) // size):
            piece = audio[i * size : (i + 1) * size]
            target = os.path.join(out, label, f"{stem}_{i:03d}.flac")
            sf.write(target, piece, rate)
        counts[label] = counts.get(label, 0) + len(audio) // size
    return counts


def folder_run(data, out, extra=(), hparams=()):
    """The audio-folder recipe with its defaults (or the yaml ``hparams``)."""
    cmd = [
        sys.executable, "recipes/AudioFolder/train.py", *hparams,
        "--data_folder", data, "--output_folder", out, "--noprogressbar",
        *extra,
    ]  # fmt: skip
    seconds = run(cmd, out + ".log")
    curve, test = epoch_curve(os.path.join(out, "train_log.txt"))
    with open(os.path.join(out, "chosen_settings.json"), encoding="utf-8") as f:
        chosen = {k: v["value"] for k, v in json.load(f).items()}
    with open(os.path.join(out, "report.json"), encoding="utf-8") as f:
        macro_f1 = json.load(f)["macro"]["f1"]
    return {
        "valid_curve": curve,
        "test_acc": test,
        "macro_f1": macro_f1,
        "seconds": seconds,
        "chosen": chosen,
        "report": os.path.join(out, "report.md"),
    }


def ssast_folder_run(
    folder, manifest, work, epochs, quick, encoder=None, name="ssast_folder",
    hparams=(),
):  # fmt: skip
    """SSAST pretraining on ``manifest``'s audio (unless ``encoder`` is
    given), then the folder recipe fine-tuning it (with its default for an
    encoder, or the yaml ``hparams``) in ``work/name``."""
    pretrain = None
    if encoder is None:
        dims = quick[:6]  # the model of a smoke run
        out = os.path.join(work, "ssast_pretrain")
        encoder, seconds = ssast_pretrain(manifest, out, epochs, dims)
        curve, _ = epoch_curve(os.path.join(out, "train_log.txt"))
        pretrain = {"seconds": seconds, "pretext_valid_acc": curve}
    epochs_only = quick[6:]  # the shape is the encoder's
    tuned = folder_run(
        folder,
        os.path.join(work, name),
        ["--group_pattern", SPEAKER, "--ssl_pretrain", encoder, *epochs_only],
        hparams,
    )
    return {**tuned, "encoder": encoder, "pretrain": pretrain}


def plot_curves(results, path):
    """The validation accuracy per epoch of the folder runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = {
        "folder": "from scratch",
        "ssast": "SSAST, the reference's fine-tuning",
        "ssast_small_settings": "SSAST, scratch_small.yaml's settings",
    }
    for key, label in names.items():
        if results.get(key):
            curve = results[key]["valid_curve"]
            test = results[key]["test_acc"]
            ax.plot(
                range(1, len(curve) + 1),
                [100 * v for v in curve],
                label=f"{label} (test {100 * test:.1f} %)",
            )
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("FSDD in class folders, unseen speakers")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    """Runs the comparison and writes the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", default=DEFAULT_RECORDINGS)
    parser.add_argument("--sounds", default=SOUNDS)
    parser.add_argument("--out", help="JSON file for the results")
    parser.add_argument("--work", help="folder for the runs (default: temp)")
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument(
        "--skip", default="", help="runs left out, e.g. speech_commands,sounds"
    )
    parser.add_argument("--ssast_epochs", type=int, default=20)
    parser.add_argument(
        "--ssast_encoder",
        help="fine-tune from this ssast_encoder.pt instead of pretraining",
    )
    parser.add_argument("--plot", help="PNG of the folder runs' curves")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    if not os.path.isdir(args.recordings):
        parser.error(f"--recordings {args.recordings!r} is not a folder")
    from deploy import cpu_record

    from speechbrain_ast.testing.fsdd_speech_commands import (
        make_fsdd_speech_commands,
    )

    digits = (0, 1, 2) if args.quick else tuple(range(10))
    takes = 5 if args.quick else None
    quick = ["--embed_dim", "32", "--depth", "1", "--num_heads", "2"]
    quick = quick + ["--number_of_epochs", "2"] if args.quick else []
    work = args.work or tempfile.mkdtemp(prefix="audio_folder_")
    results = {"cpu": cpu_record()}

    folder = os.path.join(work, "digits")
    class_folders(args.recordings, folder, digits, takes)
    out = os.path.join(work, "folder")
    results["folder"] = folder_run(
        folder, out, ["--group_pattern", SPEAKER, *quick]
    )
    speakers = split_speakers(os.path.join(out, "save", "split.csv"))
    results["split"] = speakers
    print("folder", results["folder"], speakers, flush=True)

    if "ssast" not in skip:
        results["ssast"] = ssast_folder_run(
            folder,
            os.path.join(out, "save", "train.csv"),
            work,
            1 if args.quick else args.ssast_epochs,
            quick,
            args.ssast_encoder,
        )
        # the same encoder with the small configuration's settings
        results["ssast_small_settings"] = ssast_folder_run(
            folder, None, work, None, quick, results["ssast"]["encoder"],
            "ssast_small_folder", ["hparams/scratch_small.yaml"],
        )  # fmt: skip
        for name in ("ssast_folder", "ssast_small_folder"):
            same = split_speakers(os.path.join(work, name, "save", "split.csv"))
            if same != speakers:
                raise RuntimeError(f"{name} split otherwise: {same}")
        print("ssast", results["ssast"], flush=True)
        print("ssast_small_settings", results["ssast_small_settings"])

    layout = os.path.join(work, "speech_commands")
    make_fsdd_speech_commands(
        args.recordings,
        layout,
        digits=digits,
        takes=takes,
        valid_speakers=tuple(speakers["valid"]),
        test_speakers=tuple(speakers["test"]),
    )
    epochs = 2 if args.quick else 30
    results["speech_commands"] = (
        None
        if "speech_commands" in skip
        else recipe_run(
            layout,
            os.path.join(work, "speech_commands_run"),
            epochs,
            len(digits),
            quick[:6],
        )
    )
    print("speech_commands", results["speech_commands"], flush=True)

    if os.path.isdir(args.sounds) and "sounds" not in skip:
        pieces = os.path.join(work, "sounds")
        results["sounds_pieces"] = sound_pieces(args.sounds, pieces)
        results["sounds"] = folder_run(
            pieces, os.path.join(work, "sounds_run"), quick
        )
        print("sounds", results["sounds"], flush=True)

    print(f"\n{'run':16s} {'test acc':>9s} {'minutes':>8s}  valid curve")
    for name in RUNS:
        if results.get(name):
            r = results[name]
            curve = " ".join(f"{v:.2f}" for v in r["valid_curve"])
            print(
                f"{name:16s} {r['test_acc']:9.3f} {r['seconds'] / 60:8.1f}  "
                f"{curve}"
            )
    if args.plot:
        plot_curves(results, args.plot)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
