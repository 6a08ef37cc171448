"""Every picture lrkit draws, from saved records only (matplotlib with the Agg backend, imported lazily).

One module per record kind: ``finder`` (range-test curves), ``schedule`` (LR/momentum vs step),
``results`` (a training run's results.csv), ``monitor`` (health events on a run's curves).
"""
