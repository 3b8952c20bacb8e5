"""docs/architecture.md's layers stay true: every import in the package goes to its own layer or one before it."""

import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "kerlym")  # the source tree, wherever kerlym is installed from
DOC = os.path.join(ROOT, "docs", "architecture.md")
# The one import that goes up on purpose: Agent.learn hands the agent to the session.
ALLOWED_UP = {("kerlym.agents.base", "kerlym.session")}
OUTSIDE = {"kerlym", "kerlym.__main__"}  # the package's lazy __init__ and `python -m kerlym`


def documented_layers() -> dict[str, int]:
    """Module name -> layer number, from the numbered list under "## Layers"."""
    text = open(DOC).read()
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    layers = {}
    for number, names in re.findall(r"^(\d+)\. (.+)$", section, flags=re.M):
        for name in re.findall(r"`([\w.]+)`", names):
            layers[name] = int(number)
    return layers


def package_modules() -> dict[str, str]:
    """Every module of the package by dotted name -> its file."""
    out = {}
    for folder, _, files in os.walk(PACKAGE):
        for file in files:
            if file.endswith(".py"):
                path = os.path.join(folder, file)
                parts = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].split(os.sep)
                out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(name: str, path: str, modules) -> set[str]:
    """The package modules ``name`` imports, anywhere in the file (inside functions too)."""
    found = set()
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
            candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in modules:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name and not candidate.startswith(name + "."):
                found.add(candidate)
                break  # `from kerlym import config` is kerlym.config, not the package too
    return found


def layer_of(module: str, layers: dict[str, int]) -> int | None:
    while module:
        if module in layers:
            return layers[module]
        module = module.rpartition(".")[0]
    return None


def test_every_module_has_a_documented_layer():
    layers = documented_layers()
    assert len(layers) >= 30
    missing = [m for m in package_modules() if m not in OUTSIDE and layer_of(m, layers) is None]
    assert missing == []


def test_imports_flow_one_way():
    layers = documented_layers()
    modules = package_modules()
    upward = []
    for name, path in modules.items():
        if name in OUTSIDE:
            continue
        for target in imports(name, path, modules):
            if target in OUTSIDE or (name, target) in ALLOWED_UP:
                continue
            if layer_of(target, layers) > layer_of(name, layers):
                upward.append(f"{name} ({layer_of(name, layers)}) -> {target} ({layer_of(target, layers)})")
    assert upward == []


def test_the_check_sees_imports_inside_functions():
    modules = package_modules()
    assert "kerlym.session" in imports("kerlym.agents.base", modules["kerlym.agents.base"], modules)
    assert "kerlym.agents" in imports("kerlym.make", modules["kerlym.make"], modules)
