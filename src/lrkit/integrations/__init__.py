"""Integrations of lrkit with training frameworks.

Each submodule imports its framework only when its objects are first used, so ``import lrkit`` (and
``import lrkit.integrations``) never imports a framework:

- :mod:`lrkit.integrations.lightning`: ``MonitorCallback``, :class:`lrkit.Monitor` as a PyTorch Lightning callback.
- :mod:`lrkit.integrations.transformers`: ``MonitorCallback``, :class:`lrkit.Monitor` as a HF ``Trainer`` callback.
"""
