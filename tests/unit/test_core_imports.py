"""The core stays free of the deep-learning stack, and llm_classifier's modules import one another without cycles.

The core (llm_classifier/*.py, the engine contract and the reference engine) may not load
torch, transformers, peft, bitsandbytes or vllm, not even lazily inside a function: only an
engine's package (llm_classifier/engines/hf, a future backends/vllm) may.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path


PACKAGE = Path(__file__).resolve().parents[2] / "llm_classifier"
HEAVY = ("torch", "transformers", "peft", "bitsandbytes", "vllm")
#: Packages of engines, which are allowed to import the heavy libraries.
ENGINE_PACKAGES = ("llm_classifier.engines.hf", "llm_classifier.engines.vllm")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def core_modules() -> list[str]:
    core = [module_name(path) for path in sorted(PACKAGE.glob("*.py"))]
    return core + ["llm_classifier.engines", "llm_classifier.engines.base", "llm_classifier.engines.reference"]


def imported_names(module: str, path: Path) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` of every import in ``path``, at any depth (functions included)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names.append((node.lineno, base))
            names += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]  # ``from . import module``
    return names


def test_importing_the_core_loads_no_deep_learning_stack() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {core_modules()!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=PACKAGE.parent).stdout.strip()
    assert loaded == "[]"


def heavy_imports_outside_engines() -> list[str]:
    found = []
    for module, path in all_modules().items():
        if module.startswith(ENGINE_PACKAGES):
            continue
        for line, name in imported_names(module, path):
            if name.split(".")[0] in HEAVY:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}")
    return found


def test_heavy_import_scan_finds_a_lazy_import(tmp_path: Path) -> None:
    """The scan sees an import inside a function (what the next test relies on)."""
    source = tmp_path / "lazy.py"
    source.write_text("def f():\n    from torch import nn\n    import transformers.models\n", encoding="utf-8")
    names = [name for _, name in imported_names("pkg.lazy", source)]
    assert "torch" in names and "transformers.models" in names


def test_no_core_module_imports_the_deep_learning_stack() -> None:
    assert heavy_imports_outside_engines() == []


def import_graph() -> dict[str, set[str]]:
    """Which llm_classifier modules each llm_classifier module imports (module level and inside functions)."""
    modules = all_modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for _, name in imported_names(module, path):
            # ``from .x import y``: y may be a module (x.y) or a name in x
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component of ``graph`` with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_find_cycles_sees_a_cycle() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_llm_classifier_modules_import_one_another_without_cycles() -> None:
    assert find_cycles(import_graph()) == []
