"""Section ``compile``: ``torch.compile`` of the lobe (inductor, default
and with ``freezing``) against eager, in turns.

Authors
 * speechbrain-ast developers
"""

import time

import torch
from timing import alternate

from sections.common import ms, paired_ratio, print_table

# default inductor, and with freezing: the weights become constants of the
# graph, so inductor may fold them and pre-pack them for its GEMMs (inference
# only; applied when the graph is built, on the first call)
COMPILE_VARIANTS = (("default", None), ("frozen", {"freezing": True}))


def compile_variants(lobe, feats):
    """``{name: compiled lobe}`` for ``COMPILE_VARIANTS`` and the seconds
    each first call (the compilation) took. Each compile gets its own
    options, hence its own backend and cache entries: two plain
    ``torch.compile(lobe)`` would share one compiled graph (dynamo caches
    per code object), whatever inductor's config was when each was made."""
    compiled, compile_s = {}, {}
    for name, options in COMPILE_VARIANTS:
        compiled[name] = torch.compile(lobe, options=options)
        start = time.perf_counter()
        with torch.inference_mode():
            compiled[name](feats)
        compile_s[name] = time.perf_counter() - start
    return compiled, compile_s


def bench_compile(bench):
    """Compiled (default, frozen) against eager lobe, AST-Base, batch 1."""
    lobe, head = bench.ours()
    feats = torch.randn(1, 1024, 128, device=bench.device)
    try:
        compiled, compile_s = compile_variants(lobe, feats)
    except Exception as error:  # report, do not hide, a failing compiler
        print(f"\ntorch.compile failed: {type(error).__name__}: {error}")
        bench.record("compile", [], error=str(error))
        return

    def timed(module):
        def run():
            with torch.inference_mode():
                module(feats)

        return run

    reps = bench.reps(7, 1)
    a, f, b = alternate(
        [timed(compiled["default"]), timed(compiled["frozen"]), timed(lobe)],
        reps,
        device=bench.device,
    )
    with torch.inference_mode():
        want = lobe(feats)
        diff = {
            k: (m(feats) - want).abs().max().item() for k, m in compiled.items()
        }
    rows = [
        {
            "what": f"torch.compile(lobe){extra}, 1024 frames, batch 1",
            "ms": ms(t["median"]),
            "compiled/eager": f"{t['median'] / b['median']:.3f}",
            "paired": f"{paired_ratio(t, b):.3f}",
            "max abs diff": f"{diff[name]:.1e}",
            "first call s": f"{compile_s[name]:.1f}",
            "_times": t["times"],
        }
        for name, extra, t in (
            ("default", "", a),
            ("frozen", ", inductor freezing=True", f),
        )
    ] + [
        {
            "what": "eager lobe",
            "ms": ms(b["median"]),
            "compiled/eager": "1",
            "paired": "1",
            "_times": b["times"],
        }
    ]
    print_table(
        f"torch.compile (inductor, {bench.device.type}); first call = "
        "compilation; compiled, frozen and eager in turns",
        [k for k in rows[0] if not k.startswith("_")],
        rows,
    )
    bench.record("compile", rows, compile_s=compile_s)
