"""Section ``int8`` (3 in docs/benchmarks.md): dynamic int8 quantization
against transformers' fp32 AST, speed and logit agreement on
real-looking input (CPU only).

Authors
 * speechbrain-ast developers
"""

import time

import torch
from timing import alternate

from sections.common import logit_agreement, ms, paired_ratio, print_table
from speechbrain_ast.features import FixedNormalization, KaldiFbank
from speechbrain_ast.testing.signals import synthetic_audio


def bench_int8(bench):
    """int8 against transformers fp32 and ours fp32, in turns."""
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
