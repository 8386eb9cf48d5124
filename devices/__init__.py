"""The ground floor: dtypes, errors, device actors, kernels and memory pools.

Nothing here knows about graph building or the transport; every other layer imports this one.
"""
