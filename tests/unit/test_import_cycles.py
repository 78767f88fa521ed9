"""No import cycles inside tunewise: every package, including ones added later, as grimp sees it.

grimp reads every import statement, also those inside functions and under TYPE_CHECKING: a cycle
hidden behind a lazy import is still two modules that each need the other.
"""

from __future__ import annotations

import grimp

PACKAGE = "tunewise"


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _loop_through(graph: grimp.ImportGraph, component: list[str]) -> str:
    """One concrete loop in a component, each hop with the line that imports."""
    start = component[0]
    first = next(m for m in sorted(graph.find_modules_directly_imported_by(start)) if m in component)
    chain = [start, *graph.find_shortest_chain(importer=first, imported=start)]
    hops = []
    for importer, imported in zip(chain, chain[1:]):
        details = graph.get_import_details(importer=importer, imported=imported)
        where = f" (line {details[0]['line_number']}: {details[0]['line_contents']})" if details else ""
        hops.append(f"  {importer} -> {imported}{where}")
    return "\n".join(hops)


def test_no_import_cycles_in_the_package():
    graph = grimp.build_graph(PACKAGE, cache_dir=None)
    assert len(graph.modules) > 50  # the whole package was walked, not an empty stub
    cycles = _cycles(graph)
    report = "\n\n".join(f"cycle among {', '.join(c)}:\n{_loop_through(graph, c)}" for c in cycles)
    assert not cycles, f"import cycles inside {PACKAGE}:\n\n{report}"


def test_the_cycle_check_finds_a_planted_cycle():
    graph = grimp.build_graph(PACKAGE, cache_dir=None)
    graph.add_import(importer="tunewise.errors", imported="tunewise.spec", line_number=1, line_contents="planted")
    cycles = _cycles(graph)
    assert any("tunewise.errors" in c and "tunewise.spec" in c for c in cycles)
    loop = _loop_through(graph, next(c for c in cycles if "tunewise.errors" in c))
    assert "tunewise.errors -> tunewise.spec (line 1: planted)" in loop
