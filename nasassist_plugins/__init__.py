"""NAS-Assist: cheaper neural architecture search inside Optuna and NNI.

Subpackages:
    graph      framework-agnostic computational graphs (one vocabulary for all adapters)
    adapters   model source -> graph (PyTorch, ONNX, benchmark cells)
    families   benchmark data loaders (NB101, NB201, NB301, TransNAS-Bench-101 micro)
    cli        the ``nasassist`` command
"""

__version__ = "0.1.0"
