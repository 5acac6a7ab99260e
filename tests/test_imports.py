"""The import rules of STYLE.md, checked on the source with ``ast`` (nothing is imported)."""

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
