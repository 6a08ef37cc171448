"""Training health: see a wrong learning rate while it happens, and recover.

:class:`Monitor` runs small pure checks (:mod:`lrkit.monitor.checks`) over a rolling record of the loss, the
gradient norm, the update-to-weight ratio and (when you pass them) the validation losses, and acts
(:mod:`lrkit.monitor.actions`): warn, clip, skip the step, roll back to the last healthy snapshot (or, for a rising
validation loss, the best-validation one) with an LR back-off that survives the scheduler, or stop.

>>> import torch, lrkit
>>> model = torch.nn.Linear(3, 1)
>>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
>>> monitor = lrkit.Monitor(model, opt, on_divergence="rollback")
>>> [c.name for c in monitor.checks]
['non_finite', 'loss_spike', 'gradient_blowup', 'loss_rising', 'oscillation', 'exploding_gradients', 'lr_too_low', \
'val_rising']
"""

from lrkit.monitor.actions import ACTIONS, MonitorWarning, backoff_lr
from lrkit.monitor.checks import (
    Check,
    ExplodingGradients,
    Finding,
    GradientBlowup,
    LossAboveStart,
    LossRising,
    LossSpike,
    LRTooLow,
    NonFinite,
    Oscillation,
    ValidationRising,
    default_checks,
)
from lrkit.monitor.monitor import Monitor, MonitorEvent
from lrkit.monitor.record import RobustStats, RollingRecord

__all__ = [
    "ACTIONS",
    "Check",
    "ExplodingGradients",
    "Finding",
    "GradientBlowup",
    "LRTooLow",
    "LossAboveStart",
    "LossRising",
    "LossSpike",
    "Monitor",
    "MonitorEvent",
    "MonitorWarning",
    "NonFinite",
    "Oscillation",
    "RobustStats",
    "RollingRecord",
    "ValidationRising",
    "backoff_lr",
    "default_checks",
]
