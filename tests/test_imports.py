"""The import rules of CONTRIBUTING.md, checked on the source with ``ast`` (nothing is imported)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IDP = ROOT / "idp"
DEMO = ROOT / "relying_party_demo"


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    tree: ast.Module

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"


def load_modules(top: Path) -> list[Module]:
    modules = []
    for path in sorted(top.rglob("*.py")):
        parts = path.relative_to(top.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        modules.append(Module(".".join(parts), path, tree))
    return modules


def imported_names(module: Module) -> set[str]:
    """Return every absolute module name ``module`` imports (``from a import b`` gives a, a.b)."""
    names: set[str] = set()
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def imports_any(module: Module, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        name
        for name in imported_names(module)
        if any(name == top or name.startswith(top + ".") for top in forbidden)
    )


IDP_MODULES = load_modules(IDP)
DEMO_MODULES = load_modules(DEMO) if DEMO.is_dir() else []


def select(prefix: str) -> list[Module]:
    return [m for m in IDP_MODULES if m.name == prefix or m.name.startswith(prefix + ".")]


def ids(modules: list[Module]) -> list[str]:
    return [m.name for m in modules]


def test_the_walk_finds_the_packages() -> None:
    names = set(ids(IDP_MODULES))
    assert {"idp", "idp.settings", "idp.sessions.service", "idp.models.user"} <= names


def test_relative_imports_are_resolved() -> None:
    tree = ast.parse("from . import service\nfrom ..models import user\nimport flask\n")
    module = Module("idp.sessions.views", IDP / "sessions" / "views.py", tree)
    assert imported_names(module) == {
        "idp.sessions",
        "idp.sessions.service",
        "idp.models",
        "idp.models.user",
        "flask",
    }


@pytest.mark.parametrize("module", select("idp.sessions"), ids=ids(select("idp.sessions")))
def test_sessions_know_no_protocol(module: Module) -> None:
    assert imports_any(module, ("idp.oidc", "idp.saml")) == []


@pytest.mark.parametrize("module", select("idp.models"), ids=ids(select("idp.models")))
def test_models_import_no_flask(module: Module) -> None:
    flask_names = [
        name
        for name in imported_names(module)
        if name == "flask" or name.startswith(("flask.", "flask_"))
    ]
    assert flask_names == []


@pytest.mark.parametrize("module", IDP_MODULES, ids=ids(IDP_MODULES))
def test_idp_never_imports_the_demo_apps(module: Module) -> None:
    assert imports_any(module, ("relying_party_demo",)) == []


@pytest.mark.skipif(not DEMO_MODULES, reason="no relying_party_demo modules yet")
@pytest.mark.parametrize("module", DEMO_MODULES, ids=ids(DEMO_MODULES))
def test_demo_apps_never_import_idp(module: Module) -> None:
    assert imports_any(module, ("idp",)) == []


def has_future_annotations(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.ImportFrom)
        and node.module == "__future__"
        and any(alias.name == "annotations" for alias in node.names)
        for node in tree.body
    )


CODE_MODULES = [m for m in IDP_MODULES if not m.name.startswith("idp.migrations")]


@pytest.mark.parametrize("module", CODE_MODULES, ids=ids(CODE_MODULES))
def test_every_module_has_future_annotations(module: Module) -> None:
    assert has_future_annotations(module.tree), f"{module.path} lacks the __future__ import"


MODULE_NAMES = frozenset(m.name for m in IDP_MODULES)


def import_targets(module: Module, known: frozenset[str]) -> dict[str, int]:
    """Return the ``known`` modules that running ``module`` may import, each with a line.

    Imports inside functions count: they run later, but moved to the top (or run while the
    target is still initialising) a cycle raises ImportError "partially initialized module".
    ``from a import b`` depends on the submodule ``a.b`` when there is one, else on ``a``'s
    ``__init__``; importing a module from outside its package also runs the package's
    ``__init__``.
    """
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    found: dict[str, int] = {}

    def add(name: str, line: int) -> None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if not name:
            return
        if name != module.name:
            found.setdefault(name, line)
        parts = name.split(".")
        for depth in range(1, len(parts)):
            package = ".".join(parts[:depth])
            inside = module.name == package or module.name.startswith(package + ".")
            if package in known and not inside:
                found.setdefault(package, line)

    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                add(submodule if submodule in known else base, node.lineno)
    return found


def import_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Return the strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = lowlink[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                lowlink[node] = min(lowlink[node], lowlink[target])
            elif target in on_stack:
                lowlink[node] = min(lowlink[node], index[target])
        if lowlink[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, {}):
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def describe(component: list[str], graph: dict[str, dict[str, int]]) -> str:
    edges = [
        f"  {source} -> {target} (line {line})"
        for source in component
        for target, line in sorted(graph[source].items())
        if target in component
    ]
    return "\n".join([" <-> ".join(component), *edges])


def test_the_cycle_finder_sees_imports_inside_functions() -> None:
    modules = {
        "idp.cli": "def run():\n    from idp import commands\n",
        "idp.commands": "from idp.saml.commands import register\n",
        "idp.saml.commands": "from idp.cli import echo_json\n",
        "idp.users.service": "def disable():\n    from idp.sessions.service import revoke\n",
        "idp.sessions.service": "from idp.users.service import get_user\n",
        "idp.sessions.logout": "def sweep():\n    from idp.sessions import service\n",
        "idp.sessions.views": "from idp.sessions import service\n",
    }
    fake = [
        Module(name, IDP / f"{name.replace('.', '/')}.py", ast.parse(source))
        for name, source in modules.items()
    ]
    known = frozenset([*modules, "idp", "idp.saml", "idp.sessions", "idp.users"])
    graph = {module.name: import_targets(module, known) for module in fake}
    assert graph["idp.saml.commands"] == {"idp.cli": 1}
    assert graph["idp.sessions.service"] == {"idp.users": 1, "idp.users.service": 1}
    assert import_cycles(graph) == [
        ["idp.cli", "idp.commands", "idp.saml.commands"],
        ["idp.sessions.service", "idp.users.service"],
    ]


def test_a_package_init_name_is_an_import_of_the_package() -> None:
    tree = ast.parse("from idp import db\nfrom idp import create_app\n")
    module = Module("idp.saml.views", IDP / "saml" / "views.py", tree)
    known = frozenset({"idp", "idp.db", "idp.saml", "idp.saml.views"})
    assert import_targets(module, known) == {"idp.db": 1, "idp": 2}


def test_no_import_cycles() -> None:
    graph = {module.name: import_targets(module, MODULE_NAMES) for module in IDP_MODULES}
    cycles = [describe(component, graph) for component in import_cycles(graph)]
    assert cycles == [], "import cycles among idp modules:\n" + "\n".join(cycles)


def module_level_targets(module: Module, known: frozenset[str]) -> set[str]:
    body = [node for node in module.tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    top = Module(module.name, module.path, ast.Module(body=body, type_ignores=[]))
    return set(import_targets(top, known))


def test_only_init_demo_loads_the_demo_data() -> None:
    importers = [m for m in IDP_MODULES if "idp.demo" in import_targets(m, MODULE_NAMES)]
    assert ids(importers) == ["idp.commands"]
    assert "idp.demo" not in module_level_targets(importers[0], MODULE_NAMES)
