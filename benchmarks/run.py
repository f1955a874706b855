"""Benchmarks: speechbrain-ast against HuggingFace transformers' AST.

One run on one machine measures ours against ``ASTForAudioClassification``
(same AST-Base config, same random weights through our importer, SDPA
attention, its ``ASTFeatureExtractor`` called as its users call it) and
prints ratios. Every figure is the median of several runs after warm-up;
ours and theirs run alternately so that load drifting on the machine hits
both alike.

::

    python benchmarks/run.py [--quick] [--only NAME[,NAME]] [--device cpu]
        [--dtype fp32|bf16|fp16] [--threads 2] [--json out.json]
        [--update docs/benchmarks.json] [--plot docs/benchmarks.png] [--tiny]
        [--compile]

Sections, in order: ``latency`` (inference per clip and the matmul roof),
``frontend`` (batched fbank vs a per-clip torchaudio loop), ``native``
(a 1 s clip at its own length vs padded to 1024 frames), ``int8``
(dynamic quantization vs fp32 transformers), ``train`` (one ESC-50 step),
``patchout`` (a training step with PaSST's patchout vs full), ``compile``
(``torch.compile`` of the lobe), ``tag`` (a 10-minute file through the
tagging CLI), ``accuracy`` (patchout and int8 accuracy along training
curves, ``benchmarks/accuracy.py``). ``--device cuda`` runs ``latency``,
``train``, ``patchout``, ``frontend`` and ``native`` on the GPU (clips/s,
samples/s, model FLOPs utilisation) with ``--dtype`` autocast;
``--compile`` puts both models through ``torch.compile`` in the GPU
inference, training and patchout sections.
``--update`` reruns sections into an existing results file: their results
replace the old ones, the command is recorded under ``runs`` and the day
under ``dates``, the rest is kept; with ``--plot-only`` it only redraws
``--plot`` from that file.
``--tiny`` swaps AST-Base for a 64-wide 2-block model, to try the script.

Authors
 * speechbrain-ast developers
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks.timing import (  # noqa: E402
    alternate,
    compare,
    count_flops,
    machine,
    matmul_gflops,
    measure,
    square_matmul,
)
from scripts.synthetic.signals import synthetic_audio  # noqa: E402
from speechbrain_ast.features.fbank import (  # noqa: E402
    TORCHAUDIO_FBANK_KWARGS,
    FixedNormalization,
    KaldiFbank,
)
from speechbrain_ast.model.lobe import AST  # noqa: E402
from speechbrain_ast.training.optim import make_optimizer  # noqa: E402
from speechbrain_ast.weights.pretrained import (  # noqa: E402
    build_from_checkpoint,
)

SECTIONS = (
    "latency",
    "frontend",
    "native",
    "int8",
    "train",
    "patchout",
    "compile",
    "tag",
    "accuracy",
)
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# clip lengths (s) of the latency table
LATENCY_CLIPS = (1.0, 5.0, 10.0)
AST_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12)
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2)
# PaSST drops 40 of 99 time columns and 4 of 12 frequency rows on AudioSet;
# the same fractions of ESC-50's 12 x 50 grid
PATCHOUT_512 = dict(patchout_time=20, patchout_freq=4)
# nominal dense bf16/fp16 tensor-core peaks (TFLOP/s, no sparsity) for the
# model FLOPs utilisation; the first name contained in the device's wins
GPU_PEAK_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM ("NVIDIA H100 80GB HBM3")
    ("H200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
)


def gpu_peak_tflops(name, dtype, given=None):
    """The GPU's nominal peak for ``dtype`` ("bf16"/"fp16"), or ``given``
    (``--peak-tflops``) when set; None when unknown, or for fp32, whose
    peak (TF32 or not) the table does not hold.

    Example
    -------
    >>> gpu_peak_tflops("NVIDIA H100 PCIe", "bf16")
    756.0
    >>> gpu_peak_tflops("NVIDIA H100 80GB HBM3", "fp16")
    989.0
    >>> gpu_peak_tflops("NVIDIA H100 80GB HBM3", "fp32") is None
    True
    """
    if given:
        return given
    if dtype not in ("bf16", "fp16"):
        return None
    return next((v for k, v in GPU_PEAK_TFLOPS if k in name), None)


class Bench:
    """Shared state: options, models (built once, on demand), results."""

    def __init__(self, args):
        self.args = args
        self.device = torch.device(args.device)
        self.autocast_dtype = DTYPES[args.dtype]
        self.tmp = tempfile.mkdtemp(prefix="ast_bench_")
        self.results = {}
        self._models = {}
        self.size = TINY if args.tiny else AST_BASE

    # -- knobs ---------------------------------------------------------
    def reps(self, full, quick=1):
        return quick if self.args.quick else full

    def autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def run(self, fn, reps, warmup=1):
        return measure(fn, reps, warmup, self.device)

    def compare(self, ours, theirs, reps, warmup=1):
        return compare(ours, theirs, reps, warmup, self.device)

    # -- models --------------------------------------------------------
    def hf_folder(self, max_length, num_labels):
        """A random-weight transformers AST saved with save_pretrained."""
        key = ("folder", max_length, num_labels)
        if key not in self._models:
            from transformers import ASTConfig, ASTForAudioClassification

            config = ASTConfig(
                intermediate_size=4 * self.size["hidden_size"],
                max_length=max_length,
                num_labels=num_labels,
                **self.size,
            )
            torch.manual_seed(0)
            model = ASTForAudioClassification(config)
            folder = os.path.join(self.tmp, f"hf_{max_length}_{num_labels}")
            model.save_pretrained(folder)
            self._models[key] = folder
        return self._models[key]

    def hf_model(self, max_length=1024, num_labels=527):
        from transformers import ASTForAudioClassification

        folder = self.hf_folder(max_length, num_labels)
        model = ASTForAudioClassification.from_pretrained(
            folder, attn_implementation="sdpa"
        )
        return model.to(self.device).eval()

    def ours(self, max_length=1024, num_labels=527, **lobe_kwargs):
        """Our lobe and head from the same folder (the importer)."""
        folder = self.hf_folder(max_length, num_labels)
        lobe, head, imported = build_from_checkpoint(folder)
        if lobe_kwargs:
            config = dict(imported.config, **lobe_kwargs)
            state = lobe.state_dict()
            lobe = AST(**config)
            lobe.load_state_dict(state)
        return lobe.to(self.device).eval(), head.to(self.device).eval()

    def record(self, section, rows, **extra):
        self.results[section] = dict(rows=rows, **extra)


def print_table(title, header, rows):
    """Prints a markdown table (the form docs/benchmarks.md quotes)."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(row.get(h, "")) for h in header) + " |")
    sys.stdout.flush()


