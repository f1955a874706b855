"""Sections ``train`` and ``patchout`` (4 and 5 in docs/benchmarks.md):
one ESC-50-sized training step (Adam, cross-entropy), ours against
transformers' AST, and ours with PaSST's patchout against the full
sequence.

Authors
 * speechbrain-ast developers
"""

import torch
from timing import alternate, count_flops

from sections.common import (
    gpu_peak_tflops,
    maybe_compiled,
    ms,
    paired_ratio,
    print_table,
    warmup_calls,
)
from speechbrain_ast.training.optim import make_optimizer

# PaSST drops 40 of 99 time columns and 4 of 12 frequency rows on AudioSet;
# the same fractions of ESC-50's 12 x 50 grid
PATCHOUT_512 = dict(patchout_time=20, patchout_freq=4)


def default_adam(params, lr):
    """``torch.optim.Adam`` with the paper's settings and PyTorch's default
    implementation choice (on the CPU: a loop over the parameters)."""
    return torch.optim.Adam(
        params, lr=lr, betas=(0.95, 0.999), weight_decay=5e-7
    )


def train_step_fn(
    bench, model_fn, params, feats, labels, optimizer_fn=make_optimizer
):
    """One Adam step (forward, cross-entropy, backward, update), by default
    with the recipes' optimiser (the paper's Adam, fused on the CPU and
    CUDA) for both models: the same update, so the ratio compares the
    models."""
    optimizer = optimizer_fn(params, lr=1e-5)
    fp16 = bench.autocast_dtype == torch.float16
    scaler = torch.amp.GradScaler(bench.device.type, enabled=fp16)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with bench.autocast():
            logits = model_fn(feats)
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return step


def train_batch(bench):
    if bench.args.train_batch:
        return bench.args.train_batch
    return 32 if bench.device.type == "cuda" else 2


def our_train_step(
    bench, feats, labels, optimizer_fn=make_optimizer, **lobe_kwargs
):
    """A fresh copy of our ESC-50-sized model (512 frames, 50 classes) in
    train mode and its training step; returns ``(step, lobe, head)``."""
    lobe, head = bench.ours(512, 50, **lobe_kwargs)
    lobe.train(), head.train()
    run_lobe = maybe_compiled(bench, lobe)
    step = train_step_fn(
        bench,
        lambda x: head(run_lobe(x)),
        list(lobe.parameters()) + list(head.parameters()),
        feats,
        labels,
        optimizer_fn,
    )
    return step, lobe, head


def bench_train(bench):
    """Ours against transformers' step, and ours with unfused Adam."""
    batch = train_batch(bench)
    hf = bench.hf_model(512, 50)
    hf.train()
    feats = torch.randn(batch, 512, 128, device=bench.device)
    labels = torch.randint(0, 50, (batch,), device=bench.device)
    ours, lobe, head = our_train_step(bench, feats, labels)
    run_hf = maybe_compiled(bench, hf)
    theirs = train_step_fn(
        bench,
        lambda x: run_hf(input_values=x).logits,
        list(hf.parameters()),
        feats,
        labels,
    )
    # ours again, with torch.optim.Adam as it comes: what the fused kernel
    # of the recipes' optimiser saves per step (a copy, its own state)
    ours_default_adam = our_train_step(bench, feats, labels, default_adam)[0]
    reps = bench.reps(5 if bench.device.type == "cpu" else 10)
    a, b, c = alternate(
        [ours, theirs, ours_default_adam],
        reps,
        warmup=warmup_calls(bench),
        device=bench.device,
    )
    # what each executes (train mode); backward ~ 2x forward
    step_flops = 3 * count_flops(lambda: head(lobe(feats)))
    hf_step_flops = 3 * count_flops(lambda: hf(input_values=feats))
    rows = [
        {
            "what": f"ours, batch {batch}, 512 frames",
            "ms/step": ms(a["median"]),
            "samples/s": f"{batch / a['median']:.2f}",
            "ours/transformers": f"{a['median'] / b['median']:.3f}",
            "paired": f"{paired_ratio(a, b):.3f}",
            "GFLOP/s": f"{step_flops / a['median'] / 1e9:.1f}",
        },
        {
            "what": "transformers, same step",
            "ms/step": ms(b["median"]),
            "samples/s": f"{batch / b['median']:.2f}",
            "ours/transformers": "1.000",
            "paired": "1.000",
            "GFLOP/s": f"{hf_step_flops / b['median'] / 1e9:.1f}",
        },
        {
            "what": "ours, torch.optim.Adam defaults (not fused)",
            "ms/step": ms(c["median"]),
            "samples/s": f"{batch / c['median']:.2f}",
            "ours/transformers": f"{c['median'] / b['median']:.3f}",
            "paired": f"{paired_ratio(c, b):.3f}",
            "GFLOP/s": f"{step_flops / c['median'] / 1e9:.1f}",
        },
    ]
    extra = {}
    if bench.device.type == "cuda":
        name = torch.cuda.get_device_name()
        peak = gpu_peak_tflops(name, bench.args.dtype, bench.args.peak_tflops)
        if peak:
            mfu = step_flops / a["median"] / 1e12 / peak
            rows[0]["MFU"] = f"{100 * mfu:.0f}% of {peak:g} TFLOP/s"
            extra["mfu"] = mfu
    print_table(
        f"4. Training step (Adam, cross-entropy, {bench.args.dtype}, "
        f"{bench.device.type}{', compiled' if bench.args.compile else ''}); "
        f"GFLOP/step: ours {step_flops / 1e9:.0f}, "
        f"transformers {hf_step_flops / 1e9:.0f}",
        list(rows[0]),
        rows,
    )
    bench.record("train", rows, step_gflop=step_flops / 1e9, **extra)


def bench_patchout(bench):
    """A patchout step against the full-sequence step of the same model."""
    batch = train_batch(bench)
    feats = torch.randn(batch, 512, 128, device=bench.device)
    labels = torch.randint(0, 50, (batch,), device=bench.device)
    patchout_step = our_train_step(bench, feats, labels, **PATCHOUT_512)[0]
    full_step, full_lobe, _ = our_train_step(bench, feats, labels)
    reps = bench.reps(3 if bench.device.type == "cpu" else 10)
    a, b = bench.compare(patchout_step, full_step, reps, warmup_calls(bench))
    f_dim, t_dim = full_lobe.patch_grid
    kept = (f_dim - PATCHOUT_512["patchout_freq"]) * (
        t_dim - PATCHOUT_512["patchout_time"]
    )
    rows = [
        {
            "what": (
                f"patchout t={PATCHOUT_512['patchout_time']}, "
                f"f={PATCHOUT_512['patchout_freq']} ({kept} of "
                f"{f_dim * t_dim} patches)"
            ),
            "ms/step": ms(a["median"]),
            "speed-up vs full": f"{b['median'] / a['median']:.2f}",
        },
        {
            "what": f"full sequence ({f_dim} x {t_dim})",
            "ms/step": ms(b["median"]),
            "speed-up vs full": "1.00",
        },
    ]
    print_table(
        f"5. Patchout training step, batch {batch}, 512 frames"
        f"{', compiled' if bench.args.compile else ''}",
        list(rows[0]),
        rows,
    )
    bench.record("patchout", rows, speedup=b["median"] / a["median"])
