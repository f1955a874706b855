"""Deployment runtimes on one CPU, in one run: AST model only, same features.

Rows, timed in turns (round-robin, one call of each per round, median of
``--rounds``): transformers' ``ASTForAudioClassification`` fp32 (SDPA);
ONNX Runtime fp32 on transformers' ``torch.onnx`` export; OpenVINO on the
same file with its default precision (bf16 where the CPU has it) and with
``INFERENCE_PRECISION_HINT=f32``; ours fp32, bf16 (``precision`` run
option's cast + autocast) and int8 (``speechbrain_ast.deploy.quantize``); our
export (``speechbrain_ast.deploy.onnx.export_features_onnx``) under ONNX
Runtime and OpenVINO (f32). All rows share the random weights of one
transformers model (ours imported from its folder) and one batch of
features; each row's logits are compared with transformers fp32 (cosine).
The JSON records the CPU model name and flags with the results.

::

    python benchmarks/deploy.py --rounds 5 --out results/deploy.json
    python benchmarks/deploy.py --size tiny --rounds 2   # smoke run

Authors
 * speechbrain-ast developers
"""

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import torch

SIZES = {
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12),
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2),
}
FRAMES = {"base": 1024, "tiny": 128}
FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_bf16",
    "amx_int8",
    "amx_fp16",
)


def cpu_record():
    """The CPU's model name and the flags that decide these rows."""
    from speechbrain_ast.deploy.precision import cpu_flags, cpu_model_name

    flags = cpu_flags()
    return {
        "model_name": cpu_model_name(),
        "flags": {flag: flag in flags for flag in FLAGS},
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.machine(),
    }


def cosine(a, b):
    """Cosine similarity of two logit arrays, flattened."""
    a = torch.as_tensor(a, dtype=torch.float64).flatten()
    b = torch.as_tensor(b, dtype=torch.float64).flatten()
    return float(torch.dot(a, b) / (a.norm() * b.norm()))


def build_rows(size, tmp, threads):
    """``{name: callable}`` rows and the features they all read."""
    import onnxruntime as ort
    import openvino as ov
    from transformers import ASTConfig, ASTForAudioClassification

    from speechbrain_ast.deploy.onnx import export_features_onnx
    from speechbrain_ast.deploy.precision import cast_for_inference
    from speechbrain_ast.deploy.quantize import quantize_int8
    from speechbrain_ast.weights import build_from_checkpoint

    frames = FRAMES[size]
    config = ASTConfig(
        intermediate_size=4 * SIZES[size]["hidden_size"],
        max_length=frames,
        num_labels=527,
        **SIZES[size],
    )
    torch.manual_seed(0)
    hf = ASTForAudioClassification(config).eval()
    hf_dir = os.path.join(tmp, "hf")
    hf.save_pretrained(hf_dir)
    hf = ASTForAudioClassification.from_pretrained(
        hf_dir, attn_implementation="sdpa"
    ).eval()
    lobe, head, _ = build_from_checkpoint(hf_dir)
    lobe, head = lobe.eval(), head.eval()
    feats = torch.randn(
        1, frames, 128, generator=torch.Generator().manual_seed(1)
    )

    hf_onnx = os.path.join(tmp, "hf.onnx")
    with torch.no_grad():
        torch.onnx.export(
            hf,
            (feats,),
            hf_onnx,
            dynamo=True,
            input_names=["input_values"],
            output_names=["logits"],
            external_data=False,
        )
    ours_onnx = export_features_onnx(
        lobe, head, os.path.join(tmp, "ours.onnx"), frames
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    core = ov.Core()
    f32 = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads}
    default = {"INFERENCE_NUM_THREADS": threads}

    def ort_row(path, name):
        session = ort.InferenceSession(
            path, options, providers=["CPUExecutionProvider"]
        )
        array = feats.numpy()
        return lambda: session.run(None, {name: array})[0]

    def ov_row(path, config_):
        compiled = core.compile_model(path, "CPU", config_)
        array = feats.numpy()
        return lambda: compiled(array)[0]

    bf16_lobe, bf16_head = copy.deepcopy(lobe), copy.deepcopy(head)
    cast_for_inference(bf16_lobe, torch.bfloat16)
    cast_for_inference(bf16_head, torch.bfloat16)
    int8_lobe = quantize_int8(lobe)
    int8_head = quantize_int8(head)

    def torch_row(fn, autocast=False):
        def run():
            with torch.no_grad(), torch.autocast(
                "cpu", torch.bfloat16, enabled=autocast
            ):
                return fn().float()

        return run

    rows = {
        "transformers fp32 (SDPA)": torch_row(
            lambda: hf(input_values=feats).logits
        ),
        "ONNX Runtime fp32, transformers' export": ort_row(
            hf_onnx, "input_values"
        ),
        "OpenVINO default, transformers' export": ov_row(hf_onnx, default),
        "OpenVINO f32, transformers' export": ov_row(hf_onnx, f32),
        "ours fp32": torch_row(lambda: head(lobe(feats))),
        "ours bf16": torch_row(lambda: bf16_head(bf16_lobe(feats)), True),
        "ours int8": torch_row(lambda: int8_head(int8_lobe(feats))),
        "ONNX Runtime fp32, our export": ort_row(ours_onnx, "features"),
        "OpenVINO f32, our export": ov_row(ours_onnx, f32),
        "OpenVINO default, our export": ov_row(ours_onnx, default),
    }
    return rows


def measure(rows, rounds):
    """Round-robin timing: ``{name: {ms, logits}}``."""
    times = {name: [] for name in rows}
    logits = {
        name: torch.as_tensor(fn()) for name, fn in rows.items()
    }  # warm-up
    for _ in range(rounds):
        for name, fn in rows.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    ref_name = next(iter(rows))
    ref_ms = 1000 * statistics.median(times[ref_name])
    results = []
    for name in rows:
        ms = 1000 * statistics.median(times[name])
        results.append(
            {
                "row": name,
                "ms": round(ms, 2),
                "speed_vs_transformers_fp32": round(ref_ms / ms, 3),
                "logits_cosine": round(
                    cosine(logits[name], logits[ref_name]), 6
                ),
                "times_ms": [round(1000 * t, 2) for t in times[name]],
            }
        )
    return results


def main(argv=None):
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="base")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", default="results/deploy.json")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.threads < 1:
        parser.error(
            f"--rounds and --threads must be at least 1, got {args.rounds} "
            f"and {args.threads}."
        )
    for module in (
        "onnx",
        "onnxscript",
        "onnxruntime",
        "openvino",
        "transformers",
    ):
        try:
            __import__(module)
        except ImportError:
            parser.error(
                f"{module!r} is missing: pip install 'speechbrain_ast[deploy]' "
                "transformers"
            )
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        rows = build_rows(args.size, tmp, args.threads)
        results = measure(rows, args.rounds)
    record = {
        "size": args.size,
        "frames": FRAMES[args.size],
        "batch": 1,
        "rounds": args.rounds,
        "cpu": cpu_record(),
        "rows": results,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    print(
        f"{record['cpu']['model_name']}, {args.threads} threads, "
        f"AST-{args.size}, {FRAMES[args.size]} frames, median of {args.rounds}"
    )
    print(f"{'row':44s} {'ms':>9s} {'speed':>6s} {'cosine':>9s}")
    for row in results:
        print(
            f"{row['row']:44s} {row['ms']:9.2f} "
            f"{row['speed_vs_transformers_fp32']:6.2f} "
            f"{row['logits_cosine']:9.6f}"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