def ms(seconds):
    return f"{seconds * 1000:.1f}"


def our_pipeline(bench, lobe, head, target_length):
    """Waveforms -> logits as our users run it (frontend on the device)."""
    fbank = KaldiFbank(target_length=target_length).to(bench.device)
    norm = FixedNormalization(dataset="audioset")

    def run(wavs):
        with torch.inference_mode(), bench.autocast():
            return head(lobe(norm(fbank(wavs.to(bench.device)))))

    return run


def hf_pipeline(bench, model, max_length=1024):
    """Waveforms -> logits as transformers' users run it."""
    from transformers import ASTFeatureExtractor

    extractor = ASTFeatureExtractor(max_length=max_length)

    def run(wavs):
        inputs = extractor(
            [w.numpy() for w in wavs], sampling_rate=16000, return_tensors="pt"
        )
        inputs = inputs.to(bench.device)
        with torch.inference_mode(), bench.autocast():
            return model(**inputs).logits

    return run


# ---------------------------------------------------------------------------
# 1. inference latency, and the matmul roof
# ---------------------------------------------------------------------------


def paired_ratio(ours, theirs):
    """Median over the alternating runs of ours / theirs, run by run: on
    a machine whose speed drifts (a shared VM) it is steadier than the
    ratio of the two medians, since each pair ran under the same load."""
    pairs = [a / b for a, b in zip(ours["times"], theirs["times"])]
    return float(np.median(pairs))


