"""From a graph to running work: the graph IR, pruning, rewrites, placement, partitioning,
the dataflow executor, rendezvous, and master and worker logic.

`scheduler` consumes the serializable IR in `scheduler.graphdef`, never actorflow's Python graph
objects, and imports only `devices` and `transport`.
"""
