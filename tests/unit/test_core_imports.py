"""The core stays free of the deep-learning stack and of the engines; engines stand alone; no import cycles.

Rules (../shared/DESIGN.md), checked on every import at any depth (inside functions too):

* no module outside llm_classifier/engines/ imports torch, transformers, peft, bitsandbytes or
  vllm, nor a particular engine (engines/hf, engines/vllm, engines/reference): the core finds
  engines by kind name in the registry (llm_classifier.engines.ENGINES);
* one engine never imports another (the vLLM engine takes the Hugging Face checkpoint,
  tokenizer and model code from the shared engines/hf_*.py modules, not from engines/hf);
* the engine-neutral modules of engines/ (the registry, the contract, the label trie) import
  no particular engine and no deep-learning library, and engines/trie.py only numpy and the
  standard library.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path


PACKAGE = Path(__file__).resolve().parents[2] / "llm_classifier"
HEAVY = ("torch", "transformers", "peft", "bitsandbytes", "vllm")
ENGINES_PACKAGE = "llm_classifier.engines"
#: The particular engines, by kind: none may be imported outside engines/ or by another engine.
PARTICULAR_ENGINES = {"transformers": "llm_classifier.engines.hf", "vllm": "llm_classifier.engines.vllm",
                      "reference": "llm_classifier.engines.reference"}
#: Modules of engines/ that every engine and the core use: they import no engine and no heavy library.
ENGINE_NEUTRAL = ("llm_classifier.engines", "llm_classifier.engines.base", "llm_classifier.engines.trie")
TRIE = "llm_classifier.engines.trie"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def within(module: str, package: str) -> bool:
    """``module`` is ``package`` or one of its submodules (``engines.hf_models`` is not within ``engines.hf``)."""
    return module == package or module.startswith(package + ".")


def outside_engines(module: str) -> bool:
    return not within(module, ENGINES_PACKAGE)


def core_modules() -> list[str]:
    """Every module outside engines/ (but a ``__main__``, which runs a program), the engine-neutral modules of
    engines/ and the reference engine."""
    core = [module for module in all_modules() if outside_engines(module) and not module.endswith(".__main__")]
    return core + list(ENGINE_NEUTRAL) + ["llm_classifier.engines.reference"]


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


def heavy_imports_outside_engines(modules: dict[str, Path] | None = None) -> list[str]:
    """Imports of a deep-learning library outside engines/ or in an engine-neutral module of engines/."""
    found = []
    for module, path in (all_modules() if modules is None else modules).items():
        if not (outside_engines(module) or module in ENGINE_NEUTRAL):
            continue
        for line, name in imported_names(module, path):
            if name.split(".")[0] in HEAVY:
                found.append(f"{module}:{line} imports {name}")
    return found


def engine_imports_that_break_the_rules(modules: dict[str, Path] | None = None) -> list[str]:
    """Imports of a particular engine outside engines/, in a module of engines/ shared by the engines, or by another engine."""
    found = []
    for module, path in (all_modules() if modules is None else modules).items():
        own = next((package for package in PARTICULAR_ENGINES.values() if within(module, package)), None)
        for line, name in imported_names(module, path):
            for package in PARTICULAR_ENGINES.values():
                if within(name, package) and package != own:
                    where = "outside engines/" if outside_engines(module) else (
                        "in a module shared by the engines" if own is None else f"in the engine {own}")
                    found.append(f"{module}:{line} imports {name} {where}")
    return found


def trie_imports_beyond_numpy(modules: dict[str, Path] | None = None) -> list[str]:
    """Imports of engines/trie.py other than numpy and the standard library."""
    path = (all_modules() if modules is None else modules)[TRIE]
    return [f"{TRIE}:{line} imports {name}" for line, name in imported_names(TRIE, path)
            if name.split(".")[0] not in sys.stdlib_module_names | {"numpy"}]


def test_heavy_import_scan_finds_a_lazy_import(tmp_path: Path) -> None:
    """The scan sees an import inside a function (what the next test relies on)."""
    source = tmp_path / "lazy.py"
    source.write_text("def f():\n    from torch import nn\n    import transformers.models\n", encoding="utf-8")
    names = [name for _, name in imported_names("pkg.lazy", source)]
    assert "torch" in names and "transformers.models" in names


def test_no_core_module_imports_the_deep_learning_stack() -> None:
    assert heavy_imports_outside_engines() == []


def test_no_module_imports_an_engine_it_may_not() -> None:
    """Outside engines/ nothing imports a particular engine; the vLLM engine imports nothing from engines/hf."""
    assert engine_imports_that_break_the_rules() == []


def test_the_label_trie_imports_numpy_and_the_standard_library_only() -> None:
    assert trie_imports_beyond_numpy() == []


def _package(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    """A fake llm_classifier tree: module name -> written source file."""
    modules = {}
    for name, source in files.items():
        path = tmp_path / (name.replace(".", "/") + ".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
        modules[name] = path
    return modules


def test_the_rule_scans_find_each_kind_of_violation(tmp_path: Path) -> None:
    """Each scan reports a planted violation (what the tests above rely on), and only that one."""
    modules = _package(tmp_path, {
        "llm_classifier.io.artifact": "def f():\n    from ..engines.hf.engine import TransformersBackend\n",
        "llm_classifier.cli.main": "from llm_classifier.engines import reference\n",
        "llm_classifier.pipeline.fit": "from ..engines import resolve_backend\nimport numpy\n",
        "llm_classifier.engines.vllm.engine": "def g():\n    from ..hf.scoring import LabelTrie\n"
                                              "    from ..hf_models import quiet_transformers\n    import torch\n",
        "llm_classifier.engines.hf.engine": "from ..hf_models import load_base\nimport torch\n",
        "llm_classifier.engines.hf_checkpoints": "import json\n\n\ndef h():\n    from .hf import runtime\n",
        "llm_classifier.engines.base": "import torch\n",
        "llm_classifier.engines.trie": "import numpy as np\nimport dataclasses\nfrom torch import nn\n",
    })
    assert engine_imports_that_break_the_rules(modules) == [
        "llm_classifier.io.artifact:2 imports llm_classifier.engines.hf.engine outside engines/",
        "llm_classifier.io.artifact:2 imports llm_classifier.engines.hf.engine.TransformersBackend outside engines/",
        "llm_classifier.cli.main:1 imports llm_classifier.engines.reference outside engines/",
        "llm_classifier.engines.vllm.engine:2 imports llm_classifier.engines.hf.scoring in the engine llm_classifier.engines.vllm",
        "llm_classifier.engines.vllm.engine:2 imports llm_classifier.engines.hf.scoring.LabelTrie in the engine "
        "llm_classifier.engines.vllm",
        "llm_classifier.engines.hf_checkpoints:5 imports llm_classifier.engines.hf in a module shared by the engines",
        "llm_classifier.engines.hf_checkpoints:5 imports llm_classifier.engines.hf.runtime in a module shared by the engines",
    ]
    assert heavy_imports_outside_engines(modules) == ["llm_classifier.engines.base:1 imports torch",
                                                      "llm_classifier.engines.trie:3 imports torch",
                                                      "llm_classifier.engines.trie:3 imports torch.nn"]
    assert trie_imports_beyond_numpy(modules) == ["llm_classifier.engines.trie:3 imports torch",
                                                  "llm_classifier.engines.trie:3 imports torch.nn"]


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