def logit_agreement(got, want):
    """Min cosine similarity over the clips' logits, and the fraction of
    clips with the same top-1 class.

    Example
    -------
    >>> logit_agreement(torch.eye(2), torch.eye(2) * 3)
    (1.0, 1.0)
    """
    cos = torch.nn.functional.cosine_similarity(got, want).min().item()
    top1 = (got.argmax(1) == want.argmax(1)).float().mean().item()
    return cos, top1


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


# ---------------------------------------------------------------------------
# 6. frontend
# ---------------------------------------------------------------------------


def loop_fp64(wavs):
    """torchaudio's Kaldi fbank clip by clip in float64: the rounding-free
    reference for the frontend's float32 error."""
    import torchaudio

    return [
        torchaudio.compliance.kaldi.fbank(
            w[None].double(), **TORCHAUDIO_FBANK_KWARGS
        )
        for w in wavs
    ]


def bench_frontend(bench):
    import torchaudio
    from transformers import ASTFeatureExtractor

    batch = 32 if not bench.args.quick else 8
    wavs = synthetic_audio(batch, 10.0, seed=3)
    fbank = KaldiFbank().to(bench.device)
    on_device = wavs.to(bench.device)

    def ours():
        with torch.inference_mode():
            return fbank(on_device)

    def loop():
        return [
            torchaudio.compliance.kaldi.fbank(
                w[None], **TORCHAUDIO_FBANK_KWARGS
            )
            for w in wavs
        ]

    extractor = ASTFeatureExtractor()
    arrays = [w.numpy() for w in wavs]

    def hf():
        return extractor(arrays, sampling_rate=16000, return_tensors="pt")

    # each round is a fraction of a second: many rounds, so that the ratio
    # does not hang on the shared VM's load in a few of them
    reps = bench.reps(21, 2)
    a, b = bench.compare(ours, loop, reps)
    c = bench.run(hf, bench.reps(5, 2))
    reference = torch.stack(loop())
    feats = ours().cpu()
    diff = (feats - reference).abs().max().item()
    # bins near Kaldi's log floor (energy ~1e-7 of a tone's leakage) are
    # ill-conditioned in float32: torchaudio differs from itself run in
    # float64 there; report that, and the difference on the other bins
    exact = torch.stack([f.to(torch.float64) for f in loop_fp64(wavs)])
    own_rounding = (reference.double() - exact).abs().max().item()
    ours_rounding = (feats.double() - exact).abs().max().item()
    # bins within 60 dB (a factor 1e6, 13.8 in log) of their frame's peak
    audible = exact > exact.amax(-1, keepdim=True) - 13.8
    diff_audible = (feats.double() - exact)[audible].abs().max().item()
    ref_audible = (reference.double() - exact)[audible].abs().max().item()
    rows = [
        {
            "what": f"KaldiFbank, batch {batch}",
            "ms": ms(a["median"]),
            "speed-up vs loop": f"{b['median'] / a['median']:.2f}",
            "paired": f"{1 / paired_ratio(a, b):.2f}",
            "max abs diff vs torchaudio": f"{diff:.2e}",
            "torchaudio fp32 vs its fp64": f"{own_rounding:.2e}",
            "ours vs torchaudio fp64": f"{ours_rounding:.2e}",
            "vs fp64, bins within 60 dB of the frame peak": (
                f"ours {diff_audible:.2e}, torchaudio {ref_audible:.2e}"
            ),
        },
        {
            "what": "torchaudio kaldi.fbank, per-clip loop",
            "ms": ms(b["median"]),
            "speed-up vs loop": "1.00",
            "paired": "1.00",
        },
        {
            "what": "transformers ASTFeatureExtractor (+pad, norm)",
            "ms": ms(c["median"]),
            "speed-up vs loop": f"{b['median'] / c['median']:.2f}",
        },
    ]
    print_table(
        f"6. Frontend: {batch} clips of 10 s ({bench.device.type})",
        list(rows[0]),
        rows,
    )
    bench.record(
        "frontend",
        rows,
        max_abs_diff=diff,
        torchaudio_fp32_vs_fp64=own_rounding,
        ours_vs_torchaudio_fp64=ours_rounding,
        max_abs_diff_within_60db=diff_audible,
        torchaudio_max_abs_diff_within_60db=ref_audible,
        batch=batch,
    )


