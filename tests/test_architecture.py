"""The house: the tree is the architecture, and the command line stays light.

Read from the source with ``ast`` (every import, also those inside functions and
``TYPE_CHECKING`` blocks), so nothing here depends on what happens to be imported already:

- every module lives in a layer subpackage; only the facade (``youtu_rag/__init__``),
  ``__main__`` and ``_chroma_hook`` sit at the top;
- imports point down the layers ``model < backends < index < ingest < serve < measure < cli``;
- no cycle among the imports a module runs when it is imported;
- the integrations use only the public API: the names of ``youtu_rag`` itself and of the public
  modules documented in the API reference (:data:`PUBLIC_MODULES`), never a ``_private`` name.

Then, in fresh interpreters: importing the CLI and printing the help of every command loads no
torch, transformers, chromadb or Ray.
"""

from __future__ import annotations

import ast
import graphlib
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "youtu_rag"
INTEGRATIONS = ROOT / "integrations"

#: Lowest first: a module may import its own layer and the ones before it.
LAYERS = ("model", "backends", "index", "ingest", "serve", "measure", "cli")
#: Modules allowed directly under ``youtu_rag/``, outside every layer.
TOP_LEVEL = {"youtu_rag", "youtu_rag.__main__", "youtu_rag._chroma_hook"}
#: The public API besides ``youtu_rag`` itself: the modules the API reference documents
#: (docs/reference.md), whose names without a leading underscore are public.
PUBLIC_MODULES = {
    "youtu_rag.model.embedder",
    "youtu_rag.model.sentence_transformer",
    "youtu_rag.model.texts",
    "youtu_rag.model.profiles",
    "youtu_rag.model.resolution",
    "youtu_rag.model.instructions",
    "youtu_rag.model.pooling",
    "youtu_rag.backends.protocol",
    "youtu_rag.backends.settings",
    "youtu_rag.backends.http",
    "youtu_rag.backends.tencent_cloud",
    "youtu_rag.backends.tencent_rerank",
    "youtu_rag.index.store",
    "youtu_rag.index.chroma_function",
    "youtu_rag.index.prompt",
    "youtu_rag.index.rerank",
    "youtu_rag.index.reembed",
    "youtu_rag.model.reranker",
    "youtu_rag.ingest.pipeline",
    "youtu_rag.ingest.chunking",
    "youtu_rag.index.lexical",
    "youtu_rag.index.analyzer",
    "youtu_rag.index.fusion",
    "youtu_rag.index.fingerprint",
    "youtu_rag.backends.destinations",
    "youtu_rag.ingest.distributed",
    "youtu_rag.measure.evaluation",
}
HEAVY = ("torch", "transformers", "chromadb", "ray")


