"""Input pipeline throughput: clip files vs WebDataset shards, and full
training steps of a tiny AST fed by each.

    python benchmarks/input_pipeline.py --json input_pipeline.json
    python benchmarks/input_pipeline.py --quick   # smoke run: 24 clips, batch 4

Writes ``--clips`` generated FLAC clips of ``--duration`` s at 16 kHz
(AudioSet's are 10 s) into a local temporary folder, shards them
(``speechbrain_ast.data.shards.write_shards``), then measures:

* ``decode``: per-clip costs in one process: reading and decoding a file
  (``load_audio``, what the file-based recipe does) and decoding the same
  bytes taken from a shard (``decode_audio``); the Kaldi fbank of a clip.
* ``pipeline``: clips/s of the loaders alone, files
  (``DynamicItemDataset`` + ``load_audio`` through SpeechBrain's loader)
  and shards (``ShardStream`` + ``ShardLoader``), for 1, 2 and 4 workers;
  timed from the first batch to the last (worker start-up is reported
  apart).
* ``train``: clips/s of full training steps (fbank, tiny AST, BCE, Adam)
  with each loader, and of the same steps on one batch held in memory
  (the model alone): which of the two limits.

The JSON records the CPU model and flags, thread count and versions. On
a machine shared with other work the figures are noisy; quote them with
the machine.

Authors
 * speechbrain-ast developers
"""

import argparse
import json
import os
import platform
import shutil
import tempfile
import time

import numpy as np
import soundfile as sf
import torch

FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")


def cpu_record():
    """The CPU's model name, the flags that matter for decoding and
    matmuls, cores and threads.

    Example
    -------
    >>> sorted(cpu_record())[:3]
    ['cores', 'flags', 'machine']
    """
    from speechbrain_ast.deploy.precision import cpu_flags, cpu_model_name

    flags = cpu_flags()
    return {
        "model_name": cpu_model_name(),
        "flags": {flag: flag in flags for flag in FLAGS},
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.machine(),
    }


