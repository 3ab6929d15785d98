"""The Python objects a dataset description names by dotted path (feature function, history
summary, row checks), and DatasetError: what an unusable description or feature function raises."""
from __future__ import annotations

import importlib
import os
import sys
from typing import Callable


class DatasetError(ValueError):
    """A dataset description that cannot be used, or a feature function that broke its contract."""


def resolve(dotted: str, source: str, setting: str) -> Callable:
    """The object a "package.module:name" (or "package.module.name") path names. The module is
    imported from the Python path, or else from the directory of the description `source`."""
    module_name, _, attr = dotted.rpartition(":") if ":" in dotted else dotted.rpartition(".")
    if not module_name or not attr:
        raise DatasetError(f"{source}: {setting} = {dotted!r} is not a dotted path; write "
                           "\"package.module:function\"")
    try:
        module = _import(module_name, os.path.dirname(os.path.abspath(source)))
    except ImportError as exc:
        raise DatasetError(f"{source}: {setting} = {dotted!r}: module '{module_name}' cannot be imported "
                           f"({exc}); put it on the Python path or beside the description") from exc
    if not hasattr(module, attr):
        raise DatasetError(f"{source}: {setting} = {dotted!r}: module '{module_name}' has no '{attr}'")
    return getattr(module, attr)


def _import(module_name: str, directory: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name.split(".")[0] or directory in sys.path:
            raise
        sys.path.append(directory)
        return importlib.import_module(module_name)
