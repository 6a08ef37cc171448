"""An Ultralytics train key that lrkit.train does not have is named as such, with what to do instead — never a
did-you-mean to an unrelated key (``time=1`` is not 'optimizer')."""

from __future__ import annotations

import pytest

from lrkit._config import ULTRALYTICS_ONLY, TrainConfig
from lrkit.train import train


@pytest.mark.parametrize("key", ["time", "save_period", "fraction", "imgsz"])
def test_an_ultralytics_key_is_named_with_what_to_do_instead(key, tmp_path):
    expected = rf"unknown train key '{key}': Ultralytics' {key}= has no lrkit equivalent — "
    with pytest.raises(ValueError, match=expected) as cli:
        TrainConfig.from_tokens(["data=iris", f"{key}=1"])
    assert ULTRALYTICS_ONLY[key] in str(cli.value) and "Did you mean" not in str(cli.value)
    with pytest.raises(ValueError, match=expected):
        train(data="iris", project=tmp_path, **{key: 1})
    with pytest.raises(ValueError, match=expected):
        TrainConfig.from_kwargs(data="iris", **{key: 1})
    assert not any(tmp_path.iterdir())  # refused before a run directory exists


def test_a_misspelt_lrkit_key_still_gets_its_did_you_mean():
    with pytest.raises(ValueError, match="Did you mean 'epochs'"):
        TrainConfig.from_tokens(["data=iris", "EPOCHS=1"])
    with pytest.raises(ValueError, match="Did you mean 'patience'"):
        TrainConfig.from_tokens(["data=iris", "patiense=1"])


def test_no_ultralytics_only_key_shadows_a_train_key():
    assert not set(ULTRALYTICS_ONLY) & set(TrainConfig.keys())
