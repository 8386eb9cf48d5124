"""`af.graph_util`: TF1's graph_util functions (freezing and pruning GraphDefs), from
`actorflow.graph_io`."""

from actorflow.graph_io import convert_variables_to_constants, extract_sub_graph

__all__ = ["convert_variables_to_constants", "extract_sub_graph"]
