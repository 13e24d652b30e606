"""Zero-shot performance predictor: graph encoder -> GMM soft clusters -> mixture of experts.

Public API::

    from nasassist_plugins.predictor import Predictor
    predictor = Predictor.load_default()          # or Predictor.load(path)
    shared = default_predictor()                  # loaded once per process, read-only
    mean, std = predictor.predict(graphs_or_modules, example_input=(1, 3, 32, 32))
    predictor.fit(graphs, values)                 # few-shot adaptation to a new family/study
"""

from nasassist_plugins.predictor.clustering import SoftClusterer
from nasassist_plugins.predictor.coarsen import coarsen
from nasassist_plugins.predictor.encoded import EncodedArchitectures
from nasassist_plugins.predictor.encoder import EMBEDDING_DIM, GraphEncoder
from nasassist_plugins.predictor.moe import MixtureOfExpertsRegressor
from nasassist_plugins.predictor.persistence import default_predictor
from nasassist_plugins.predictor.predictor import Predictor, PredictorError

__all__ = [
    "Predictor",
    "PredictorError",
    "EncodedArchitectures",
    "GraphEncoder",
    "SoftClusterer",
    "MixtureOfExpertsRegressor",
    "coarsen",
    "EMBEDDING_DIM",
    "default_predictor",
]
