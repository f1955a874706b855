"""What the recipe scripts share around their ``Brain``: the command line
(``sb.parse_arguments`` with the hparams file looked up in the recipe
folder, ``--help`` listing the yaml's keys, one line for a missing or wrong
input) and the statistics and json log of each evaluation
(``metrics.jsonl``, test predictions).

Authors
 * speechbrain-ast developers
"""

import contextlib
import json
import logging
import os
import re
import sys
import textwrap

import torch

__all__ = [
    "parse_arguments",
    "recipe_options",
    "format_recipe_options",
    "user_errors",
    "resolve_hparams_file",
    "log_evaluation",
]

logger = logging.getLogger(__name__)


def resolve_hparams_file(path, recipe_dir):
    """Finds a recipe's hparams file: recipe folder first, then the cwd.

    Arguments
    ---------
    path : str
        The hparams path given on the command line. Absolute paths are used
        as they are.
    recipe_dir : str
        The recipe's folder (``os.path.dirname(__file__)`` in train.py).

    Returns
    -------
    str
        The absolute path of the file used (also logged).

    Raises
    ------
    FileNotFoundError
        Naming every place tried.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(d, "hparams"))
    >>> open(os.path.join(d, "hparams", "ast.yaml"), "w").close()
    >>> resolve_hparams_file("hparams/ast.yaml", d).endswith("ast.yaml")
    True
    """
    if os.path.isabs(path):
        candidates = [path]
    else:
        candidates = [
            os.path.join(os.path.abspath(recipe_dir), path),
            os.path.abspath(path),
        ]
    for candidate in candidates:
        if os.path.isfile(candidate):
            logger.info("Using hparams file %s", candidate)
            return candidate
    raise FileNotFoundError(
        f"hparams file {path!r} not found; tried "
        + " and ".join(repr(c) for c in candidates)
        + ". Give a path relative to the recipe folder (e.g. "
        "hparams/ast.yaml), to the current directory, or an absolute path."
    )


# values that make a top-level key an object the yaml builds, not a setting
_OBJECT_TAGS = ("!new:", "!name:", "!apply:", "!include:", "!module:")
# the user-facing errors of a recipe's inputs (paths, data, settings)
USER_ERRORS = (FileNotFoundError, NotADirectoryError, ValueError)


def _script_name():
    """The running script's file name, for error lines."""
    return os.path.basename(sys.argv[0]) or "train.py"


def recipe_options(hparams_file):
    """The settings of a recipe yaml: its top-level keys with their
    default values and comments.

    Arguments
    ---------
    hparams_file : str
        A HyperPyYAML recipe file.

    Returns
    -------
    options : list of dict
        One per top-level key whose value is a setting (a number, string,
        list, ``!ref`` or ``!PLACEHOLDER``), in file order: ``key``,
        ``value`` (the text after the colon; ``!ref`` dropped; ``required``
        for a placeholder), ``comment`` (the key's inline comment) and
        ``heading`` (the comment block just above it, or ``""``).
    objects : list of str
        The other top-level keys: objects the yaml builds (``!new:``,
        ``!name:``, ``!include:``, mappings), changed by editing the file.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.yaml")
    >>> with open(path, "w") as f:
    ...     _ = f.write(
    ...         "# Data\\ndata_folder: !PLACEHOLDER\\n"
    ...         "lr: 1.0e-5  # peak\\nopt: !name:torch.optim.Adam\\n"
    ...     )
    >>> options, objects = recipe_options(path)
    >>> [(o["key"], o["value"], o["comment"], o["heading"]) for o in options]
    [('data_folder', 'required', '', 'Data'), ('lr', '1.0e-5', 'peak', '')]
    >>> objects
    ['opt']
    """
    with open(hparams_file, encoding="utf-8") as f:
        lines = f.read().splitlines()
    options, objects, block = [], [], []
    for number, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("#"):
            text = stripped.lstrip("#").strip()
            if text.strip("#").strip():  # a rule of #s is not a comment
                block.append(text)
            continue
        if not stripped:
            block = []
            continue
        match = re.match(r"^([A-Za-z_]\w*)\s*:(.*)$", line)
        if match is None:  # continuation of a nested value
            block = []
            continue
        key, rest = match.group(1), match.group(2)
        value, _, comment = rest.partition(" #")
        value = value.strip()
        nested = not value and number + 1 < len(lines)
        ref = re.match(r"!ref <(\w+)\W", value)
        if (
            key.startswith("__")
            or nested
            or value.startswith(_OBJECT_TAGS)
            or (ref and ref.group(1) in objects)
        ):
            objects.append(key)
        else:
            if value == "!PLACEHOLDER":
                value = "required"
            elif value.startswith("!ref "):
                value = value[len("!ref ") :]
            options.append(
                {
                    "key": key,
                    "value": value,
                    "comment": comment.strip(),
                    "heading": " ".join(block),
                }
            )
        block = []
    return options, [k for k in objects if not k.startswith("__")]


