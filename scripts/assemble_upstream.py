#!/usr/bin/env python3
"""Assembles the smallest upstream SpeechBrain checkout that upstream's own
checks need, from the verbatim copy of its checks (``upstream-speechbrain/``
in the shared folder: consistency tests, linters and their settings,
recipe-test runner and rows, the ESC-50 and Speech Commands recipes, the
ESC-50 sample clips; ``docs/conf.py`` from ``upstream-reference/`` beside
it) and the installed ``speechbrain`` package's source
(the copy holds no library code; upstream's tests import it from the
checkout).

::

    python scripts/assemble_upstream.py SHARED_COPY DEST

The copy is partial, so the ``tests/recipes/*.csv`` rows whose files it
lacks (e.g. ESC-50's ``interpret`` recipes) are dropped: the checks then
see every row whose files exist, and ours. ``DEST`` becomes a git
repository with one commit (upstream's linters read ``git ls-files``).

Authors
 * speechbrain-ast developers 2026
"""

import argparse
import csv
import io
import os
import shutil
import subprocess
import sys


def _row_files_exist(row, root):
    fields = ("Script_file", "Hparam_file", "Data_prep_file", "Readme_file")
    for field in fields:
        for path in (row.get(field) or "").split():
            if not os.path.exists(os.path.join(root, path)):
                return False
    return True


def prune_recipe_rows(root):
    """Drops the csv rows whose files are not in the checkout; returns the
    number dropped."""
    folder = os.path.join(root, "tests", "recipes")
    dropped = 0
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".csv"):
            continue
        path = os.path.join(folder, name)
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, skipinitialspace=True)
            header, rows = reader.fieldnames, list(reader)
        kept = [r for r in rows if _row_files_exist(r, root)]
        dropped += len(rows) - len(kept)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(buf.getvalue())
    return dropped


def assemble(shared_copy, dest):
    """Builds the checkout in ``dest`` (which must not exist)."""
    import speechbrain

    if os.path.exists(dest):
        raise FileExistsError(f"{dest} exists; give a new folder")
    if not os.path.isfile(
        os.path.join(shared_copy, "tests", ".run-linters.sh")
    ):
        raise FileNotFoundError(
            f"{shared_copy} is not the copy of upstream's checks (no "
            "tests/.run-linters.sh)"
        )
    shutil.copytree(shared_copy, dest)
    for folder, dirs, files in os.walk(dest):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    package = os.path.dirname(speechbrain.__file__)
    for folder, dirs, files in os.walk(package):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        rel = os.path.relpath(folder, package)
        target = os.path.normpath(os.path.join(dest, "speechbrain", rel))
        os.makedirs(target, exist_ok=True)
        for name in files:
            out = os.path.join(target, name)
            if not os.path.exists(out) and not name.endswith(".pyc"):
                shutil.copy(os.path.join(folder, name), out)
    # docs/conf.py (its autodoc_mock_imports) from the reference copy
    # beside the checks, where there is one
    conf = os.path.join(
        os.path.dirname(os.path.abspath(shared_copy)),
        "upstream-reference",
        "docs",
        "conf.py",
    )
    if os.path.isfile(conf) and not os.path.exists(
        os.path.join(dest, "docs", "conf.py")
    ):
        os.makedirs(os.path.join(dest, "docs"), exist_ok=True)
        shutil.copy(conf, os.path.join(dest, "docs", "conf.py"))
        os.chmod(os.path.join(dest, "docs", "conf.py"), 0o644)
    dropped = prune_recipe_rows(dest)
    git = ["git", "-c", "user.name=assemble", "-c", "user.email=a@localhost"]
    subprocess.run(["git", "init", "-q", dest], check=True)
    subprocess.run(git + ["-C", dest, "add", "-A"], check=True)
    subprocess.run(
        git + ["-C", dest, "commit", "-q", "-m", "upstream checks"], check=True
    )
    return dropped


def main(argv=None):
    """Command line; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("shared_copy", help="the upstream-speechbrain copy")
    parser.add_argument("dest", help="new folder for the checkout")
    args = parser.parse_args(argv)
    try:
        dropped = assemble(args.shared_copy, args.dest)
    except (FileExistsError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"checkout in {args.dest} ({dropped} rows without files dropped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
