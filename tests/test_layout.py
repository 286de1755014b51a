"""The package shows the pipeline: each layer imports only from the layers below it, and no
module imports itself back through another."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "generator"
# Layers from the top: the command line, the preview server, the pipeline, its stages, the
# four kinds of work they call, and the helpers everything may use.
LAYERS = [
    ("generator.__main__",),
    ("generator.cli",),
    ("generator.serve",),
    ("generator.pipeline",),
    ("generator.stages",),
    ("generator.site", "generator.figures", "generator.inputs", "generator.analysis"),
    ("generator.cache", "generator.buildlock", "generator.childproc", "generator.progress", "generator.errors",
     "generator"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    if module == "generator":  # the package itself: its version
        return len(LAYERS) - 1
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes if p != "generator"):
            return rank
    raise AssertionError(f"{module} is in no layer")


def package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("generator"):
            for alias in node.names:
                # "from generator.figures import common" imports the module generator.figures.common.
                submodule = PACKAGE.parent / f"{node.module}.{alias.name}".replace(".", "/")
                is_module = submodule.with_suffix(".py").exists() or submodule.is_dir()
                found.add(f"{node.module}.{alias.name}" if is_module else node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; the project imports by full name")
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("generator"))
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(path): imports(path) for path in PACKAGE.rglob("*.py")}


def test_imports_only_point_down():
    for module, targets in graph().items():
        for target in targets:
            # Down; or sideways within one package, or within the two lowest layers (the cycle test
            # below keeps those acyclic).
            sideways = package_of(target) == package_of(module) or layer_of(target) == layer_of(module) >= 5
            assert layer_of(target) > layer_of(module) or sideways, f"{module} imports {target}, a layer above it"


def test_no_import_cycles():
    edges = graph()
    modules = set(edges)

    def visit(module, trail):
        for target in edges.get(module, ()):
            target = target if target in modules else target.rsplit(".", 1)[0]
            if target in trail:
                raise AssertionError(" -> ".join([*trail, target]))
            if target in modules and target != module:
                visit(target, [*trail, target])

    for module in modules:
        visit(module, [module])
