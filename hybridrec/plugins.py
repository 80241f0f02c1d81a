"""One way to name a plug-in: a built-in name, or a dotted path to your own code.

Everything a config names resolves the same way — towers, models, losses, splits, datasets,
baselines, metrics, field kinds:

- a **built-in name** (``"hybrid"``, ``"bpr"``, ``"stratified"``): a module of the package for
  the kinds that are one module each (towers, models, field kinds), an entry of the registry
  for the kinds that share a module (losses, splits, datasets, baselines, metrics);
- a **dotted path** to a researcher's own code: ``"my_pkg.my_tower"`` (a module, for module
  kinds) or ``"my_pkg.losses.focal"`` (a module and an attribute, for registry kinds).

A bad name is an error of the kind's own exception class that lists what exists, so a typo in a
config is one line, not a traceback from deep inside the run.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _import(module_name: str, error: type, message: str):
    """Imports a module; ``error(message)`` when the module itself does not exist."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only a missing *target* is a bad name; a missing import inside it is a real bug.
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise error(message) from None
        raise


def load_module_attr(
    package: str, name: str, attr: str, *, what: str, available: Sequence[str], error: type
) -> Any:
    """Imports ``{package}.{name}`` (or the dotted module path ``name``) and returns ``attr``.

    For the kinds that are one module each (towers, models, field kinds).

    Args:
      package: e.g. ``"hybridrec.towers"``.
      name: a module name inside ``package`` (``"ids"``) or a dotted path to any importable
        module (``"my_pkg.my_tower"``).
      attr: the attribute to return (``"Tower"``, ``"Model"``).
      what: noun for error messages (``"tower"``).
      available: the names inside ``package``, listed in the error for a bad name.
      error: exception class to raise.

    Returns:
      The attribute.
    """
    listing = f"available {what}s: {', '.join(available)}; or a dotted path to your own module"
    if not isinstance(name, str) or not _NAME.match(name):
        raise error(f"bad {what} name {name!r}; {listing}")
    module_name = name if "." in name else f"{package}.{name}"
    module = _import(module_name, error, f"unknown {what} {name!r}; {listing}")
    if not hasattr(module, attr):
        raise error(f"{what} module {module_name!r} has no `{attr}`; {listing}")
    return getattr(module, attr)


def resolve(
    name: str,
    registry: Mapping[str, Any],
    *,
    what: str,
    error: type,
    aliases: Mapping[str, str] | None = None,
    extra_names: Iterable[str] = (),
) -> Any:
    """A registry entry by name, or the object a dotted path ``"module.attr"`` names.

    For the kinds that share a module (losses, splits, datasets, baselines, metrics).

    Args:
      name: a key of ``registry`` (or of ``aliases``), or ``"my_pkg.module.attr"``.
      registry: the built-in entries.
      what: noun for error messages (``"loss"``).
      error: exception class to raise.
      aliases: other names of built-in entries.
      extra_names: more names to list in the error (e.g. aliases handled by the caller).

    Returns:
      The entry (usually a function or a class).
    """
    aliases = aliases or {}
    key = aliases.get(name, name) if isinstance(name, str) else name
    if isinstance(key, str) and key in registry:
        return registry[key]
    known = sorted({*registry, *aliases, *extra_names})
    listing = f"known {what} names: {', '.join(known)}; or a dotted path 'my_module.my_{what}'"
    if not isinstance(name, str) or "." not in name or not _NAME.match(name):
        raise error(f"unknown {what} {name!r}; {listing}")
    module_name, _, attr = name.rpartition(".")
    module = _import(
        module_name, error, f"unknown {what} {name!r}: no module {module_name!r}; {listing}"
    )
    if not hasattr(module, attr):
        raise error(f"unknown {what} {name!r}: module {module_name!r} has no {attr!r}; {listing}")
    return getattr(module, attr)
