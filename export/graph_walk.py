"""Walking an ONNX graph together with the subgraphs (If branches) inside its nodes."""

from __future__ import annotations


def subgraphs(node) -> list:
    """The GraphProtos of `node`'s graph attributes (an If's two branches; none for most nodes)."""
    from onnx import AttributeProto

    return [attribute.g for attribute in node.attribute if attribute.type == AttributeProto.GRAPH]


def all_nodes(graph):
    """The nodes of `graph` and of the subgraphs inside them, each node before its subgraphs' nodes."""
    yield from nodes_within(graph.node)


def nodes_within(nodes):
    """`nodes` (a graph's, or a list of NodeProtos) and the nodes of their subgraphs, themselves, not copies."""
    for node in nodes:
        yield node
        for subgraph in subgraphs(node):
            yield from nodes_within(subgraph.node)
