"""``actorflow.client``: tools a client uses to look at a run (TF's ``tensorflow.python.client``):
`timeline` (step traces as Chrome/Perfetto files), `cluster_status` (every task's state,
``actorflow status``) and `doctor` (why a step is stuck, ``actorflow doctor``)."""