# ---------------------------------------------------------------------------
# 2. native-length inference of a 1 s clip
# ---------------------------------------------------------------------------


def bench_native(bench):
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


# ---------------------------------------------------------------------------
# 3. int8 dynamic quantization
# ---------------------------------------------------------------------------


def bench_int8(bench):
    if bench.device.type != "cpu":
        print("\n(int8 dynamic quantization is CPU-only: skipped)")
        return
    from speechbrain_ast.deploy.quantize import _choose_engine, quantize_int8

    lobe, head = bench.ours()
    hf = bench.hf_model()
    start = time.perf_counter()
    qlobe, qhead = quantize_int8(lobe), quantize_int8(head)
    quantize_s = time.perf_counter() - start
    engine = _choose_engine(None)
    # the same layers packed for PyTorch's default x86 engine (fbgemm's
    # kernels), when the default above is another one
    fbgemm = None
    if engine != "x86" and "x86" in torch.backends.quantized.supported_engines:
        fbgemm = [quantize_int8(m, engine="x86") for m in (lobe, head)]
    feats = torch.randn(1, 1024, 128)

    def timed(lobe_, head_):
        def run():
            with torch.inference_mode():
                head_(lobe_(feats))

        return run

    def hf_fp32():
        with torch.inference_mode():
            hf(input_values=feats)

    reps = bench.reps(5, 2)
    fns = [timed(qlobe, qhead), hf_fp32, timed(lobe, head)]
    a, b, c, *d = alternate(
        fns + ([timed(*fbgemm)] if fbgemm else []), reps, device=bench.device
    )
    # logit agreement on real-looking input through the real frontend
    clips = synthetic_audio(2 if bench.args.quick else 4, 10.0, seed=7)
    fbank = KaldiFbank(target_length=1024)
    norm = FixedNormalization(dataset="audioset")
    with torch.inference_mode():
        x = norm(fbank(clips))
        want = hf(input_values=x).logits
        got = qhead(qlobe(x))
        fp32 = head(lobe(x))
    cos, top1 = logit_agreement(got, want)
    fp32_diff = (fp32 - want).abs().max().item()

    def row(what, t):
        return {
            "what": what,
            "ms": ms(t["median"]),
            "speed-up vs transformers fp32": f"{b['median'] / t['median']:.2f}",
            "paired": f"{1 / paired_ratio(t, b):.2f}",
            "_times": t["times"],
        }

    rows = [
        row(f"ours int8 (dynamic, per-channel, {engine}), 10 s clip", a),
        row("transformers fp32, 10 s clip", b),
        row("ours fp32, 10 s clip", c),
    ]
    if fbgemm:
        rows.append(row("ours int8 packed for the x86 engine (fbgemm)", d[0]))
    header = ["what", "ms", "speed-up vs transformers fp32", "paired"]
    print_table(
        f"3. int8 dynamic quantization, batch 1 ({reps} rounds)", header, rows
    )
    print(
        f"int8 vs transformers fp32 logits ({len(clips)} synthetic 10 s "
        f"clips through KaldiFbank): min cosine {cos:.5f}, top-1 agreement "
        f"{top1:.2f}; ours fp32 vs transformers max abs diff {fp32_diff:.1e};"
        f" quantizing took {quantize_s:.1f} s"
    )
    bench.record("int8", rows, cosine=cos, top1_agreement=top1)


