"""Timing, FLOP counting, machine description and synthetic audio for the
benchmarks in ``benchmarks/run.py``.

``python benchmarks/timing.py`` prints the machine's description and its
fp32 matmul roof (the GFLOP/s of a square matmul), the figures the
benchmark tables are read against.

Authors
 * speechbrain-ast developers
"""

import argparse
import json
import os
import platform
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode


def synchronize(device):
    """Waits for queued GPU work, so that a timer measures it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def measure(fn, reps, warmup=1, device="cpu"):
    """Median wall time of ``fn()`` over ``reps`` runs after ``warmup``.

    Returns a dict with ``median`` and all ``times`` in seconds.

    Example
    -------
    >>> result = measure(lambda: sum(range(1000)), reps=3)
    >>> len(result["times"]), result["median"] > 0
    (3, True)
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return {"median": statistics.median(times), "times": times}


def alternate(fns, reps, warmup=1, device="cpu"):
    """Times several functions in turns (one run of each per round), so
    that drifting load on the machine affects all alike. Returns one dict
    per function as ``measure`` does; ``times[i]`` of each come from the
    same round.

    Example
    -------
    >>> a, b, c = alternate([lambda: None] * 3, reps=2)
    >>> len(a["times"]), len(c["times"])
    (2, 2)
    """
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for _ in range(reps):
        for fn, out in zip(fns, times):
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            out.append(time.perf_counter() - start)
    return [{"median": statistics.median(t), "times": t} for t in times]


def compare(ours, theirs, reps, warmup=1, device="cpu"):
    """Times two functions, alternating runs (see ``alternate``). Returns
    ``(ours, theirs)`` as ``measure``.

    Example
    -------
    >>> a, b = compare(lambda: None, lambda: None, reps=2)
    >>> len(a["times"]), len(b["times"])
    (2, 2)
    """
    return tuple(alternate([ours, theirs], reps, warmup, device))


def count_flops(fn, *args, **kwargs):
    """FLOPs that ``fn(*args, **kwargs)`` executes (every matmul and
    convolution), counted by PyTorch's FLOP counter. Attention runs on
    the math backend here, so that its matmuls are counted too (the fused
    CPU kernel is invisible to the counter).

    Example
    -------
    >>> from speechbrain_ast.model.lobe import AST
    >>> lobe = AST(input_tdim=128, embed_dim=64, depth=1, num_heads=1)
    >>> count_flops(lobe, torch.randn(1, 128, 128)) > 0
    True
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        fn(*args, **kwargs)
    return counter.get_total_flops()


def square_matmul(device="cpu", dtype=torch.float32, size=2048):
    """A function that runs one ``size``^3 matmul, and its FLOPs: the
    machine's roof for the work AST is made of.

    Example
    -------
    >>> fn, flops = square_matmul(size=64)
    >>> fn().shape, flops
    (torch.Size([64, 64]), 524288)
    """
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    return (lambda: a @ b), 2 * size**3


def matmul_gflops(device="cpu", dtype=torch.float32, size=2048, reps=5):
    """Achieved GFLOP/s of a large square matmul (median of ``reps``)."""
    fn, flops = square_matmul(device, dtype, size)
    result = measure(fn, reps=reps, warmup=2, device=device)
    return flops / result["median"] / 1e9


def machine(device="cpu"):
    """What the figures were measured on."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    flags = ""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    wanted = (
                        "avx2",
                        "fma",
                        "avx_vnni",
                        "avx512f",
                        "avx512_vnni",
                        "avx512_bf16",
                        "amx_int8",
                        "amx_bf16",
                    )
                    flags = " ".join(f for f in wanted if f in have)
                    break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cpu_flags": flags,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "loadavg": _loadavg(),
    }
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _loadavg():
    try:
        with open("/proc/loadavg") as handle:
            return " ".join(handle.read().split()[:3])
    except OSError:
        return "unknown"


def main(argv=None):
    """Command line: the machine and its matmul GFLOP/s."""
    parser = argparse.ArgumentParser(
        description="The machine's description and its fp32 matmul roof."
    )
    parser.add_argument(
        "--size", type=int, default=2048, help="matmul side (default: 2048)"
    )
    parser.add_argument(
        "--reps", type=int, default=5, help="timed runs (default: 5)"
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="torch CPU threads (default: 2)"
    )
    args = parser.parse_args(argv)
    for name in ("size", "reps", "threads"):
        if getattr(args, name) < 1:
            parser.error(
                f"--{name} must be at least 1, got {getattr(args, name)}"
            )
    torch.set_num_threads(args.threads)
    print(json.dumps(machine()))
    gflops = matmul_gflops(size=args.size, reps=args.reps)
    print(
        f"fp32 {args.size}^3 matmul: {gflops:.1f} GFLOP/s (median of {args.reps})"
    )


if __name__ == "__main__":
    main()
