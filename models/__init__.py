"""Reference models and their data: the digits set, logistic regression and an MLP, built
with actorflow's graph API and shared by tests, benchmarks and the `actorflow train` command.
"""

from models import common, digits, logistic, mlp
from models.common import Model, evaluate, fit, make_optimizer

__all__ = ["common", "digits", "logistic", "mlp", "Model", "evaluate", "fit", "make_optimizer"]