def format_recipe_options(hparams_file):
    """The ``--help`` text of a recipe's own keys (see
    :func:`recipe_options`).

    Arguments
    ---------
    hparams_file : str
        A HyperPyYAML recipe file.

    Returns
    -------
    str

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.yaml")
    >>> with open(path, "w") as f:
    ...     _ = f.write("# Data\\ndata_folder: !PLACEHOLDER\\nseed: 0\\n")
    >>> print(format_recipe_options(path))  # doctest: +ELLIPSIS
    recipe options of .../x.yaml (override any with --key value):
    <BLANKLINE>
      # Data
      --data_folder           required
      --seed                  0
    """
    options, objects = recipe_options(hparams_file)
    hash_indent = {"initial_indent": "  # ", "subsequent_indent": "  # "}
    out = [f"recipe options of {hparams_file} (override any with --key value):"]
    for option in options:
        if option["heading"]:
            out += ["", textwrap.fill(option["heading"], 79, **hash_indent)]
        elif len(out) == 1:
            out.append("")
        line = f"  --{option['key']:<20}  {option['value']}"
        if option["comment"]:
            line += f"  ({option['comment']})"
        out.append(line)
    if objects:
        out += [
            "",
            textwrap.fill(
                "built by the yaml from the options above (edit a copy of "
                "the file to change them): " + ", ".join(objects),
                79,
            ),
        ]
    return "\n".join(out)


def parse_arguments(argv, default_hparams, recipe_dir=None):
    """``sb.parse_arguments`` for a recipe: the hparams file is looked up
    in the recipe folder first (:func:`resolve_hparams_file`), the default
    one is used when the first argument is a flag, ``--help`` also lists
    the yaml's own keys, and a key without a value (``!PLACEHOLDER``) or
    given twice stops with one line, so that ``load_hyperpyyaml`` then
    reads the file as it is.

    Arguments
    ---------
    argv : list of str
        ``sys.argv[1:]``: ``[HPARAMS_FILE] [--flag value ...]``.
    default_hparams : str
        The hparams file used when none is given, e.g. ``hparams/ast.yaml``.
    recipe_dir : str, optional
        The recipe's folder; by default the running script's.

    Returns
    -------
    hparams_file : str
        Its absolute path.
    run_opts : speechbrain.utils.run_opts.RunOptions
    overrides : str
        The other flags as yaml, for ``load_hyperpyyaml``.

    Raises
    ------
    SystemExit
        After ``--help`` (status 0); with one line for a missing hparams
        file, a key without a value or a key given twice (status 1).

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(d, "hparams"))
    >>> with open(os.path.join(d, "hparams", "a.yaml"), "w") as f:
    ...     _ = f.write("# the clips\\nclips: !PLACEHOLDER\\nseed: 0\\n")
    >>> path, run_opts, overrides = parse_arguments(
    ...     ["--clips", "/d", "--device", "cpu"], "hparams/a.yaml", d
    ... )
    >>> os.path.basename(path), run_opts["device"], overrides
    ('a.yaml', 'cpu', 'clips: /d')
    >>> try:
    ...     parse_arguments([], "hparams/a.yaml", d)
    ... except SystemExit as err:
    ...     print(str(err).split(": ", 1)[1])
    error: a.yaml needs --clips VALUE (clips has no default; the yaml says: the clips). All keys: --help
    """
    import speechbrain as sb

    if recipe_dir is None:
        recipe_dir = os.path.dirname(os.path.abspath(sys.argv[0]))
    argv = list(argv)
    if not argv or argv[0].startswith("-"):
        argv = [default_hparams] + argv
    try:
        argv[0] = resolve_hparams_file(argv[0], recipe_dir)
    except FileNotFoundError as err:
        raise SystemExit(f"{_script_name()}: error: {err}") from None
    if "-h" in argv[1:] or "--help" in argv[1:]:
        try:  # argparse prints SpeechBrain's flags, then exits
            sb.parse_arguments(argv)
        except SystemExit:
            pass
        print("\n" + format_recipe_options(argv[0]))
        raise SystemExit(0)
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    name = os.path.basename(hparams_file)
    given = re.findall(r"^(\w+)\s*:", overrides or "", flags=re.M)
    for key in given:
        if given.count(key) > 1:
            raise SystemExit(
                f"{_script_name()}: error: --{key} is given twice: give it "
                "once."
            )
    for option in recipe_options(hparams_file)[0]:
        key = option["key"]
        if option["value"] == "required" and key not in given:
            said = option["comment"] or option["heading"]
            said = f"; the yaml says: {said}" if said else ""
            raise SystemExit(
                f"{_script_name()}: error: {name} needs --{key} VALUE "
                f"({key} has no default{said}). All keys: --help"
            )
    return hparams_file, run_opts, overrides


