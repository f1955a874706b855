#!/usr/bin/env python3
"""Live tagging with events, on a generated stream: how soon a sound is
detected, what a second of audio costs, and whether memory stays flat.

The stream: a quiet background (noise at ``--background-db`` dBFS) with
real recordings (``--sounds``: the project's test clips by default, or
e.g. the shared sounds folder) mixed in at known onsets, one every
``--every`` seconds (jittered), each ``--sound-seconds`` long, cut where
the recording is audible. It is generated block by block, so an hour of it
(``--hours 1``) takes no more memory than a minute.

It is tagged with events as ``python -m speechbrain_ast.tag --stream
--events`` does (:mod:`speechbrain_ast.events.stream`, the same windows,
drop policy and stitching), twice:

* ``fast``: as fast as possible (``--hours`` of audio), every window;
* ``realtime``: paced at real time (``--realtime-seconds``), where the
  scheduler drops the windows that fall behind.

Per run: each sound's latency from its onset to its first event (the
first event, still open or complete, that overlaps the sound and starts at
most ``--tolerance`` s before it), in stream seconds (the audio consumed
when it appeared) and, paced, in wall seconds; the median and 95th
percentile, and the share of sounds detected; CPU time per second of
audio; the process's resident memory sampled over the stream (first,
last, peak and the growth per hour of audio); hops dropped. The JSON also
records the machine (CPU model and flags).

::

    python benchmarks/stream.py --model MODEL_FOLDER --out results/stream.json
    python benchmarks/stream.py --model MODEL_FOLDER --hours 1 --out results/stream_1h.json
    python benchmarks/stream.py --model MODEL_FOLDER --quick   # a smoke run

Authors
 * speechbrain-ast developers
"""

import argparse
import glob
import json
import os
import sys
import time

import numpy as np
import torch
from timing import machine

from speechbrain_ast.data.audio import load_audio, resample
from speechbrain_ast.events import options, tagging
from speechbrain_ast.events.sources import BLOCK_S
from speechbrain_ast.events.stream import HopScheduler, stream_windows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SOUNDS = os.path.join(ROOT, "tests", "data", "sounds")


