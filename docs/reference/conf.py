"""Sphinx configuration of the API reference: autodoc over the installed-from-source package, offline.

Each public object is documented once: the names of the flat ``pyodide_realtime`` namespace on the
package page (a class keeps its defining module as ``:canonical:`` alias, so a signature that names
``pyodide_realtime.events.TurnDone`` links there), the modules' other public names on their pages.
``./build.sh docs`` builds it; tests/cpython/test_docs.py builds it with warnings as errors.
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import re
import sys
from pathlib import Path
from typing import Any

from sphinx import addnodes
from sphinx.pycode import ModuleAnalyzer

SOURCE = Path(__file__).resolve().parents[2] / "src"
if (SOURCE / "pyodide_realtime").is_dir():
    sys.path.insert(0, str(SOURCE))  # this checkout's source, not whichever copy the venv installed

import pyodide_realtime  # noqa: E402

project = "pyodide-realtime"
release = version = pyodide_realtime.__version__
extensions = ["sphinx.ext.autodoc"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path: list[str] = []

autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True}
autodoc_member_order = "bysource"  # a module's __all__ order: grouped by topic
autodoc_typehints = "signature"
autodoc_class_signature = "mixed"

# Every reference must resolve: a typo in a docstring's :class: fails the build.
nitpicky = True
# No intersphinx: the build must not touch the network, so other projects' classes have no target.
# Sphinx itself lets builtins and ``typing`` names pass; ``collections.abc`` (in our signatures) and
# pydantic (the events' base class and the ``Item`` union's parts) are ignored here. Every other
# reference must resolve: ours all do.
nitpick_ignore_regex = [
    (r"py:class", r"collections\.abc\..*"),
    (r"py:class", r"pydantic\..*"),
    # Our private names (a module or name with a leading underscore) are not in the reference, by
    # design; a public signature may still show one (a private base class, an awaitable's type).
    (r"py:.*", r"pyodide_realtime\.(\w+\.)*_\w+(\..*)?"),
    # A type alias its module does not export (in no __all__): a signature shows the name.
    (r"py:class", r"ItemStatus"),
]

# The package's names: documented once, on its page.
FLAT_NAMES = frozenset(pyodide_realtime.__all__)
BUILTIN_NAMES = frozenset(dir(builtins))
# The public modules with a section of their own (modules.rst and the pages beside it).
PAGE_MODULES = [  # in the order of their pages
    f"pyodide_realtime.{name}"
    for name in ("events", "audio", "errors", "testing", "agent", "config", "dialects", "guardrail", "items",
                 "run_context", "runner", "session", "session_events", "session_transport", "tool", "transport")
]


def _data_entries(module_name: str, skip: frozenset[str]) -> str:
    """``py:data`` entries for the constants and type aliases of a module's ``__all__`` that autodoc skips.

    autodoc documents a module's data only where the module's own source assigns it with a ``#:``
    comment; a name the module imports (the package's lazy names, the audio package's) or assigns
    without one would be left out. Each is written here, with the ``#:`` comment of the module that
    defines it, which becomes its ``:canonical:`` alias.
    """
    module = importlib.import_module(module_name)
    own_docs = ModuleAnalyzer.for_module(module_name).find_attr_docs()
    entries = []
    for name in module.__all__:
        value = getattr(module, name)
        if name in skip or ("", name) in own_docs or inspect.isclass(value) or inspect.isroutine(value):
            continue  # autodoc documents it, or another page does
        entry = f".. py:data:: {name}\n"
        for other in sorted(m for m in sys.modules if m.startswith("pyodide_realtime.") and m != module_name):
            doc = ModuleAnalyzer.for_module(other).find_attr_docs().get(("", name))
            if doc and getattr(sys.modules[other], name, None) is value:
                entry += f"   :canonical: {other}.{name}\n\n" + "".join(f"   {line}\n" for line in doc)
                break
        entries.append(entry + "\n")
    return "".join(entries)


def _module_section(module_name: str) -> str:
    """What ``@MODULE name@`` in a page stands for: the module's docstring and its public names.

    The package's names are documented on its page only; a module's page leaves them out.
    """
    skip = frozenset() if module_name == "pyodide_realtime" else FLAT_NAMES
    lines = [f".. automodule:: {module_name}"]
    if skip:
        lines.append(f"   :exclude-members: {', '.join(sorted(skip))}")
    return "\n".join(lines) + "\n\n" + _data_entries(module_name, skip)


def _expand_modules(app: Any, docname: str, source: list[str]) -> None:
    source[0] = re.sub(r"^@MODULE ([\w.]+)@$", lambda match: _module_section(match[1]), source[0], flags=re.MULTILINE)


def _our_short_name(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve a short or module-qualified name of ours to where it is documented.

    A docstring of ``pyodide_realtime.items`` that says ``RealtimeItem`` means the package's
    ``pyodide_realtime.RealtimeItem``; Sphinx looks only in the current module. A name that is
    documented nowhere still fails the build.
    """
    target = node["reftarget"]
    if node.get("refdomain") != "py" or not target.replace(".", "_").isidentifier():
        return None
    for module in (*PAGE_MODULES, "pyodide_realtime"):
        if target.startswith(f"{module}."):
            target = target.removeprefix(f"{module}.")
            break
    objects = env.domains["py"].objects
    candidates = (f"pyodide_realtime.{target}", *(f"{module}.{target}" for module in PAGE_MODULES))
    # A class's :canonical: alias and the class itself are one place.
    found = {(objects[full].docname, objects[full].node_id): full for full in candidates if full in objects}
    if len(found) != 1:
        return None
    (full,) = found.values()
    return env.domains["py"].resolve_xref(env, node["refdoc"], app.builder, node["reftype"], full, node, contnode)


def _builtins_exactly(app: Any, doctree: Any) -> None:
    """Look a builtin type in an annotation (``bytes``, ``object``) up by its exact name only.

    Type hints become "specific" references, which also match any object whose name ends in ``.bytes``
    (a field ``AudioDropped.bytes``): ambiguous, or a wrong link. Exactly, they match nothing of ours and
    Sphinx leaves them as plain text, as it does for every builtin.
    """
    for node in doctree.findall(addnodes.pending_xref):
        if node.get("refdomain") == "py" and node.get("reftarget") in BUILTIN_NAMES and "refspecific" in node:
            del node["refspecific"]  # the domain checks whether it is set, not its value


def _factory_defaults(app: Any, what: str, name: str, obj: Any, options: Any, signature: str | None,
                      return_annotation: str | None) -> tuple[str, str | None] | None:
    """Show a dataclass field's ``default_factory`` as ``...``: its repr ``<factory>`` is no Python, and
    Sphinx, failing to parse the signature, would split it at every comma (``dict[str``)."""
    if signature and "<factory>" in signature:
        return signature.replace("<factory>", "..."), return_annotation
    return None


def _skip_pydantic_config(app: Any, what: str, name: str, obj: Any, skip: bool, options: Any) -> bool | None:
    """Leave out each event model's ``model_config`` (pydantic's settings, the same on every model)."""
    return True if what == "class" and name == "model_config" else None


def setup(app: Any) -> None:
    app.connect("autodoc-skip-member", _skip_pydantic_config)
    app.connect("autodoc-process-signature", _factory_defaults)
    app.connect("source-read", _expand_modules)
    app.connect("doctree-read", _builtins_exactly)
    app.connect("missing-reference", _our_short_name)
