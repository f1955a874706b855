"""Former home of the recipes' shared training code, now in one-idea
modules: :mod:`speechbrain_ast.optim`, :mod:`speechbrain_ast.checkpoint`,
:mod:`speechbrain_ast.distributed`, :mod:`speechbrain_ast.labels`,
:mod:`speechbrain_ast.losses`, :mod:`speechbrain_ast.ensemble` and
:mod:`speechbrain_ast.recipe`; the training loop is each recipe's own Brain.

Authors
 * speechbrain-ast developers
"""

from speechbrain_ast.checkpoint import ASTCheckpointer  # noqa: F401
from speechbrain_ast.optim import WarmupStepDecay, make_optimizer  # noqa: F401
