"""NAS-Assist: cheaper neural architecture search inside Optuna and NNI.

Subpackages:
    graph      framework-agnostic computational graphs (one vocabulary for all adapters)
    adapters   model source -> graph (PyTorch, ONNX, benchmark cells)
    families   benchmark data loaders (NB101, NB201, NB301, TransNAS-Bench-101 micro)
    predictor  zero-shot performance predictor (encoder, GMM gate, mixture of experts)
    proxies    zero-cost proxies and per-module saliency
    relevance  layer relevance by masking, and report plots
    curves     learning-curve extrapolation (shared by the Optuna pruner and the NNI assessor)
    cli        the ``nasassist`` command
"""

__version__ = "0.1.0"
