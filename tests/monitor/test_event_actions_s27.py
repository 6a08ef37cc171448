"""An event whose action gave way to a more severe one at the same step says so in its reason.

When several checks fire at one step the most severe action is the one taken (README *Actions*). Before session 27
each check's event still read as if its own action had been carried out: a loss spike rolled the step back while
``exploding_gradients -> clip`` beside it said "clip" with no word that nothing was clipped (``monitor.clipped`` 0,
``summary()['by_action']['clip']`` 1; the audit of session 27). Now such an event keeps the action its check asked for
(``by_action`` counts what was asked, ``clipped``/``skipped`` what was done) and its reason says it was not done.
"""

from __future__ import annotations

import pytest
import torch

import lrkit


def _run(spike_at: int = 100, **kwargs: object) -> lrkit.Monitor:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    monitor = lrkit.Monitor(model, opt, grad_every=1, **kwargs)
    x = torch.randn(64, 4)
    y = x.sum(1, keepdim=True)
    for step in range(spike_at + 5):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y) + 0.01 * torch.rand(())
        if step == spike_at:
            loss = loss * 1000  # the loss and every gradient blow up at once
        loss.backward()
        monitor.after_backward(loss)
        opt.step()
        monitor.after_step()
    return monitor


def test_a_clip_beside_a_rollback_says_it_was_not_done() -> None:
    monitor = _run()
    at = [e for e in monitor.events if e.step == 100]
    actions = {e.check: e.action for e in at}
    assert actions["loss_spike"] == "rollback" and actions["exploding_gradients"] == "clip"
    clip = next(e for e in at if e.check == "exploding_gradients")
    assert clip.reason.endswith("; not done: this step's rollback comes first")
    assert monitor.clipped == 0 and monitor.rollbacks == 1
    # the events that were carried out read as before
    assert all("not done" not in e.reason for e in at if e.action == "rollback")


def test_a_clip_alone_reads_as_done() -> None:
    monitor = _run(on_divergence="warn")  # the spike only warns: the clip is the step's most severe action
    clip = next(e for e in monitor.events if e.check == "exploding_gradients")
    assert "not done" not in clip.reason
    assert monitor.clipped == 1


@pytest.mark.parametrize("setting", [{"max_rollbacks": 0}])
def test_beside_a_rollback_turned_into_a_stop_the_clip_names_the_stop(setting: dict[str, int]) -> None:
    monitor = _run(**setting)
    clip = next(e for e in monitor.events if e.check == "exploding_gradients")
    assert clip.reason.endswith("; not done: this step's stop comes first")
    assert monitor.should_stop