# ---------------------------------------------------------------------------
# 4, 5. training steps
# ---------------------------------------------------------------------------


def default_adam(params, lr):
    """``torch.optim.Adam`` with the paper's settings and PyTorch's default
    implementation choice (on the CPU: a loop over the parameters)."""
    return torch.optim.Adam(
        params, lr=lr, betas=(0.95, 0.999), weight_decay=5e-7
    )


def warmup_calls(bench):
    """Untimed calls before timing: with ``--compile`` the first builds the
    graphs and the second may still build the backward's or recompile."""
    return 2 if bench.args.compile else 1


def maybe_compiled(bench, module):
    """``module`` through ``torch.compile`` when ``--compile`` was given
    (it shares the module's parameters), else ``module`` itself."""
    return torch.compile(module) if bench.args.compile else module


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


# ---------------------------------------------------------------------------
# torch.compile
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# 7. long recordings through the tagging CLI
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# accuracy kept by patchout and int8 (training times recorded too, rough:
# the runs follow each other in one process)
# ---------------------------------------------------------------------------


def bench_accuracy(bench):
    from benchmarks.accuracy import patchout_and_int8_accuracy

    seeds = (0,) if bench.args.quick else (0, 1, 2)
    checkpoints = (2, 4) if bench.args.quick else (25, 50, 100)
    rows = patchout_and_int8_accuracy(seeds=seeds, checkpoints=checkpoints)
    keys = ("full", "patchout", "int8", "full_s", "patchout_s")
    mean = {
        epochs: {
            k: float(np.mean([r[k] for r in rows if r["epochs"] == epochs]))
            for k in keys
        }
        for epochs in checkpoints
    }
    table = []
    for epochs in checkpoints:
        ordered = [r for r in rows if r["epochs"] == epochs]
        for row in ordered + [dict(mean[epochs], seed="mean")]:
            table.append(
                {
                    "epochs": epochs,
                    "seed": row["seed"],
                    "full %": f"{100 * row['full']:.1f}",
                    "patchout %": f"{100 * row['patchout']:.1f}",
                    "patchout - full": (
                        f"{100 * (row['patchout'] - row['full']):+.1f}"
                    ),
                    "int8 of full %": f"{100 * row['int8']:.1f}",
                    "full s": f"{row['full_s']:.1f}",
                    "patchout s": f"{row['patchout_s']:.1f}",
                }
            )
    print_table(
        "Accuracy kept: 10 synthetic classes, 3 s clips, 240 train / 200 "
        "test, AST 64 wide x 2 blocks from scratch, both tested after "
        f"{', '.join(map(str, checkpoints))} epochs (training seconds so "
        "far); patchout t=11 of 28, f=4 of 12",
        list(table[0]),
        table,
    )
    # about equal training time: patchout for twice full training's epochs
    for epochs in checkpoints:
        if 2 * epochs in mean:
            full, longer = mean[epochs], mean[2 * epochs]
            print(
                f"about equal time: patchout {2 * epochs} epochs "
                f"{100 * longer['patchout']:.1f} % in "
                f"{longer['patchout_s']:.1f} s vs full {epochs} epochs "
                f"{100 * full['full']:.1f} % in {full['full_s']:.1f} s"
            )
    bench.record("accuracy", table, mean={str(e): m for e, m in mean.items()})


# ---------------------------------------------------------------------------


