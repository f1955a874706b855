"""What every recipe script does before and after its Brain: read its
command line (the hparams file, ``--help`` with the recipe's own keys, one
clear line for a missing or wrong input), name its classes, initialise the
lobe from pretrained weights, log metrics as json lines, save test
predictions.

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
    "parse_recipe_arguments",
    "load_recipe_hparams",
    "recipe_options",
    "format_recipe_options",
    "user_errors",
    "class_names",
    "resolve_hparams_file",
    "init_from_pretrained",
    "log_jsonl",
    "save_predictions",
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


def parse_recipe_arguments(argv, recipe_dir, default_hparams):
    """A recipe's command line: ``sb.parse_arguments`` with the hparams
    file found (:func:`resolve_hparams_file`), the default one when none
    is given, and ``--help`` listing the yaml's own keys after
    SpeechBrain's flags.

    Arguments
    ---------
    argv : list of str
        ``sys.argv[1:]``: ``[HPARAMS_FILE] [--flag value ...]``.
    recipe_dir : str
        The recipe's folder.
    default_hparams : str
        The hparams file used when the first argument is a flag (or there
        is none), e.g. ``hparams/ast.yaml``.

    Returns
    -------
    hparams_file : str
        Its absolute path.
    run_opts : speechbrain.utils.run_opts.RunOptions
    overrides : str
        The other flags as yaml, for :func:`load_recipe_hparams`.

    Raises
    ------
    SystemExit
        After ``--help`` (status 0); with one line naming the places tried
        when the hparams file does not exist (status 1).

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(d, "hparams"))
    >>> with open(os.path.join(d, "hparams", "a.yaml"), "w") as f:
    ...     _ = f.write("seed: 0\\n")
    >>> path, run_opts, overrides = parse_recipe_arguments(
    ...     ["--seed", "3", "--device", "cpu"], d, "hparams/a.yaml"
    ... )
    >>> os.path.basename(path), run_opts["device"], overrides
    ('a.yaml', 'cpu', 'seed: 3')
    """
    import speechbrain as sb

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
    return sb.parse_arguments(argv)


def load_recipe_hparams(hparams_file, overrides):
    """``load_hyperpyyaml`` of a recipe, with a missing required key
    (a ``!PLACEHOLDER`` such as ``data_folder``) as one line naming the
    flag to pass, its yaml comment and ``--help``.

    Arguments
    ---------
    hparams_file : str
        The recipe yaml.
    overrides : str or dict
        The command line's overrides.

    Returns
    -------
    dict
        The loaded hyperparameters.

    Raises
    ------
    SystemExit
        For a key without a value, or one given twice (status 1).

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x.yaml")
    >>> with open(path, "w") as f:
    ...     _ = f.write("# the dataset\\ndata_folder: !PLACEHOLDER\\n")
    >>> load_recipe_hparams(path, "data_folder: /data")
    {'data_folder': '/data'}
    >>> try:
    ...     load_recipe_hparams(path, "")
    ... except SystemExit as err:
    ...     print(str(err).split(": ", 1)[1])
    error: x.yaml needs --data_folder VALUE (data_folder has no default; the yaml says: the dataset). All keys: --help
    """
    from hyperpyyaml import load_hyperpyyaml
    from ruamel.yaml.constructor import DuplicateKeyError

    with open(hparams_file, encoding="utf-8") as fin:
        try:
            return load_hyperpyyaml(fin, overrides)
        except DuplicateKeyError as err:
            twice = re.search(r'duplicate key "([^"]+)"', str(err))
            name = twice.group(1) if twice else "a key"
            raise SystemExit(
                f"{_script_name()}: error: --{name} is given twice (on the "
                f"command line or in {os.path.basename(hparams_file)}): "
                "give it once."
            ) from None
        except ValueError as err:
            match = re.match(r"'(\S+)' is a !PLACEHOLDER", str(err))
            if match is None:
                raise
    key = match.group(1)
    described = {
        o["key"]: o["comment"] or o["heading"]
        for o in recipe_options(hparams_file)[0]
    }
    what = f"; the yaml says: {described[key]}" if described.get(key) else ""
    raise SystemExit(
        f"{_script_name()}: error: {os.path.basename(hparams_file)} needs "
        f"--{key} VALUE ({key} has no default{what}). All keys: --help"
    )


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


def class_names(
    data_names,
    n_classes,
    official=None,
    allow_unseen=False,
    source="the data",
):
    """The class names of a recipe in index order, checked against
    ``n_classes``.

    Arguments
    ---------
    data_names : dict
        Class index -> name, as the data has them.
    n_classes : int
        The recipe's (the classifier's) number of classes.
    official : list of str, optional
        The dataset's official names in index order (e.g. ESC-50's 50
        categories). Then ``n_classes`` may not exceed their number; with
        ``n_classes == len(official)`` the classes no clip has are named
        from it, and every data name must equal the official one.
    allow_unseen : bool
        Accept ``n_classes`` above the data's classes without ``official``
        covering them: the classes no clip has are named from
        ``official`` (checked as above) or ``class<i>``.
    source : str
        Where the data names come from, for the messages.

    Returns
    -------
    list of str

    Raises
    ------
    ValueError
        Naming the numbers and the flag to pass.

    Example
    -------
    >>> class_names({0: "dog", 1: "rooster"}, 2)
    ['dog', 'rooster']
    >>> class_names({0: "dog"}, 3, official=["dog", "rooster", "pig"])
    ['dog', 'rooster', 'pig']
    >>> try:
    ...     class_names({0: "dog", 1: "rooster"}, 3)
    ... except ValueError as err:
    ...     print(str(err)[:56])
    n_classes is 3 but the data has 2 classes (indices 0..1;
    """
    if not data_names:
        raise ValueError(f"{source} has no classes: check the dataset.")
    top = max(data_names)
    if top >= n_classes:
        raise ValueError(
            f"{source} has class index {top} but n_classes is {n_classes}: "
            f"pass --n_classes {top + 1}."
        )
    if official is not None and n_classes > len(official):
        raise ValueError(
            f"n_classes is {n_classes} but the dataset has {len(official)} "
            f"classes: pass --n_classes {len(official)} or fewer."
        )
    unseen = [i for i in range(n_classes) if i not in data_names]
    if not unseen:
        return [data_names[i] for i in range(n_classes)]
    complete = official is not None and n_classes == len(official)
    if not (complete or allow_unseen):
        shown = ", ".join(str(i) for i in unseen[:8])
        shown += ", ..." if len(unseen) > 8 else ""
        raise ValueError(
            f"n_classes is {n_classes} but {source} has {len(data_names)} "
            f"classes (indices {min(data_names)}..{top}; no clip has class "
            f"{shown}): pass --n_classes {top + 1}, or "
            "--allow_unseen_classes True to train a classifier with "
            "classes that no clip has."
        )
    if official is None:
        logger.warning(
            "n_classes %d: classes %s have no clip and are named class<i>",
            n_classes,
            unseen,
        )
        return [data_names.get(i, f"class{i}") for i in range(n_classes)]
    wrong = [
        f"{i}: {name!r} (official: {official[i]!r})"
        for i, name in sorted(data_names.items())
        if name != official[i]
    ]
    if wrong:
        raise ValueError(
            f"{source} names {len(wrong)} classes otherwise than the "
            f"dataset's official list ({'; '.join(wrong[:5])}), so the "
            f"{len(unseen)} classes no clip has cannot be named from it: "
            f"pass --n_classes {top + 1} to train on the data's classes."
        )
    return [official[i] for i in range(n_classes)]


def init_from_pretrained(
    embedding_model,
    audioset_pretrain=False,
    ssl_pretrain=False,
    imagenet_pretrain=False,
    imagenet_checkpoint=None,
    channel_reduction="mean",
    pos_embed="bilinear",
):
    """Initialises a recipe's AST lobe (in place) as the paper does.

    With ``audioset_pretrain`` (a reference ``.pth`` or a HuggingFace
    folder) the lobe gets that checkpoint's backbone, its positional
    embedding adapted to the lobe's ``input_tdim`` (the checkpoint's head
    is not used: the recipe's head stays fresh). Else, with
    ``ssl_pretrain`` (a published SSAST checkpoint such as
    ``SSAST-Base-Patch-400.pth`` or an ``ssast_encoder.pt`` of
    ``recipes/SSAST/pretrain.py``), that self-supervised encoder
    (:func:`speechbrain_ast.ssast.model.load_ssast`: the patch shape must be the
    pretraining one, the strides and length may differ, the positional
    embedding is adapted). Else, with ``imagenet_pretrain`` (a timm DeiT
    name), the DeiT weights (:func:`speechbrain_ast.weights.pretrained.load_deit`).
    Else nothing (random initialisation, "from scratch").

    Arguments
    ---------
    embedding_model : speechbrain_ast.model.lobe.AST
    audioset_pretrain : str or False
    ssl_pretrain : str or False
    imagenet_pretrain : str or False
    imagenet_checkpoint : str, optional
        Local DeiT weights file (offline machines).
    channel_reduction : str
        ``"mean"`` or ``"sum"`` (DeiT's RGB patch conv -> 1 channel).
    pos_embed : str
        ``"bilinear"``, ``"nearest"`` or ``"reinit"`` (ImageNet only);
        an SSAST encoder's grid is adapted with ``"nearest"`` when given,
        else bilinearly.

    Returns
    -------
    str
        What was loaded, for the log.

    Example
    -------
    >>> from speechbrain_ast.model.lobe import AST
    >>> init_from_pretrained(
    ...     AST(input_tdim=64, embed_dim=32, depth=1, num_heads=2)
    ... )
    'random initialisation'
    """
    from speechbrain_ast.weights import pretrained

    if audioset_pretrain:
        if not os.path.exists(audioset_pretrain):
            raise FileNotFoundError(
                f"audioset_pretrain={audioset_pretrain!r} does not exist: "
                "give the path of an AudioSet AST checkpoint (the "
                "reference audioset_10_10_0.4593.pth or a HuggingFace AST "
                "folder), or --audioset_pretrain False"
            )
        lobe, _, _ = pretrained.build_from_checkpoint(
            audioset_pretrain, input_tdim=embedding_model.input_tdim
        )
        try:
            embedding_model.load_state_dict(lobe.state_dict())
        except RuntimeError as err:
            raise ValueError(
                f"{audioset_pretrain} does not fit the recipe's model "
                "(embed_dim, depth, num_heads, patch_size, fstride, "
                "tstride must match the checkpoint's): "
                f"{str(err)[:400]}"
            ) from err
        return f"AudioSet checkpoint {audioset_pretrain}"
    if ssl_pretrain:
        _load_ssl(embedding_model, ssl_pretrain, pos_embed)
        return f"SSAST encoder {ssl_pretrain}"
    if imagenet_pretrain:
        pretrained.load_deit(
            embedding_model,
            name=imagenet_pretrain,
            checkpoint=imagenet_checkpoint,
            channel_reduction=channel_reduction,
            pos_embed=pos_embed,
        )
        return f"ImageNet {imagenet_pretrain} ({imagenet_checkpoint})"
    return "random initialisation"


def _stride_flags(patch):
    """The recipe flags for a lobe with ``patch`` (freq, time) patches:
    the paper's overlapping strides of 10 for 16 x 16 patches, else the
    patch itself (frame patches: one time step of overlap less)."""
    pf, pt = patch
    size = str(pf) if pf == pt else f'"[{pf},{pt}]"'
    if (pf, pt) == (16, 16):
        fstride, tstride = 10, 10
    else:
        fstride, tstride = pf, max(1, pt // 2)
    return f"--patch_size {size} --fstride {fstride} --tstride {tstride}"


def _load_ssl(embedding_model, path, pos_embed):
    """:func:`speechbrain_ast.ssast.model.load_ssast` with the recipe's flags in
    the error of a patch shape that does not fit."""
    from speechbrain_ast.ssast.model import load_ssast, read_ssast_checkpoint

    if not os.path.exists(path):
        raise FileNotFoundError(
            f"ssl_pretrain={path!r} does not exist: give the path of an "
            "SSAST checkpoint (SSAST-Base-Patch-400.pth, "
            "SSAST-Base-Frame-400.pth) or the ssast_encoder.pt of "
            "recipes/SSAST/pretrain.py, or --ssl_pretrain False"
        )
    method = "nearest" if pos_embed == "nearest" else "bilinear"
    try:
        load_ssast(embedding_model, path, method=method)
    except ValueError as err:
        patch = tuple(read_ssast_checkpoint(path).config["patch_size"])
        if patch == tuple(embedding_model.patch_size):
            raise
        have = embedding_model.patch_size
        raise ValueError(
            f"{path} was pretrained with {patch[0]} x {patch[1]} patches "
            f"but the recipe's model has {have[0]} x {have[1]} (patch_size "
            f"{list(have)}, fstride {embedding_model.fstride}, tstride "
            f"{embedding_model.tstride}): pass {_stride_flags(patch)}"
        ) from err


def log_jsonl(output_folder, record):
    """Appends ``record`` as one json line to
    ``<output_folder>/metrics.jsonl`` (on the main process only).

    ESC-50's cross-validation reads the per-epoch validation accuracy there.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> log_jsonl(d, {"stage": "valid", "epoch": 1, "acc": 50.0})
    >>> open(os.path.join(d, "metrics.jsonl")).read().strip()
    '{"stage": "valid", "epoch": 1, "acc": 50.0}'
    """
    from speechbrain.utils.distributed import if_main_process

    if if_main_process():
        path = os.path.join(output_folder, "metrics.jsonl")
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def save_predictions(output_folder, result):
    """Writes ``<output_folder>/test_predictions.pt`` with the ``ids``,
    ``scores`` and ``targets`` of an evaluation (main process only): the
    input of :func:`speechbrain_ast.training.ensemble.ensemble_predictions`.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> save_predictions(
    ...     d,
    ...     {
    ...         "ids": ["a"],
    ...         "scores": torch.ones(1, 2),
    ...         "targets": torch.ones(1, 2),
    ...     },
    ... )
    >>> sorted(torch.load(os.path.join(d, "test_predictions.pt")))
    ['ids', 'scores', 'targets']
    """
    from speechbrain.utils.distributed import if_main_process

    if if_main_process():
        torch.save(
            {k: result[k] for k in ("ids", "scores", "targets")},
            os.path.join(output_folder, "test_predictions.pt"),
        )
