"""`af.sim`: many virtual workers on virtual time against the production update path (issue
17). See `actorflow.sim.simulator`.

    with af.Graph().as_default():
        model = af.sim.SplitModel(af.train.StalenessScaledSGD(0.5), x, y, tx, ty, (64, 64, 10))
        with af.Session() as s:
            s.run(af.global_variables_initializer())
            report = af.sim.simulate(model, s, af.sim.SimConfig(workers=100, steps=5))

`SimConfig(ssp_bound=s)` bounds how far a worker may run ahead (SSP), `aggregate=k` is
synchronous replication with n - k backup workers, `ElasticSplitModel` is EASGD (worker-local
copies, an elastic pull every tau steps). `actorflow train mlp --rule R --simulate N` and
`--compare R,R,...` (models/rules.py) run the built-in rules on it.
"""

from actorflow.sim.simulator import SimConfig, SimReport, simulate
from actorflow.sim.split_model import ElasticSplitModel, SplitModel

__all__ = ["ElasticSplitModel", "SimConfig", "SimReport", "SplitModel", "simulate"]
