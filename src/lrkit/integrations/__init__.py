"""Integrations of lrkit with training frameworks.

Each submodule imports its framework only when its objects are first used, so ``import lrkit`` (and
``import lrkit.integrations``) never imports a framework:

- :mod:`lrkit.integrations.lightning`: PyTorch Lightning callbacks — ``MonitorCallback`` (:class:`lrkit.Monitor`),
  ``FindLRCallback`` (:func:`lrkit.find_lr` at the fit's start) and ``ChooseLRCallback`` (``lr0="auto"`` for the fit:
  :func:`lrkit.train.auto.choose_lr0` on its own schedule, recorded and replayed compressed).
- :mod:`lrkit.integrations.transformers`: for a Hugging Face ``Trainer`` — ``MonitorCallback``
  (:class:`lrkit.Monitor`), ``find_trainer_lr`` (the range test) and ``choose_trainer_lr`` (``lr0="auto"``).
"""
