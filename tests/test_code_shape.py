"""The shape rules of the code base, checked on the source: module and function sizes, and the import graph.

- No module under `hf_dlp/` over 500 lines, no function over 80 lines (its docstring not counted: the `Examples:`
  blocks are documentation, not logic).
- One package per capability (`analysis`, `extrapolation`, `training`) with shared foundations below them: a capability
  never imports another one, nor the layers above them (`sweeps`, `demo`, `commands`); `analysis` and
  `extrapolation` do not import `evaluation` either. `importlib.import_module` calls count as imports.
- No import cycles, apart from imports inside `TYPE_CHECKING` blocks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "hf_dlp"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
CAPABILITIES = ("analysis", "extrapolation", "training")
ABOVE_CAPABILITIES = ("sweeps", "demo", "commands", "cli")


def _relative(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


def _function_lengths(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            start = node.body[0]
            if (
                isinstance(start, ast.Expr)
                and isinstance(start.value, ast.Constant)
                and isinstance(start.value.value, str)
            ):
                docstring_lines = start.end_lineno - start.lineno + 1
            else:
                docstring_lines = 0
            yield node.name, node.lineno, node.end_lineno - node.lineno + 1 - docstring_lines


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """The ids of the nodes inside `if TYPE_CHECKING:` blocks (imports for annotations only, never run)."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside.update(id(child) for child in ast.walk(node))
    return inside


def _imported_modules(path: Path, *, type_checking: bool = True) -> set[str]:
    """Absolute names of every hf_dlp module `path` imports, at module level or inside functions, with `import`
    statements or `importlib.import_module("hf_dlp....")`; `type_checking=False` leaves out `TYPE_CHECKING` blocks."""
    package_parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if package_parts[-1] == "__init__":
        package_parts = package_parts[:-1]
    else:
        package_parts = package_parts[:-1]
    names = set()
    tree = ast.parse(path.read_text())
    skipped = set() if type_checking else _type_checking_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module") and node.args:
            if isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names.add(node.args[0].value)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return {name for name in names if name == "hf_dlp" or name.startswith("hf_dlp.")}


def test_no_module_is_too_long():
    long = {_relative(path): n for path in MODULES if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_is_too_long():
    long = [
        f"{_relative(path)}:{line} {name} ({length} lines)"
        for path in MODULES
        for name, line, length in _function_lengths(ast.parse(path.read_text()))
        if length > MAX_FUNCTION_LINES
    ]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (docstrings excluded): {long}"


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_a_capability_imports_no_other_capability_nor_a_layer_above(capability):
    forbidden = [f"hf_dlp.{name}" for name in (*CAPABILITIES, *ABOVE_CAPABILITIES) if name != capability]
    if capability in ("analysis", "extrapolation"):
        forbidden.append("hf_dlp.evaluation")
    found = {
        _relative(path): sorted(name for name in _imported_modules(path) if name.startswith(tuple(forbidden)))
        for path in sorted((PACKAGE / capability).rglob("*.py"))
    }
    found = {module: names for module, names in found.items() if names}
    assert (PACKAGE / capability).is_dir(), f"hf_dlp/{capability}/ is missing"
    assert not found, f"hf_dlp.{capability} imports what it must not: {found}"


def test_foundations_import_no_capability():
    foundations = [path for path in PACKAGE.glob("*.py") if path.stem not in ("__init__", "cli")]
    forbidden = tuple(f"hf_dlp.{name}" for name in (*CAPABILITIES, *ABOVE_CAPABILITIES))
    found = {
        _relative(path): sorted(name for name in _imported_modules(path) if name.startswith(forbidden))
        for path in foundations
    }
    found = {module: names for module, names in found.items() if names}
    assert not found, f"foundation modules import capabilities: {found}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_cycles() -> list[list[str]]:
    """The strongly connected groups of hf_dlp modules (Tarjan) in the graph of run-time imports."""
    modules = {_module_name(path): path for path in MODULES}
    graph = {
        name: {m for m in _imported_modules(path, type_checking=False) if m in modules and m != name}
        for name, path in modules.items()
    }
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for child in graph[node]:
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in on_stack:
                low[node] = min(low[node], index[child])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                cycles.append(sorted(group))

    for name in graph:
        if name not in index:
            visit(name)
    return cycles


def test_the_import_graph_has_no_cycles():
    """No two modules import each other, directly or through others, at run time (function-level and
    `importlib.import_module` imports count; `TYPE_CHECKING` blocks do not)."""
    assert not _import_cycles()


def test_importlib_imports_are_seen(tmp_path, monkeypatch):
    assert "hf_dlp.sweeps" not in _imported_modules(PACKAGE / "extrapolation" / "__init__.py")  # the 0.2 shim is gone
    probe = tmp_path / "hf_dlp" / "analysis" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text('import importlib\n\nimportlib.import_module("hf_dlp.sweeps")\n')
    monkeypatch.setitem(globals(), "PACKAGE", tmp_path / "hf_dlp")
    assert _imported_modules(probe) == {"hf_dlp.sweeps"}


PUBLIC_PACKAGES = (
    "hf_dlp.analysis",
    "hf_dlp.extrapolation",
    "hf_dlp.training",
    "hf_dlp.sweeps",
    "hf_dlp.toy",
    "hf_dlp.demo",
    "hf_dlp.arguments",
    "hf_dlp.evaluation",
    "hf_dlp.generation",
    "hf_dlp.loading",
    "hf_dlp.model_pair",
    "hf_dlp.rewards",
    "hf_dlp.distributed",
    "hf_dlp.model_specs",
    "hf_dlp.demo.presets",
    "hf_dlp.demo.training",
    "hf_dlp.sweeps.cells",
)


@pytest.mark.parametrize("package", PUBLIC_PACKAGES)
def test_every_public_class_has_a_runnable_example(package):
    import importlib
    import inspect

    module = importlib.import_module(package)
    missing = []
    for name in module.__all__:
        value = getattr(module, name)
        if inspect.isclass(value) and value.__module__.startswith("hf_dlp"):
            doc = inspect.getdoc(value) or ""
            if "Examples:" not in doc or ">>>" not in doc:
                missing.append(name)
    assert not missing, f"public classes of {package} without a runnable `Examples:` block: {missing}"


def test_the_demo_is_not_in_the_library_namespace():
    import hf_dlp

    assert not {"DemoConfig", "run_demo"} & set(hf_dlp.__all__)
    with pytest.raises(AttributeError):
        hf_dlp.run_demo  # noqa: B018


def test_one_record_store_for_sweep_cells_and_demo_stages(tmp_path):
    """Both resumable stores read and write their files through `hf_dlp.records.RecordStore` (no second writer)."""
    import inspect

    from hf_dlp.demo import stages
    from hf_dlp.sweeps import cells

    for module in (cells, stages):
        source = inspect.getsource(module)
        assert "RecordStore(" in source and "write_text(" not in source and "os.replace" not in source, module
    store = cells.CellStore(tmp_path, {"seed": 0})
    store.run({"selection": "random", "tau": 0.5}, lambda: {"avg_at_k": 0.5})
    (tmp_path / cells.CELLS_DIR / f"{store.computed[0]}.json").write_text("{not json")  # a damaged record: redone
    again = cells.CellStore(tmp_path, {"seed": 0})
    assert again.run({"selection": "random", "tau": 0.5}, lambda: {"avg_at_k": 0.25}) == {"avg_at_k": 0.25}
    assert again.computed == store.computed
