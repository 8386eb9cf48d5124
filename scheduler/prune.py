"""Partial execution (WP §4.2): rewrite a graph for one (feeds, fetches, targets) signature.

Each fed tensor is replaced by a `_Arg` node (reading the step's feed by index), each fetched
tensor gets a `_Retval` node (writing the step's result by index), and everything the fetches
and targets do not need — walking backwards from them, stopping at fed tensors — is dropped.

    pruned = prune(graph, feeds=["b:0"], fetches=["f:0"], targets=[])
    # nodes: _arg_0, the nodes between b and f, _retval_0; d and e are gone (WP Fig. 6)
"""

from __future__ import annotations

import difflib

from devices.errors import InvalidArgumentError, NotFoundError
from scheduler.graphdef import GraphDef, NodeDef, parse_input


def canonical(tensor_name: str) -> str:
    name, port = parse_input(tensor_name)
    return f"{name}:{port}"


def prune(graph: GraphDef, feeds: list[str], fetches: list[str], targets: list[str],
          by_name: dict[str, NodeDef] | None = None) -> GraphDef:
    """Return the sub-graph that computes `fetches` and runs `targets` given `feeds`."""
    by_name = by_name if by_name is not None else graph.by_name()
    feeds = [canonical(f) for f in feeds]
    fetches = [canonical(f) for f in fetches]
    for t in feeds + fetches:
        _check_tensor(t, by_name, "fed" if t in feeds else "fetched")
    for t in targets:
        if t not in by_name:
            raise NotFoundError(f"target operation '{t}' is not in the graph"
                                + _suggest(t, by_name))
    fed = {t: i for i, t in enumerate(feeds)}
    if len(fed) != len(feeds):
        raise InvalidArgumentError("the same tensor is fed twice")

    needed: set[str] = set()
    stack = [parse_input(t)[0] for t in fetches if t not in fed] + list(targets)
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        for spec in by_name[name].inputs:
            if spec.startswith("^"):
                stack.append(spec[1:])
            elif canonical(spec) not in fed:
                stack.append(parse_input(spec)[0])

    used_feeds: set[str] = set()
    out: list[NodeDef] = []
    for nd in graph.nodes:
        if nd.name not in needed:
            continue
        ins = []
        for spec in nd.inputs:
            if not spec.startswith("^") and canonical(spec) in fed:
                t = canonical(spec)
                used_feeds.add(t)
                ins.append(f"_arg_{fed[t]}:0")
            else:
                ins.append(spec)
        if ins != nd.inputs:
            nd = NodeDef(nd.name, nd.op, ins, nd.device, nd.attrs, nd.out_dtypes, nd.out_shapes)
        out.append(nd)
    for i, t in enumerate(fetches):
        if t in fed:
            used_feeds.add(t)
            src = f"_arg_{fed[t]}:0"
        else:
            src = t
        name, port = parse_input(t)
        p = by_name[name]
        out.append(NodeDef(f"_retval_{i}", "_Retval", [src], "", {"index": i},
                           [], []))
    args = []
    for t, i in fed.items():
        if t in used_feeds:
            name, port = parse_input(t)
            p = by_name[name]
            args.append(NodeDef(f"_arg_{i}", "_Arg", [], "", {"index": i},
                                [p.out_dtypes[port]], [p.out_shapes[port]]))
    return GraphDef(args + out, graph.version)


def _check_tensor(t: str, by_name: dict[str, NodeDef], what: str) -> None:
    name, port = parse_input(t)
    nd = by_name.get(name)
    if nd is None:
        raise NotFoundError(f"{what} tensor '{t}' is not in the graph (no operation "
                            f"'{name}')" + _suggest(name, by_name))
    if port >= len(nd.out_dtypes):
        raise NotFoundError(f"{what} tensor '{t}': operation '{name}' ({nd.op}) has "
                            f"{len(nd.out_dtypes)} output(s)")


def _suggest(name: str, by_name: dict[str, NodeDef]) -> str:
    close = difflib.get_close_matches(name, list(by_name), n=3)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