def make_clips(folder, n, duration, seed=0):
    """``n`` FLAC clips (a tone in noise) with one of 4 labels each.

    Returns the clip dicts ``write_shards`` takes.

    Example
    -------
    >>> clips = make_clips(tempfile.mkdtemp(), 2, 0.1)
    >>> [c["ID"] for c in clips], clips[0]["labels"]
    (['clip0000', 'clip0001'], ['/m/k0'])
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration * 16000)) / 16000
    clips = []
    for i in range(n):
        wav = 0.3 * np.sin(2 * np.pi * (200 + 50 * (i % 4)) * t)
        wav += 0.05 * rng.standard_normal(len(t))
        path = os.path.join(folder, f"clip{i:04d}.flac")
        sf.write(path, wav.astype(np.float32), 16000)
        clips.append(
            {
                "ID": f"clip{i:04d}",
                "wav": path,
                "labels": [f"/m/k{i % 4}"],
                "duration": duration,
            }
        )
    return clips


def _file_loader(clips, encoder, batch_size, workers):
    import speechbrain as sb
    from speechbrain_ast.data.audio import load_audio

    data = {c["ID"]: {"wav": c["wav"], "labels": c["labels"]} for c in clips}

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return load_audio(wav, sample_rate=16000)

    @sb.utils.data_pipeline.takes("labels")
    @sb.utils.data_pipeline.provides("target")
    def label_pipeline(labels):
        return encoder.encode(labels)

    dataset = sb.dataio.dataset.DynamicItemDataset(
        data,
        dynamic_items=[audio_pipeline, label_pipeline],
        output_keys=["id", "sig", "target"],
    )
    return sb.dataio.dataloader.make_dataloader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=workers
    )


def _shard_loader(folder, encoder, batch_size, workers):
    from speechbrain_ast.data.shards import DecodeClip, ShardLoader, ShardStream

    stream = ShardStream(folder, DecodeClip(encoder), batch_size, seed=0)
    return ShardLoader(stream, num_workers=workers)


def time_loader(loader, step=None):
    """Iterates ``loader`` once (calling ``step(batch)`` when given).

    Returns
    -------
    dict
        ``clips``, ``first_batch_s`` (start-up: workers and first batch),
        ``clips_per_s`` over the batches after the first.

    Example
    -------
    >>> out = time_loader([[1, 2], [3, 4], [5]])
    >>> out["clips"], out["clips_per_s"] > 0
    (5, True)
    """
    start = time.perf_counter()
    first, clips, later = None, 0, 0
    for batch in loader:
        if step is not None:
            step(batch)
        n = len(batch.id) if hasattr(batch, "id") else len(batch)
        clips += n
        if first is None:
            first = time.perf_counter()
        else:
            later += n
    end = time.perf_counter()
    first = end if first is None else first
    return {
        "clips": clips,
        "first_batch_s": round(first - start, 4),
        "clips_per_s": round(later / max(end - first, 1e-9), 2),
    }


def _per_clip_ms(fn, items):
    start = time.perf_counter()
    for item in items:
        fn(item)
    return round(1000 * (time.perf_counter() - start) / len(items), 3)


def _tiny_model(target_length, n_classes):
    from speechbrain_ast.features import FixedNormalization, KaldiFbank
    from speechbrain_ast.model.lobe import AST, ASTHead

    torch.manual_seed(0)
    fbank = KaldiFbank(target_length=target_length)
    norm = FixedNormalization(dataset="audioset")
    model = torch.nn.Sequential(
        AST(input_tdim=target_length, embed_dim=64, depth=2, num_heads=2),
        ASTHead(64, n_classes),
    )
    optimizer = torch.optim.Adam(model.parameters(), 1e-4)

    def step(batch):
        wavs, lens = batch.sig
        logits = model(norm(fbank(wavs, lens)))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, batch.target.data
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step, fbank


def run(clips_n, duration, workers, batch_size, quick):
    """All measurements; returns the JSON record.

    Example
    -------
    >>> out = run(4, 0.2, [1], 2, quick=True)
    >>> sorted(out["pipeline"])
    ['files', 'shards']
    """
    from speechbrain_ast.data.audio import decode_audio, load_audio
    from speechbrain_ast.data.shards import read_shard, write_shards
    from speechbrain_ast.training.labels import MultiHotEncoder

    tmp = tempfile.mkdtemp(prefix="input_pipeline_")
    try:
        clips = make_clips(tmp, clips_n, duration)
        encoder = MultiHotEncoder([f"/m/k{k}" for k in range(4)])
        start = time.perf_counter()
        shard_size = max(1, clips_n // 4)
        index = write_shards(clips, os.path.join(tmp, "shards"), shard_size)
        write_s = time.perf_counter() - start
        folder = os.path.join(tmp, "shards")
        shard_bytes = sum(s["bytes"] for s in index["shards"])

        samples = [s for s in read_shard(f"{folder}/shard-000000.tar")]
        paths = [c["wav"] for c in clips[: len(samples)]]
        waves = [load_audio(p) for p in paths[:4]]
        target_length = int(round(duration * 100))
        step, fbank = _tiny_model(target_length, len(encoder))
        record = {
            "machine": cpu_record(),
            "settings": {
                "clips": clips_n,
                "duration_s": duration,
                "batch_size": batch_size,
                "workers": workers,
                "quick": quick,
                "clip_bytes": round(shard_bytes / clips_n),
            },
            "write": {
                "clips_per_s": round(clips_n / write_s, 1),
                "shards": len(index["shards"]),
            },
            "decode": {
                "file_load_audio_ms": _per_clip_ms(load_audio, paths),
                "shard_decode_audio_ms": _per_clip_ms(
                    lambda s: decode_audio(s["flac"]), samples
                ),
                "fbank_ms": _per_clip_ms(
                    lambda w: fbank(w[None], torch.ones(1)), waves
                ),
            },
            "pipeline": {"files": {}, "shards": {}},
            "train": {},
        }
        for w in workers:
            record["pipeline"]["files"][str(w)] = time_loader(
                _file_loader(clips, encoder, batch_size, w)
            )
            record["pipeline"]["shards"][str(w)] = time_loader(
                _shard_loader(folder, encoder, batch_size, w)
            )
        w = workers[-1]
        record["train"]["files"] = time_loader(
            _file_loader(clips, encoder, batch_size, w), step
        )
        record["train"]["shards"] = time_loader(
            _shard_loader(folder, encoder, batch_size, w), step
        )
        batch = next(iter(_shard_loader(folder, encoder, batch_size, 0)))
        held = [batch] * max(2, clips_n // batch_size)
        record["train"]["model_only"] = time_loader(held, step)
        record["train"]["workers"] = w
        return record
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _table(record):
    lines = [
        f"CPU: {record['machine']['model_name']} "
        f"({record['machine']['cores']} cores)",
        f"per clip: file load_audio {record['decode']['file_load_audio_ms']}"
        f" ms, shard decode {record['decode']['shard_decode_audio_ms']} ms,"
        f" fbank {record['decode']['fbank_ms']} ms",
        "workers  files clips/s  shards clips/s",
    ]
    for w in record["pipeline"]["files"]:
        f = record["pipeline"]["files"][w]["clips_per_s"]
        s = record["pipeline"]["shards"][w]["clips_per_s"]
        lines.append(f"{w:>7}  {f:>13}  {s:>14}")
    t = record["train"]
    lines.append(
        f"training steps (tiny AST, {t['workers']} workers), clips/s: files "
        f"{t['files']['clips_per_s']}, shards {t['shards']['clips_per_s']}, "
        f"model alone {t['model_only']['clips_per_s']}"
    )
    return "\n".join(lines)


def main(argv=None):
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--clips", type=int, default=None)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--batch_size", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    clips = args.clips or (24 if args.quick else 480)
    batch_size = args.batch_size or (4 if args.quick else 12)
    record = run(clips, args.duration, args.workers, batch_size, args.quick)
    print(_table(record))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)
    return record


if __name__ == "__main__":
    main()
