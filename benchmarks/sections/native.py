"""Section ``native`` (2 in docs/benchmarks.md): a 1 s clip at its own
length against transformers' AST padded to 1024 frames, and how much
native length changes the logits.

Authors
 * speechbrain-ast developers
"""

import torch

from sections.common import (
    hf_pipeline,
    logit_agreement,
    ms,
    our_pipeline,
    paired_ratio,
    print_table,
)
from speechbrain_ast.testing.signals import synthetic_audio


def bench_native(bench):
    """A 1 s clip at 98 frames against transformers' 1024."""
    lobe, head = bench.ours()
    hf = bench.hf_model()
    native = our_pipeline(bench, lobe, head, None)
    padded = our_pipeline(bench, lobe, head, 1024)
    theirs = hf_pipeline(bench, hf)
    wav = synthetic_audio(1, 1.0, seed=5)
    reps = bench.reps(5, 2)
    a, b = bench.compare(lambda: native(wav), lambda: theirs(wav), reps)
    # what native length changes in the outputs (random weights: a
    # trained model's figures will differ, the shape of the effect not)
    clips = synthetic_audio(4, 1.0, seed=6)
    with torch.inference_mode():
        got, ref = native(clips).float(), padded(clips).float()
        want = theirs(clips).float()
    cos, top1 = logit_agreement(got, ref)
    same = (ref - want).abs().max().item()
    rows = [
        {
            "what": "ours, native length (98 frames, 12 x 9 patches)",
            "ms": ms(a["median"]),
            "speed-up vs transformers": f"{b['median'] / a['median']:.2f}",
            "paired": f"{1 / paired_ratio(a, b):.2f}",
        },
        {
            "what": "transformers, padded to 1024 frames (12 x 101)",
            "ms": ms(b["median"]),
            "speed-up vs transformers": "1.00",
            "paired": "1.00",
        },
    ]
    print_table("2. A 1 s clip, batch 1", list(rows[0]), rows)
    print(
        f"native vs padded logits (ours, 4 synthetic 1 s clips): min cosine "
        f"{cos:.4f}, top-1 agreement {top1:.2f}; ours padded vs transformers "
        f"max abs diff {same:.2e}"
    )
    bench.record(
        "native",
        rows,
        cosine_native_vs_padded=cos,
        top1_agreement=top1,
        ours_padded_vs_transformers=same,
    )
