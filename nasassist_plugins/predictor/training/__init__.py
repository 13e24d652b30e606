"""The predictor's training pipeline (not needed to score architectures).

Only this subpackage reads benchmark families (:mod:`nasassist_plugins.families`); the
runtime in :mod:`nasassist_plugins.predictor` scores graphs with saved weights alone.

- :mod:`.pipeline`: ``TrainingConfig``, ``train_predictor`` (pre-training, supervised
  training, GMM gate, mixture-of-experts regressor) and ``LabelledSet``;
- :mod:`.pretrain`: contrastive/reconstruction pre-training of the graph encoder;
- :mod:`.tasks`: benchmark (family, task) tables turned into labelled sets;
- :mod:`.zoo`: generated ResNet/MobileNet-style networks for pre-training variety.
"""
