"""Bug hunt s33h, Hugging Face Trainer: choose_trainer_lr's finder_kwargs checked against the keys it leaves open."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from _helpers import transformers_or_skip

transformers_or_skip()
from _hf_helpers import CPU_ARGS, HF_WARNINGS, LinearReg, hf_trainer, linear_rows, weights  # noqa: E402
from lrkit.integrations.transformers import choose_trainer_lr  # noqa: E402

pytestmark = pytest.mark.filterwarnings(*HF_WARNINGS)


def test_a_misspelt_finder_kwargs_key_lists_only_keys_the_trainer_does_not_supply(tmp_path: Path) -> None:
    trainer = hf_trainer(tmp_path, CPU_ARGS, model=LinearReg(), data=linear_rows(64), eval_dataset=linear_rows(32),
                         max_steps=40)
    before = weights(trainer.model)
    with pytest.raises(ValueError, match=r"'num_step'\. Did you mean 'num_steps'\?") as caught:
        choose_trainer_lr(trainer, finder_kwargs={"num_step": 50})
    valid = {name.strip() for name in str(caught.value).split("Valid:")[1].split(",")}
    # the Trainer supplies these (and choose_trainer_lr refuses them): the list used to offer them as valid
    for supplied in ("accumulation_steps", "amp", "device", "max_grad_norm"):
        assert supplied not in valid
    assert "num_steps" in valid and "snapshot_device" in valid
    assert trainer.optimizer is None and all(torch.equal(v, weights(trainer.model)[k]) for k, v in before.items())


def test_a_supplied_key_and_a_peers_name_keep_their_own_messages(tmp_path: Path) -> None:
    trainer = hf_trainer(tmp_path, CPU_ARGS, model=LinearReg(), data=linear_rows(64), eval_dataset=linear_rows(32),
                         max_steps=40)
    with pytest.raises(ValueError, match=r"the Trainer supplies the range test's amp: args.bf16"):
        choose_trainer_lr(trainer, finder_kwargs={"amp": "bf16"})
    with pytest.raises(ValueError, match=r"'num_iter'.*num_steps"):  # torch-lr-finder's name: choose_lr0's advice
        choose_trainer_lr(trainer, finder_kwargs={"num_iter": 50})
