"""`af.sim`: many virtual workers on virtual time against the production update path (issue
17). See `actorflow.sim.simulator`.

    with af.Graph().as_default():
        model = af.sim.SplitModel(af.train.StalenessScaledSGD(0.5), x, y, tx, ty, (64, 64, 10))
        with af.Session() as s:
            s.run(af.global_variables_initializer())
            report = af.sim.simulate(model, s, af.sim.SimConfig(workers=100, steps=5))
"""

from actorflow.sim.simulator import SimConfig, SimReport, simulate
from actorflow.sim.split_model import ElasticSplitModel, SplitModel

__all__ = ["ElasticSplitModel", "SimConfig", "SimReport", "SplitModel", "simulate"]
