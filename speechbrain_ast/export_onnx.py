"""The command line that exports an AST model folder to ONNX.

::

    python -m speechbrain_ast.export_onnx MODEL_FOLDER --out model.onnx \\
        [--precision fp32|int8]

What the file holds: :mod:`speechbrain_ast.deploy.onnx`.

Authors
 * speechbrain-ast developers
"""

import argparse
import os
import sys

from speechbrain_ast.deploy.onnx import export_onnx

__all__ = ["main"]


def main(argv=None):
    """The command line: ``python -m speechbrain_ast.export_onnx``.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.

    Example
    -------
    >>> main(["no/such/folder", "--out", "m.onnx"])  # doctest: +ELLIPSIS
    2
    """
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_ast.export_onnx",
        description=(
            "Export an AST model folder to one ONNX file: float32 waveform "
            "[batch, samples] -> logits [batch, n_classes], any length; the "
            "labels are stored in its metadata."
        ),
    )
    parser.add_argument("folder", help="model folder (export or convert)")
    parser.add_argument("--out", required=True, help="the .onnx file")
    parser.add_argument(
        "--precision",
        choices=("fp32", "int8"),
        default="fp32",
        help="int8: ONNX Runtime's dynamic quantization (default fp32)",
    )
    args = parser.parse_args(argv)
    try:
        path = export_onnx(args.folder, args.out, args.precision)
    except (ValueError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({os.path.getsize(path) / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
