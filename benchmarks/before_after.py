"""The AST lobe of this checkout against an earlier revision's, same weights.

Loads ``speechbrain_ast/model.py`` as it was at ``--rev`` (read with
``git show``, nothing is checked out), builds both lobes with the same
weights and times them alternately: AST-Base at 1024 frames (the built
grid) and at a 1 s clip's native 98 frames (adapted positions).

::

    python benchmarks/before_after.py --rev 0311b65 [--quick] [--threads 2]

Authors
 * speechbrain-ast developers
"""

import argparse
import os
import subprocess
import types

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from timing import compare, machine  # noqa: E402

from speechbrain_ast.model.lobe import AST  # noqa: E402


def load_revision(rev):
    """The ``speechbrain_ast.model.lobe`` module as it was at ``rev``; a
    ``ValueError`` naming the revision when git cannot show that file."""
    shown = subprocess.run(
        ["git", "show", f"{rev}:speechbrain_ast/model.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if shown.returncode != 0:
        raise ValueError(
            f"git cannot show speechbrain_ast/model.py at {rev!r} "
            f"({shown.stderr.strip()}): give a commit of this repository "
            "that has it."
        )
    source = shown.stdout
    module = types.ModuleType(f"model_at_{rev}")
    exec(
        compile(source, f"{rev}:speechbrain_ast/model.py", "exec"), vars(module)
    )
    return module


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", required=True, help="git revision (before)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    try:
        before_module = load_revision(args.rev)
    except ValueError as error:
        parser.error(str(error))
    torch.set_num_threads(args.threads)
    print(machine())
    torch.manual_seed(0)
    after = AST().eval()
    before = before_module.AST().eval()
    before.load_state_dict(after.state_dict())
    reps = 1 if args.quick else 5
    print("\n| input | before ms | after ms | after/before | max abs diff |")
    print("|---|---|---|---|---|")
    for frames, batch in ((1024, 1), (98, 1), (98, 8)):
        x = torch.randn(batch, frames, 128)

        def run(model):
            with torch.inference_mode():
                return model(x)

        a, b = compare(lambda: run(after), lambda: run(before), reps)
        diff = (run(after) - run(before)).abs().max().item()
        print(
            f"| {batch} x {frames} frames | {b['median'] * 1000:.1f} | "
            f"{a['median'] * 1000:.1f} | {a['median'] / b['median']:.3f} | "
            f"{diff:.1e} |"
        )


if __name__ == "__main__":
    main()
