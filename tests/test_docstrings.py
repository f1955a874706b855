"""Every public class and function of the library has a numpy docstring
with a runnable example (the examples themselves run as doctests).

Authors
 * speechbrain-ast developers
"""

import importlib
import inspect
import pkgutil

import speechbrain_ast


def _public_objects():
    for info in pkgutil.walk_packages(
        speechbrain_ast.__path__, prefix="speechbrain_ast."
    ):
        module = importlib.import_module(info.name)
        for name in dir(module):
            obj = getattr(module, name)
            if name.startswith("_"):
                continue
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if obj.__module__ == module.__name__:
                yield f"{module.__name__}.{name}", obj


def test_every_public_object_has_a_runnable_example():
    objects = dict(_public_objects())
    assert len(objects) > 50  # the scan found the library
    missing = [
        name
        for name, obj in objects.items()
        if "Example" not in (inspect.getdoc(obj) or "")
        or ">>>" not in (inspect.getdoc(obj) or "")
    ]
    assert not missing, f"public objects without an Example: {missing}"
