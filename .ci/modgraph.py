#!/usr/bin/env python3
"""Fails if the module graph of src/ has a cycle.

Every `crate::a::b` path in a module (outside `#[cfg(test)] mod … { … }` blocks and
comments) is an edge from that module to the longest module prefix it names. The graph
must be acyclic: every dependency points down (see the module list in src/lib.rs).
Usage: .ci/modgraph.py [SRC]   (prints the cycles and exits 1 if there are any)
"""
import os
import re
import sys


def modules(src):
    found = {}
    for root, _, files in os.walk(src):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(root, name)
            parts = os.path.relpath(path, src)[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            found["::".join(parts)] = path
    return found


def without_tests_and_comments(text):
    text = re.sub(r"//[^\n]*", "", text)
    out, pos = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < pos:
            continue
        out.append(text[pos:m.start()])
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        pos = i
    out.append(text[pos:])
    return "".join(out)


def paths(text):
    """Module paths named by `use crate::…;` items (one level of braces) and inline
    `crate::…` paths."""
    for use in re.finditer(r"\buse\s+crate::([^;]+);", text, re.S):
        body = re.sub(r"\s+", "", use.group(1))
        m = re.match(r"([\w:]*?)::\{(.*)\}$", body)
        if not m:
            yield body.split("as")[0].split("::")
            continue
        prefix = [p for p in m.group(1).split("::") if p]
        for item in re.split(r",(?![^{]*\})", m.group(2)):
            item = item.split("{")[0]
            yield prefix + [p for p in item.split("::") if p and p != "self"]
    for q in re.finditer(r"\bcrate::((?:\w+::)*\w+)", text):
        yield q.group(1).split("::")


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "src"
    mods = modules(src)
    edges = {m: set() for m in mods}
    for m, path in mods.items():
        with open(path) as f:
            text = without_tests_and_comments(f.read())
        for p in paths(text):
            for n in range(len(p), 0, -1):
                target = "::".join(p[:n])
                if target in mods:
                    if target != m:
                        edges[m].add(target)
                    break
    # Tarjan's strongly connected components.
    index, low, stack, on, cycles = {}, {}, [], set(), []
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(mods):
        if v not in index:
            visit(v)
    for c in cycles:
        print("cycle:", " <-> ".join(c), file=sys.stderr)
        for a in c:
            for b in sorted(edges[a] & set(c)):
                print(f"  {a} uses {b}", file=sys.stderr)
    n_edges = sum(len(e) for e in edges.values())
    print(f"module graph: {len(mods)} modules, {n_edges} edges, {len(cycles)} cycles")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
