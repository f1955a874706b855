"""Section ``tag`` (7 in docs/benchmarks.md): long recordings through the
tagging command line, wall time and peak memory for 1 and 10 minutes.

Authors
 * speechbrain-ast developers
"""

import os
import subprocess
import sys
import time

import numpy as np

from sections.common import print_table
from speechbrain_ast.testing.signals import synthetic_audio

_RSS_WRAPPER = (
    "import resource, runpy, sys\n"
    "sys.argv = ['tag'] + sys.argv[1:]\n"
    "try:\n"
    "    runpy.run_module('speechbrain_ast.tag', run_name='__main__')\n"
    "except SystemExit as e:\n"
    "    code = e.code\n"
    "else:\n"
    "    code = 0\n"
    "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "print(f'PEAK_RSS_KB {rss}', file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def write_long_file(path, seconds, chunk_s=60):
    """A long synthetic recording written chunk by chunk."""
    import soundfile as sf

    with sf.SoundFile(path, "w", samplerate=16000, channels=1) as out:
        for i in range(int(np.ceil(seconds / chunk_s))):
            length = min(chunk_s, seconds - i * chunk_s)
            out.write(synthetic_audio(1, length, seed=100 + i)[0].numpy())


def bench_tag(bench):
    """The tagging command line on 1 and 10 minute files (1 and 2 quick)."""
    from speechbrain_ast.convert import convert_checkpoint

    folder = os.path.join(bench.tmp, "tag_model")
    convert_checkpoint(bench.hf_folder(1024, 527), folder)
    lengths = (60, 120) if bench.args.quick else (60, 600)
    rows = []
    for seconds in lengths:
        path = os.path.join(bench.tmp, f"long_{seconds}.wav")
        write_long_file(path, seconds)
        command = [
            sys.executable,
            "-c",
            _RSS_WRAPPER,
            path,
            "--model",
            folder,
            "--window",
            "10",
            "--hop",
            "10",
            "--no-progress",
            "--json",
            "--device",
            str(bench.device),
        ]
        env = dict(os.environ, OMP_NUM_THREADS=str(bench.args.threads))
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            print(f"\ntag failed ({done.returncode}):\n{done.stderr[-2000:]}")
            bench.record("tag", rows, error=done.stderr[-2000:])
            return
        rss_kb = int(done.stderr.rsplit("PEAK_RSS_KB", 1)[1].split()[0])
        rows.append(
            {
                "file": f"{seconds // 60} min",
                "windows": seconds // 10,
                "wall s": f"{wall:.1f}",
                "real-time factor": f"{wall / seconds:.3f}",
                "x real time": f"{seconds / wall:.1f}",
                "peak RSS MiB": f"{rss_kb / 1024:.0f}",
            }
        )
    print_table(
        "7. Long recordings: python -m speechbrain_ast.tag --window 10 "
        "--hop 10 (AudioSet model, process start and model load included)",
        list(rows[0]),
        rows,
    )
    bench.record("tag", rows)