@contextlib.contextmanager
def user_errors():
    """Ends the recipe with one line on stderr (status 1), not a
    traceback, when its inputs are wrong: a missing or malformed dataset,
    a bad setting. The messages of the preparation and data checks name
    the file or value and what to do; the traceback goes to the log at
    debug level.

    Example
    -------
    >>> try:
    ...     with user_errors():
    ...         raise FileNotFoundError("/nope/meta/esc50.csv is missing")
    ... except SystemExit as err:
    ...     print(str(err).split(": ", 1)[1])
    error: /nope/meta/esc50.csv is missing
    """
    try:
        yield
    except USER_ERRORS as err:
        logger.debug("recipe input error", exc_info=True)
        raise SystemExit(f"{_script_name()}: error: {err}") from None


def log_evaluation(output_folder, stage, epoch, result, multi_label=False):
    """The statistics of a gathered evaluation
    (:func:`speechbrain_ast.training.metrics.evaluation_stats`: the loss,
    then the classification metrics), appended as a line to
    ``<output_folder>/metrics.jsonl`` (the stage, the epoch, the
    statistics, how many examples each rank evaluated); after the test
    stage also ``test_predictions.pt`` with the ``ids``, ``scores`` and
    ``targets``, what the ensembles of checkpoints or recipes read
    (``ensemble_predictions``). The files are written on the main process
    only.

    ESC-50's cross-validation reads the per-epoch validation accuracy in
    ``metrics.jsonl``.

    Arguments
    ---------
    output_folder : str
    stage : speechbrain.Stage or str
        ``VALID`` or ``TEST``.
    epoch : int
        The epoch trained, or that of the evaluated checkpoint.
    result : dict
        :meth:`speechbrain_ast.training.ddp.DistributedEvaluation.gather`'s.
    multi_label : bool
        As :func:`speechbrain_ast.training.metrics.classification_stats`.

    Returns
    -------
    dict of str to float
        The statistics, on every process.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> result = {
    ...     "ids": ["a"],
    ...     "scores": torch.tensor([[0.9, 0.1]]),
    ...     "targets": torch.tensor([[1.0, 0.0]]),
    ...     "loss": 0.5,
    ...     "per_rank": [1],
    ... }
    >>> log_evaluation(d, "test", 3, result)
    {'loss': 0.5, 'acc': 1.0}
    >>> print(open(os.path.join(d, "metrics.jsonl")).read().strip())
    {"stage": "test", "epoch": 3, "loss": 0.5, "acc": 1.0, "ids_evaluated": 1, "per_rank": [1]}
    >>> sorted(torch.load(os.path.join(d, "test_predictions.pt")))
    ['ids', 'scores', 'targets']
    """
    from speechbrain.utils.distributed import if_main_process
    from speechbrain_ast.training.metrics import evaluation_stats

    stats = evaluation_stats(result, multi_label)
    if not if_main_process():
        return stats
    name = getattr(stage, "name", stage).lower()
    record = {"stage": name, "epoch": epoch, **stats}
    record.update(ids_evaluated=len(result["ids"]), per_rank=result["per_rank"])
    path = os.path.join(output_folder, "metrics.jsonl")
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    if name == "test":
        torch.save(
            {k: result[k] for k in ("ids", "scores", "targets")},
            os.path.join(output_folder, "test_predictions.pt"),
        )
    return stats