@dataclass(frozen=True)
class Import:
    """One import statement's target, as the module it names and the names it takes."""

    importer: str
    target: str
    names: tuple[str, ...]
    #: Run when the importer is imported: at module level and not under ``TYPE_CHECKING``.
    at_import: bool
    line: int


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def integration_files() -> list[Path]:
    return sorted(INTEGRATIONS.rglob("*.py"))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path, importer: str, known: set[str]) -> list[Import]:
    """Every ``youtu_rag`` import in the file, wherever it stands."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def visit(node: ast.AST, at_import: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(importer, alias.name, (), at_import, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = importer if is_package else importer.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            names = tuple(alias.name for alias in node.names)
            # ``from youtu_rag.index import store`` imports the module youtu_rag.index.store.
            submodules = [f"{base}.{name}" for name in names if f"{base}.{name}" in known]
            for target in submodules or [base]:
                found.append(Import(importer, target, names, at_import, node.lineno))
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, False)
            for child in node.orelse:
                visit(child, at_import)
            return
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            at_import = False
        for child in ast.iter_child_nodes(node):
            visit(child, at_import)

    visit(tree, True)
    return [item for item in found if item.target.split(".")[0] == "youtu_rag"]


def package_imports() -> list[Import]:
    modules = package_modules()
    known = set(modules)
    return [item for name, path in modules.items() for item in imports_of(path, name, known)]


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_the_graph_is_read_from_the_source() -> None:
    """The checks below would pass vacuously on a graph that missed imports."""
    imports = package_imports()
    deferred = [item for item in imports if not item.at_import]
    assert len(package_modules()) > 40
    assert len(imports) > 100
    # The CLI imports its heavy layers inside command functions, and these are seen too.
    assert any(item.importer.startswith("youtu_rag.cli") for item in deferred)
    assert any(
        item.importer == "youtu_rag" and item.target == "youtu_rag.model.embedder"
        for item in deferred
    )


def test_every_module_lives_in_its_layer() -> None:
    outside = [
        name for name in package_modules() if name not in TOP_LEVEL and layer_of(name) is None
    ]
    assert outside == []
    assert {path.name for path in PACKAGE.iterdir() if path.is_dir()} - {"__pycache__"} == set(
        LAYERS
    )


def test_imports_point_down_the_layers() -> None:
    upward = []
    for item in package_imports():
        source, target = layer_of(item.importer), layer_of(item.target)
        if source is None:
            continue  # the facade, __main__ and the Chroma hook sit above every layer
        if target is None:
            # A layer never reaches back up to the facade (nor anything else at the top).
            upward.append(f"{item.importer}:{item.line} imports {item.target}")
        elif LAYERS.index(target) > LAYERS.index(source):
            upward.append(f"{item.importer}:{item.line} ({source}) imports {item.target}")
    assert upward == []


def test_no_import_cycle() -> None:
    """Among the imports that run at import time (function-level and ``TYPE_CHECKING``
    imports cannot make an import-time cycle)."""
    graph: dict[str, set[str]] = {name: set() for name in package_modules()}
    for item in package_imports():
        if item.at_import and item.target in graph and item.target != item.importer:
            graph[item.importer].add(item.target)
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")
    assert len(order) == len(graph)


def test_integrations_use_only_the_public_api() -> None:
    known = set(package_modules())
    private = []
    for path in integration_files():
        name = module_name(path, INTEGRATIONS)
        for item in imports_of(path, name, known):
            where = f"{path.relative_to(ROOT)}:{item.line}"
            if item.target not in {"youtu_rag", *PUBLIC_MODULES}:
                private.append(f"{where} imports {item.target}")
            private += [f"{where} imports {n}" for n in item.names if n.startswith("_")]
    assert private == []


def test_public_modules_exist_and_are_documented() -> None:
    """The rule above means something only if those modules are real and in the reference."""
    reference = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    assert set(package_modules()) >= PUBLIC_MODULES
    for module in PUBLIC_MODULES:
        assert f"::: {module}" in reference, module


def _run(code: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(INTEGRATIONS)])}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


_HEAVY_LOADED = f"""
def heavy_loaded():
    return sorted(
        name for name in sys.modules if name.split(".")[0] in {HEAVY!r}
    )
"""


def test_importing_the_cli_loads_no_heavy_library() -> None:
    report = _run(
        "import json, sys\nimport youtu_rag.cli\n"
        + _HEAVY_LOADED
        + "print(json.dumps({'heavy': heavy_loaded(), 'app': type(youtu_rag.cli.app).__name__}))"
    )
    assert report == {"heavy": [], "app": "Typer"}


def test_every_help_runs_without_heavy_libraries() -> None:
    """``youtu-rag --help`` and the help of every command and sub-command, in one process."""
    report = _run(
        "import json, sys\nimport typer.main\nfrom typer.testing import CliRunner\n"
        "from youtu_rag.cli import app\n"
        + _HEAVY_LOADED
        + """
def paths(command, prefix=()):
    yield prefix
    for name, sub in getattr(command, "commands", {}).items():
        yield from paths(sub, (*prefix, name))

runner = CliRunner()
helps = {}
for path in paths(typer.main.get_command(app)):
    result = runner.invoke(app, [*path, "--help"])
    helps[" ".join(path)] = [result.exit_code, "Usage" in result.output]
print(json.dumps({"helps": helps, "heavy": heavy_loaded()}))
"""
    )
    helps = report["helps"]
    assert isinstance(helps, dict)
    for command in ("", "index", "search", "ask", "info", "serve", "eval", "verify", "bench"):
        assert command in helps, command
    assert any(command.startswith("bench ") for command in helps)
    assert {command: result for command, result in helps.items() if result != [0, True]} == {}
    assert report["heavy"] == []
