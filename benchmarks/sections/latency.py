"""Section ``latency`` (1 in docs/benchmarks.md): inference per clip,
waveform to logits, ours against transformers' AST at batch 1 and 8, and
the machine's matmul roof; on a GPU, clips/s with features given.

Authors
 * speechbrain-ast developers
"""

import numpy as np
import torch
from timing import alternate, count_flops, machine, matmul_gflops, square_matmul

from sections.common import (
    hf_pipeline,
    maybe_compiled,
    ms,
    our_pipeline,
    paired_ratio,
    print_table,
)
from speechbrain_ast.testing.signals import synthetic_audio

# clip lengths (s) of the latency table
LATENCY_CLIPS = (1.0, 5.0, 10.0)


def latency_row(batch, clip, ours, theirs, flops, roof, reps):
    """One row of the latency table (times per clip, ratio, GFLOP/s);
    ``flops`` = (ours, transformers) per clip, what each executes."""
    per_clip = ours["median"] / batch
    gflops = flops[0] / per_clip / 1e9
    theirs_gflops = flops[1] * batch / theirs["median"] / 1e9
    return {
        "batch": batch,
        "clip": clip,
        "ours ms/clip": ms(per_clip),
        "transformers ms/clip": ms(theirs["median"] / batch),
        "ours/transformers": f"{ours['median'] / theirs['median']:.3f}",
        "paired": f"{paired_ratio(ours, theirs):.3f}",
        "ours GFLOP/s": f"{gflops:.1f}",
        "% of matmul": f"{100 * gflops / roof:.0f}",
        "transformers GFLOP/s": f"{theirs_gflops:.1f}",
        "reps": reps,
        "_ours": ours["times"],
        "_theirs": theirs["times"],
    }


def bench_latency(bench):
    """Batch 1 and 8, 1/5/10 s clips, then the model alone with the roof."""
    if bench.device.type == "cuda":
        return bench_latency_gpu(bench)
    lobe, head = bench.ours()
    hf = bench.hf_model()
    ours = our_pipeline(bench, lobe, head, 1024)
    theirs = hf_pipeline(bench, hf)
    roof = matmul_gflops(bench.device, size=2048, reps=bench.reps(5, 2))
    feats = torch.randn(1, 1024, 128, device=bench.device)
    flops_1 = (
        count_flops(lambda: head(lobe(feats))),
        count_flops(lambda: hf(input_values=feats)),
    )
    rows = []
    for batch in (1, 8):
        warm = 1
        for seconds in LATENCY_CLIPS:
            if batch == 8 and seconds not in bench.args.durations_b8:
                continue
            wavs = synthetic_audio(batch, seconds, seed=batch)
            reps = bench.reps(5)
            # warm-up once per batch size: every clip is padded to 1024
            # frames, so the shapes the model sees do not change
            a, b = bench.compare(
                lambda w=wavs: ours(w), lambda w=wavs: theirs(w), reps, warm
            )
            warm = 0
            rows.append(
                latency_row(batch, f"{seconds:g} s", a, b, flops_1, roof, reps)
            )
    # the model alone, features given (same work, no frontend)
    feats = torch.randn(1, 1024, 128, device=bench.device)
    reps = bench.reps(5)

    def ours_model():
        with torch.inference_mode():
            head(lobe(feats))

    def hf_model():
        with torch.inference_mode():
            hf(input_values=feats)

    # the roof in the same rounds: a 2048^3 matmul between the two models,
    # so that "% of matmul" compares runs made under the same load
    matmul, matmul_flops = square_matmul(bench.device, size=2048)
    a, b, m = alternate(
        [ours_model, hf_model, matmul], reps, device=bench.device
    )
    row = latency_row(1, "features given", a, b, flops_1, roof, reps)

    def of_matmul(model, flops):
        """Median over the rounds of the model's GFLOP/s / the matmul's."""
        return 100 * float(
            np.median(
                [
                    (flops / t) / (matmul_flops / t_matmul)
                    for t, t_matmul in zip(model["times"], m["times"])
                ]
            )
        )

    round_roof = matmul_flops / m["median"] / 1e9
    row["% of matmul"] = (
        f"{of_matmul(a, flops_1[0]):.0f} (same rounds; matmul "
        f"{round_roof:.1f}; transformers {of_matmul(b, flops_1[1]):.0f})"
    )
    row["_matmul"] = m["times"]
    rows.append(row)
    header = [
        "batch",
        "clip",
        "ours ms/clip",
        "transformers ms/clip",
        "ours/transformers",
        "paired",
        "ours GFLOP/s",
        "% of matmul",
        "transformers GFLOP/s",
        "reps",
    ]
    print_table(
        "1. Inference latency, AudioSet model (1024 frames), waveform -> "
        f"logits; model GFLOP/clip: ours {flops_1[0] / 1e9:.1f}, "
        f"transformers {flops_1[1] / 1e9:.1f}; fp32 matmul 2048^3: "
        f"{roof:.1f} GFLOP/s",
        header,
        rows,
    )
    bench.record(
        "latency",
        rows,
        gflop_per_clip=[f / 1e9 for f in flops_1],
        roof=roof,
    )


def bench_latency_gpu(bench):
    """GPU: clips/s of the model at several batch sizes, features given."""
    lobe, head = bench.ours()
    hf = bench.hf_model()
    dtype = bench.autocast_dtype or torch.float32
    roof = matmul_gflops(bench.device, dtype=dtype, size=8192, reps=10)
    one = torch.randn(1, 1024, 128, device=bench.device)
    flops_1 = count_flops(lambda: head(lobe(one)))
    run_lobe, run_hf = maybe_compiled(bench, lobe), maybe_compiled(bench, hf)
    rows = []
    for batch in (1, 8, 32):
        feats = torch.randn(batch, 1024, 128, device=bench.device)

        def ours_model(f=feats):
            with torch.inference_mode(), bench.autocast():
                head(run_lobe(f))

        def hf_model(f=feats):
            with torch.inference_mode(), bench.autocast():
                run_hf(input_values=f)

        a, b = bench.compare(ours_model, hf_model, bench.reps(20, 3), 3)
        utilisation = batch * flops_1 / a["median"] / 1e9 / roof
        rows.append(
            {
                "batch": batch,
                "ours clips/s": f"{batch / a['median']:.1f}",
                "transformers clips/s": f"{batch / b['median']:.1f}",
                "ours/transformers (time)": f"{a['median'] / b['median']:.3f}",
                "ours % of matmul": f"{100 * utilisation:.0f}",
            }
        )
    print_table(
        f"GPU inference ({machine(bench.device).get('gpu')}, "
        f"{bench.args.dtype}{', compiled' if bench.args.compile else ''}), "
        "1024 frames, features given; "
        f"{bench.args.dtype} matmul 8192^3: {roof / 1000:.0f} TFLOP/s",
        list(rows[0]),
        rows,
    )
    bench.record("latency_gpu", rows, roof=roof)
