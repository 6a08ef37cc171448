"""Session 35: the monitor callbacks refuse an empty ``monitor_metric`` when built (it named no metric: every
validation was warned about as missing, at run time), and HF ``MonitorCallback.load_checkpoint`` names a non-path."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("framework", ["lightning", "transformers"])
@pytest.mark.parametrize("metric", ["", "   "])
def test_an_empty_monitor_metric_is_refused_when_built(framework: str, metric: str) -> None:
    pytest.importorskip(framework)
    from lrkit.integrations import lightning, transformers

    module = lightning if framework == "lightning" else transformers
    with pytest.raises(ValueError, match=r"must be the name of an? (logged|evaluation) metric \(a non-empty str"):
        module.MonitorCallback(monitor_metric=metric)
    assert module.MonitorCallback(monitor_metric=None) is not None  # None still turns the validation feed off


def test_hf_load_checkpoint_names_a_folder_that_is_no_path() -> None:
    pytest.importorskip("transformers")
    from lrkit.integrations.transformers import MonitorCallback

    with pytest.raises(ValueError, match=r"load_checkpoint\(checkpoint_dir=3\): give the checkpoint folder"):
        MonitorCallback().load_checkpoint(3)  # type: ignore[arg-type]
