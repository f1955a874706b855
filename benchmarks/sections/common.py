"""What every section shares: the options and the models (``Bench``, built
once per run), both pipelines from waveform to logits (ours and
transformers'), and the table printer whose output docs/benchmarks.md
quotes.

Authors
 * speechbrain-ast developers
"""

import os
import sys
import tempfile
from contextlib import nullcontext

import numpy as np
import torch
from timing import compare, measure

from speechbrain_ast.features import FixedNormalization, KaldiFbank
from speechbrain_ast.model.lobe import AST
from speechbrain_ast.weights import build_from_checkpoint

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
AST_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12)
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2)
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


def warmup_calls(bench):
    """Untimed calls before timing: with ``--compile`` the first builds the
    graphs and the second may still build the backward's or recompile."""
    return 2 if bench.args.compile else 1


def maybe_compiled(bench, module):
    """``module`` through ``torch.compile`` when ``--compile`` was given
    (it shares the module's parameters), else ``module`` itself."""
    return torch.compile(module) if bench.args.compile else module