def plot(results, path):
    """Speed-ups against their targets, and latencies per clip."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    latency = results.get("latency", {}).get("rows", [])
    if latency:
        labels = [f"b{r['batch']} {r['clip']}" for r in latency]
        x = np.arange(len(labels))
        ours = [float(r["ours ms/clip"]) / 1000 for r in latency]
        theirs = [float(r["transformers ms/clip"]) / 1000 for r in latency]
        left.bar(x - 0.2, ours, 0.4, label="speechbrain-ast")
        left.bar(x + 0.2, theirs, 0.4, label="transformers (SDPA)")
        left.set_xticks(x, labels, rotation=30, ha="right")
        left.set_ylabel("seconds per clip")
        left.set_title("AST-Base inference, 1024 frames (CPU, fp32)")
        left.legend()
    speedups = []  # (label, measured, target)
    for key, label, column, target in (
        ("frontend", "frontend\nvs loop", "speed-up vs loop", 3.0),
        ("native", "1 s native\nvs padded", "speed-up vs transformers", 8.0),
        ("int8", "int8 vs\nfp32", "speed-up vs transformers fp32", 1.5),
        ("patchout", "patchout\nstep", "speed-up vs full", 2.0),
    ):
        rows = results.get(key, {}).get("rows", [])
        if rows:
            speedups.append((label, float(rows[0][column]), target))
    for key, label in (
        ("latency", "same work\n(10 s, b1)"),
        ("train", "train\nstep"),
    ):
        rows = results.get(key, {}).get("rows", [])
        for row in rows:
            if key == "latency" and not (
                row["batch"] == 1 and row["clip"] == "10 s"
            ):
                continue
            speedups.append((label, 1 / float(row["ours/transformers"]), 1.0))
            break
    if speedups:
        x = np.arange(len(speedups))
        right.bar(x, [s[1] for s in speedups], 0.6, label="measured")
        right.scatter(
            x,
            [s[2] for s in speedups],
            color="red",
            marker="_",
            s=900,
            label="target",
            zorder=3,
        )
        for i, (_, value, _) in enumerate(speedups):
            right.annotate(
                f"{value:.2f}x", (i, value), ha="center", va="bottom"
            )
        right.set_xticks(x, [s[0] for s in speedups])
        right.set_yscale("log")
        right.yaxis.set_major_formatter(
            matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
        )
        right.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        values = [v for s in speedups for v in s[1:]]
        low, high = min(0.8, min(values) * 0.8), max(values) * 1.4
        right.set_ylim(low, high)
        ticks = [0.5, 1, 2, 4, 8, 16, 32]
        right.set_yticks([t for t in ticks if low <= t <= high])
        right.set_ylabel("speed-up (x, log scale)")
        right.set_title("Speed-ups against the targets")
        right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer reps")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"sections to run (repeat or comma-separate): {SECTIONS}",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        default="fp32",
        help="autocast precision for ours and transformers alike",
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="torch CPU threads"
    )
    parser.add_argument("--json", metavar="PATH", help="write results here")
    parser.add_argument(
        "--update",
        metavar="PATH",
        help="replace the sections run in this existing --json file",
    )
    parser.add_argument("--plot", metavar="PNG", help="draw the figures")
    parser.add_argument(
        "--plot-only",
        action="store_true",
        help="measure nothing: draw --plot from the --update file",
    )
    parser.add_argument(
        "--tiny", action="store_true", help="a tiny model, to try the script"
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile both models (ours and transformers') in the GPU "
        "inference, training and patchout sections; the first calls, "
        "compilation included, are warm-up",
    )
    parser.add_argument(
        "--durations-b8",
        default="1,5,10",
        help="clip lengths (s, comma-separated) measured at batch 8; e.g. "
        "10 alone saves time, since every clip is padded to 1024 frames and "
        "the model's work is the same",
    )
    parser.add_argument(
        "--train-batch",
        type=int,
        help="training batch (default 2 on CPU, the ESC-50 step; 32 on GPU)",
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        help="the GPU's nominal peak at --dtype, for the MFU",
    )
    args = parser.parse_args(argv)
    only = []
    for item in args.only or SECTIONS:
        only += [name.strip() for name in item.split(",") if name.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {SECTIONS}")
    args.only = only
    if args.update:
        if not os.path.isfile(args.update):
            parser.error(
                f"--update {args.update}: no such file; write it first with "
                "--json"
            )
        # checked now, not after the measurements it would be written with
        try:
            with open(args.update) as handle:
                saved = json.load(handle)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            parser.error(f"--update {args.update}: cannot be read ({error})")
        if not isinstance(saved, dict) or not isinstance(
            saved.get("results"), dict
        ):
            parser.error(
                f"--update {args.update}: not a results file written by "
                "--json (no 'results' mapping)"
            )
        # sections keep their names on either device: a GPU run must not
        # replace a CPU file's figures, nor the reverse
        saved_gpu = "gpu" in (saved.get("machine") or {})
        if not args.plot_only and saved_gpu != args.device.startswith("cuda"):
            kind = "GPU" if saved_gpu else "CPU"
            parser.error(
                f"--update {args.update} holds {kind} results and this run "
                f"is on {args.device}: its sections would replace them; "
                "write a separate file with --json"
            )
    if args.plot_only and not (args.update and args.plot):
        parser.error("--plot-only needs --update FILE and --plot PNG")
    if args.update and args.json:
        parser.error("use --json (a new file) or --update, not both")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no GPU")
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    for name in ("train_batch", "peak_tflops"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            option = "--" + name.replace("_", "-")
            parser.error(f"{option} must be positive, got {value}")
    try:
        durations = {float(d) for d in args.durations_b8.split(",")}
    except ValueError:
        durations = None
    if not durations or not durations <= set(LATENCY_CLIPS):
        parser.error(
            f"--durations-b8 {args.durations_b8!r}: give some of "
            f"{', '.join(f'{d:g}' for d in LATENCY_CLIPS)} (seconds, "
            "comma-separated), the clip lengths the latency table measures"
        )
    args.durations_b8 = sorted(durations)
    return args


def update_results(path, new, command, date=None):
    """Replaces the sections in ``new`` inside the results file ``path``,
    records ``command`` as where they come from and ``date`` (default:
    today, ``YYYY-MM-DD``) as when, and returns all results."""
    with open(path) as handle:
        saved = json.load(handle)
    saved.setdefault("results", {}).update(new)
    runs = saved.setdefault("runs", {})
    dates = saved.setdefault("dates", {})
    for section in new:
        runs[section] = command
        dates[section] = date or time.strftime("%Y-%m-%d")
    with open(path, "w") as handle:
        json.dump(saved, handle, indent=1)
    return saved["results"]


def main(argv=None):
    args = parse_args(argv)
    if args.plot_only:
        with open(args.update) as handle:
            plot(json.load(handle)["results"], args.plot)
        print(f"plot: {args.plot} (from {args.update}, nothing measured)")
        return
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    bench = Bench(args)
    info = machine(args.device)
    print("# speechbrain-ast benchmarks")
    print(json.dumps(info))
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:])
    print("command: " + command)
    gpu_sections = {"latency", "train", "patchout", "frontend", "native"}
    for name in SECTIONS:
        if name not in args.only:
            continue
        if bench.device.type == "cuda" and name not in gpu_sections:
            continue
        start = time.perf_counter()
        globals()[f"bench_{name}"](bench)
        print(f"({name}: {time.perf_counter() - start:.0f} s)")
    info["loadavg_end"] = machine(args.device)["loadavg"]
    print(f"\nload average at the end: {info['loadavg_end']}")
    if args.json:
        with open(args.json, "w") as handle:
            today = time.strftime("%Y-%m-%d")
            json.dump(
                {
                    "machine": info,
                    "dates": dict.fromkeys(bench.results, today),
                    "results": bench.results,
                },
                handle,
                indent=1,
            )
    results = bench.results
    if args.update:
        results = update_results(args.update, bench.results, command)
        print(f"updated {sorted(bench.results)} in {args.update}")
    if args.plot:
        plot(results, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
