"""The package's shape: no import cycles between modules, and the proxy spec grammar in one
module that every command shares."""

import ast
from pathlib import Path

import pytest

import vitnas
from vitnas.bench.correlate import scoreboard_specs
from vitnas.errors import ConfigError
from vitnas.proxies import resolve_proxies
from vitnas.proxies.spec import ALIASES, expand_proxy_specs, get_proxy

SRC = Path(vitnas.__file__).parent


def module_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules it imports (a ``from package import submodule`` counts as the
    submodule; any other ``from package import name`` as the package)."""
    modules = {}
    for path in root.rglob("*.py"):
        parts = ("vitnas", *path.relative_to(root).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                subs = {f"{target}.{a.name}" for a in node.names} & modules.keys()
                targets = subs or ({target} & modules.keys())
                graph[name] |= targets - {name}
            elif isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names} & modules.keys()
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles_in_src():
    graph = module_graph(SRC)
    assert "vitnas.proxies.spec" in graph and "vitnas.search.constraints" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_only_the_spec_module_parses_proxy_specs():
    """Every other module goes through ``proxies.spec`` (no second parser of the grammar)."""
    parsers = [p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py")
               if any(isinstance(n, ast.FunctionDef) and n.name in
                      ("parse_proxy_spec", "get_proxy", "expand_proxy_specs")
                      for n in ast.walk(ast.parse(p.read_text())))]
    assert parsers == ["proxies/spec.py"]


def test_aliases_mean_the_same_everywhere():
    registered = expand_proxy_specs("registered")
    everything = expand_proxy_specs("all")
    assert set(registered) < set(everything) and "lga:epochs=1" in everything
    assert set(ALIASES.get("vintk-variants")()) < set(everything)
    # the scoreboard's 'all' is the same list (plus the baselines it always adds)
    board = scoreboard_specs("all")
    assert {p.spec for p in resolve_proxies("all")} == set(board)


def test_resolve_parses_once_and_keeps_one_of_each_configuration():
    sigma = get_proxy("vintk").config.sigma
    proxies = resolve_proxies(f"vintk,vintk:sigma={sigma},dss")
    assert [p.name for p in proxies] == ["vintk", "dss"]
    assert resolve_proxies([proxies[0], "dss"])[0] is proxies[0]
    with pytest.raises(ConfigError, match="unknown proxy 'nope'"):
        resolve_proxies("dss,nope")


def test_committed_result_files_are_strict_json():
    import json

    results = Path(__file__).resolve().parents[1] / "results"
    files = sorted(results.rglob("*.json"))
    assert files, "no committed result files found"

    def reject(token):
        raise ValueError(token)

    bad = []
    for path in files:
        try:
            json.loads(path.read_text(), parse_constant=reject)
        except ValueError as err:
            bad.append(f"{path.relative_to(results)}: {err}")
    assert not bad, "non-standard JSON tokens (write them with vitnas.formatting.dumps_strict): " \
        + "; ".join(bad)
