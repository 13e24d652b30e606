"""Layer relevance: how much each layer of a model contributes to its predicted score.

Two views of the same question, keyed by the same qualified module names so a report
can put them side by side:

* :func:`layer_relevance` — predictor-driven (the thesis's masking algorithm): mask one
  layer at a time (its nodes become identity placeholders, see :mod:`.masking`),
  re-predict, and read each layer's contribution off the drop from the baseline score;
* :func:`data_driven_relevance` — training-free saliency of each parameterised module
  (SynFlow or SNIP summed per module, :func:`~nasassist_plugins.proxies.module_saliency`).

Normalisation (both views, :func:`normalise_contributions`):

* ``delta`` — the raw drop, ``reference_mean - masked_mean`` on the predictor's scale
  (positive: the prediction falls without the layer, so the layer helps). The reference
  is the baseline prediction, except for a layer inside a block that the predictor's
  coarsening folds with identical siblings (``layer1.1`` of ``layer1.0..2``): masking
  the layer also stops that folding, so its reference is the baseline with the block
  kept apart (:func:`~nasassist_plugins.predictor.coarsen.keep_block_apart`) and the two
  graphs differ by the layer alone;
* ``weight`` — drops clipped at 0 and divided by their sum, so weights are non-negative
  and sum to 1 whenever any drop is positive (all 0 otherwise);
* ``signed_weight`` — drops divided by the sum of their absolute values: in [-1, 1],
  absolute values sum to 1, and the sign keeps the layers whose removal *raises* the
  prediction (the negative relevances of the thesis's annotated-code prompt).

Quick use::

    from nasassist_plugins.relevance import layer_relevance, data_driven_relevance
    table = layer_relevance(predictor, model, example_input=(1, 3, 32, 32))
    print(table.to_markdown())
    saliency = data_driven_relevance(model, (8, 3, 32, 32), method="synflow")
"""

from nasassist_plugins.errors import RelevanceError
from nasassist_plugins.relevance.contributions import (
    NORMALISATION,
    RelevanceRow,
    RelevanceTable,
    SaliencyRow,
    SaliencyTable,
    data_driven_relevance,
    layer_relevance,
    normalise_contributions,
)
from nasassist_plugins.relevance.masking import (
    Layer,
    graph_layers,
    mask_layer,
    mask_nodes,
)

__all__ = [
    "Layer",
    "NORMALISATION",
    "RelevanceError",
    "RelevanceRow",
    "RelevanceTable",
    "SaliencyRow",
    "SaliencyTable",
    "data_driven_relevance",
    "graph_layers",
    "layer_relevance",
    "mask_layer",
    "mask_nodes",
    "normalise_contributions",
]