def audible_start(wav, rate, floor_db=20.0):
    """The first sample of the first 10 ms frame within ``floor_db`` of
    the recording's loudest frame (where the sound starts).

    Example
    -------
    >>> wav = np.concatenate([np.zeros(800), np.ones(800)])
    >>> audible_start(wav, 8000)
    800
    """
    hop = max(1, rate // 100)
    frames = wav[: len(wav) // hop * hop].reshape(-1, hop)
    power = 10 * np.log10((frames**2).mean(axis=1) + 1e-12)
    return int(np.argmax(power >= power.max() - floor_db)) * hop


class Soundscape:
    """A generated stream: background noise and sounds at known onsets,
    made block by block.

    Arguments
    ---------
    clips : list of numpy.ndarray
        Mono recordings at ``rate`` (each at least ``sound_s`` long after
        its audible start).
    seconds : float
        Length of the stream.
    rate : int
        Samples per second.
    every_s, sound_s : float
        Mean seconds between onsets; seconds of each sound.
    background_db : float
        Background noise level (dBFS, RMS).
    seed : int
        The onsets, clips and noise.

    Example
    -------
    >>> scape = Soundscape([np.ones(8000)], 10.0, 8000, 4.0, 0.5, -60, 0)
    >>> blocks = list(scape.blocks())
    >>> sum(map(len, blocks)), len(scape.sounds) > 0
    (80000, True)
    """

    def __init__(
        self, clips, seconds, rate, every_s, sound_s, background_db, seed
    ):
        self.rate, self.total = rate, int(seconds * rate)
        self.background = 10 ** (background_db / 20)
        gen = np.random.default_rng(seed)
        self.seed, length = seed, int(sound_s * rate)
        self.sounds = []  # (onset sample, samples: a view of its clip)
        onset = every_s / 2
        while (onset + sound_s) * rate < self.total:
            clip = np.asarray(clips[gen.integers(len(clips))], np.float32)
            start = audible_start(clip, rate)
            self.sounds.append(
                (int(onset * rate), clip[start : start + length])
            )
            onset += every_s * gen.uniform(0.75, 1.25)

    def blocks(self, block_s=BLOCK_S):
        """Yields ``[samples]`` float32 blocks of the stream, in order."""
        gen = np.random.default_rng(self.seed + 1)
        step, pending = max(1, round(block_s * self.rate)), list(self.sounds)
        for pos in range(0, self.total, step):
            size = min(step, self.total - pos)
            block = gen.standard_normal(size).astype(np.float32)
            block *= self.background
            while pending and pending[0][0] + len(pending[0][1]) <= pos:
                pending.pop(0)
            for onset, piece in pending:
                if onset >= pos + size:
                    break
                a, b = max(onset, pos), min(onset + len(piece), pos + size)
                if a < b:
                    block[a - pos : b - pos] += piece[a - onset : b - onset]
            yield block


def paced(blocks, rate, clock=time.monotonic):
    """``blocks`` delivered at real time: each when its last sample is
    due, as a microphone delivers them."""
    start, done = clock(), 0
    for block in blocks:
        done += len(block)
        due = start + done / rate
        time.sleep(max(0.0, due - clock()))
        yield block


def rss_mb():
    """The process's resident memory in MB (Linux), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def percentile(values, q):
    """The ``q``-th percentile of ``values`` (None when empty)."""
    return float(np.percentile(values, q)) if values else None


def run(model, args, scape, realtime):
    """Tags ``scape`` with events; the run's measurements."""
    rate = scape.rate
    settings = options.event_settings(model, args)
    warm = torch.zeros(1, round(args.window * model.sample_rate))
    model.compute_logits(warm)  # one-time set-up, not timed
    tagging.WindowEvents(model, *settings).add([0.0], warm)
    live = tagging.WindowEvents(model, *settings, delay_s=args.delay)
    # as fast as possible: every window; paced: late ones are dropped
    drops, scheduler, blocks = [], None, scape.blocks()
    if realtime:
        scheduler = HopScheduler(args.hop, drops.append)
        blocks = paced(blocks, rate)
    hop = max(1, round(args.hop * rate)) / rate
    first_seen = {}  # sound index -> (stream s, wall s) of its first event
    onsets = [(o / rate, (o + len(p)) / rate) for o, p in scape.sounds]
    rss, windows = [], 0
    every = max(1, int(scape.total / rate / args.hop / 50))  # ~50 samples
    wall0, cpu0 = time.monotonic(), time.process_time()
    end_s = 0.0
    for k, start, end_s, wav in stream_windows(
        blocks, rate, args.window, args.hop, scheduler
    ):
        wav = resample(torch.from_numpy(wav), rate, model.sample_rate)[None]
        model.scores_from_logits(model.compute_logits(wav))
        found = live.add([start], wav, next_start_s=(k + 1) * hop)
        found += live.tracker.open  # seen, not complete yet
        now = time.monotonic() - wall0
        for i, (onset, end) in enumerate(onsets):
            if i in first_seen or onset > end_s:
                continue
            if any(
                e.offset > onset and onset - args.tolerance <= e.onset < end
                for e in found
            ):
                first_seen[i] = (end_s - onset, now - onset)
        windows += 1
        if windows % every == 0:
            rss.append((round(end_s, 2), rss_mb()))
    live.finish(end_s)
    wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
    rss.append((round(end_s, 2), rss_mb()))
    stream_lat = [v[0] for v in first_seen.values()]
    wall_lat = [v[1] for v in first_seen.values()]
    memory = [m for _, m in rss if m is not None]
    hours = end_s / 3600
    result = {
        "audio_s": round(end_s, 2),
        "wall_s": round(wall, 2),
        "windows": windows,
        "hops_dropped": scheduler.total_dropped if scheduler else 0,
        "drop_reports": len(drops),
        "sounds": len(onsets),
        "detected": len(first_seen) / max(1, len(onsets)),
        "latency_stream_s": {
            "median": percentile(stream_lat, 50),
            "p95": percentile(stream_lat, 95),
        },
        "cpu_s_per_audio_s": cpu / max(end_s, 1e-9),
        "rss_mb": {
            "first": memory[0] if memory else None,
            "last": memory[-1] if memory else None,
            "peak": max(memory) if memory else None,
            "growth_per_hour": (memory[-1] - memory[0]) / hours
            if len(memory) > 1 and hours
            else None,
            "samples": rss,
        },
    }
    if realtime:
        result["latency_wall_s"] = {
            "median": percentile(wall_lat, 50),
            "p95": percentile(wall_lat, 95),
        }
    return result


def load_clips(folder, rate, sound_s):
    """The recordings of ``folder`` (FLAC/WAV) at ``rate``, mono, long
    enough for one sound after their audible start."""
    paths = sorted(
        glob.glob(os.path.join(folder, "*.flac"))
        + glob.glob(os.path.join(folder, "*.wav"))
    )
    clips = []
    for path in paths:
        wav = load_audio(path, rate).numpy()
        if len(wav) - audible_start(wav, rate) >= sound_s * rate:
            clips.append(wav)
    return clips


def main(argv=None):
    """Command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        description="Live tagging with events on a generated stream: "
        "detection latency, CPU per second of audio, memory over time."
    )
    parser.add_argument("--model", required=True, help="model folder")
    parser.add_argument("--sounds", default=DEFAULT_SOUNDS, help="clips")
    parser.add_argument("--hours", type=float, default=0.1)
    parser.add_argument("--realtime-seconds", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=8.0)
    parser.add_argument("--sound-seconds", type=float, default=2.0)
    parser.add_argument("--background-db", type=float, default=-50.0)
    parser.add_argument("--window", type=float, help="default: the model's")
    parser.add_argument("--hop", type=float, default=0.5)
    parser.add_argument(
        "--delay",
        type=float,
        default=0.5,
        help="tag --stream-delay: seconds behind the newest audio at which "
        "frame scores are final",
    )
    parser.add_argument("--threshold", type=float)
    parser.add_argument("--median-window", type=int)
    parser.add_argument("--tolerance", type=float, default=0.5)
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument("--out", help="JSON file for the results")
    args = parser.parse_args(argv)
    for name in ("hours", "realtime_seconds", "every", "sound_seconds", "hop"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0")
    if not os.path.isdir(args.model):
        parser.error(f"--model {args.model!r} is not a model folder")
    if args.quick:
        args.hours, args.realtime_seconds, args.every = 12 / 3600, 4.0, 3.0
    if args.threads:
        torch.set_num_threads(args.threads)
    from speechbrain_ast.inference import ASTAudioClassifier

    model = ASTAudioClassifier.from_hparams(source=os.path.abspath(args.model))
    args.stream, args.events = "benchmark", True
    error = options.set_window(model, args)
    if error:
        parser.error(error[len("error: ") :])
    clips = load_clips(args.sounds, model.sample_rate, args.sound_seconds)
    if not clips:
        parser.error(
            f"--sounds {args.sounds!r} has no recording of at least "
            f"{args.sound_seconds} s"
        )
    results = {
        "machine": machine(),
        "model": os.path.abspath(args.model),
        "window_s": args.window,
        "hop_s": args.hop,
        "settings": options.event_settings(model, args),
        "clips": len(clips),
    }
    for name, seconds, realtime in (
        ("fast", args.hours * 3600, False),
        ("realtime", args.realtime_seconds, True),
    ):
        scape = Soundscape(
            clips,
            seconds,
            model.sample_rate,
            args.every,
            args.sound_seconds,
            args.background_db,
            args.seed,
        )
        results[name] = run(model, args, scape, realtime)
        print(name, json.dumps({k: v for k, v in results[name].items()
                                if k != "rss_mb"}), flush=True)  # fmt: skip
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
