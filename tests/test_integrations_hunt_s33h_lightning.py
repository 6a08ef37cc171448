"""Bug hunt s33h, PyTorch Lightning callbacks: what the callbacks promise to check when they are built."""

from __future__ import annotations

import pytest

pytest.importorskip("lightning.pytorch")

from lrkit.integrations.lightning import ChooseLRCallback, FindLRCallback


@pytest.mark.parametrize("callback", [FindLRCallback, ChooseLRCallback])
@pytest.mark.parametrize(("value", "words"), [("gpu0", "is not a torch device"),
                                              (5, "must be a device name or a torch.device"),
                                              ("meta", "cannot hold a snapshot")])
def test_a_bad_snapshot_device_is_refused_when_the_callback_is_built(callback: type, value: object,
                                                                     words: str) -> None:
    # the docstrings say the find_lr keywords (snapshot_device among them) are "checked now"; a bad one used to be
    # taken and fail only at the fit's start, after the Trainer had set everything up
    with pytest.raises(ValueError, match="snapshot_device=") as caught:
        callback(snapshot_device=value)
    assert words in str(caught.value) and "'cpu'" in str(caught.value)


@pytest.mark.parametrize("callback", [FindLRCallback, ChooseLRCallback])
def test_a_good_snapshot_device_is_kept_for_the_range_test(callback: type) -> None:
    assert callback(snapshot_device="cpu").find_lr_kwargs["snapshot_device"] == "cpu"
    assert callback(snapshot_device=None).find_lr_kwargs["snapshot_device"] is None
    # a GPU device is only parsed here (no CUDA context in the launching process): find_lr checks it at the fit
    assert callback(snapshot_device="cuda:0").find_lr_kwargs["snapshot_device"] == "cuda:0"
