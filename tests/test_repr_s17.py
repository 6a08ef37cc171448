"""Session 17: the results print as one readable line, not as the whole curve, model and history."""

from __future__ import annotations

import torch

import lrkit
from lrkit import FinderResult


def _curve_result() -> FinderResult:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(256, 10)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=32)
    return lrkit.find_lr(model, optimizer, loader, num_steps=60)


def test_finder_result_repr_is_one_short_line_with_the_suggestion() -> None:
    result = _curve_result()
    text = repr(result)
    assert "\n" not in text and len(text) < 300
    assert f"suggestion={result.suggestion:.4g}" in text
    low, high = result.range
    assert f"range=({low:.4g}, {high:.4g})" in text
    assert f"steps={result.num_steps_run} of 60" in text and f"stop_reason={result.stop_reason!r}" in text
    assert "loss='default: MSE (float targets)'" in text
    assert repr(result.lrs[1]) not in text  # the curve itself is not printed
    assert str(result) == text


def test_finder_result_repr_of_a_curve_no_rule_can_judge() -> None:
    result = FinderResult(lrs=[1e-3, 1e-2], losses=[1.0, 0.9], num_steps=50, stop_reason="diverged")
    text = repr(result)
    assert text.startswith("FinderResult(suggestion=None, rule='robust', steps=2 of 50")
    assert "range=" not in text


def test_finder_result_repr_counts_warnings() -> None:
    result = FinderResult(lrs=[1e-4, 1e-3, 1e-2, 1e-1, 1.0], losses=[2.0, 1.9, 1.2, 0.9, 5.0], warnings=["a", "b"])
    assert repr(result).endswith("warnings=2)")


def test_train_results_repr_leaves_out_model_and_history(tmp_path) -> None:
    results = lrkit.train(data="iris", model="mlp", epochs=2, lr0=0.02, project=str(tmp_path), verbose=False,
                          plots=False)
    text = repr(results)
    assert "\n" not in text and "Linear(" not in text and "'epoch'" not in text
    assert text.startswith(f"TrainResults(run_dir={str(results.run_dir)!r}, lr0=0.02, lr0_source='user'")
    assert f"best_epoch={results.best_epoch}" in text
    assert f"best_accuracy={results.best_metric:.4g}" in text and "events=0" in text


def test_auto_lr_repr_shows_the_choice_not_the_curve(tmp_path) -> None:
    results = lrkit.train(data="digits", model="mlp", epochs=2, lr0="auto", project=str(tmp_path), verbose=False,
                          plots=False)
    auto = results.auto
    text = repr(auto)
    assert "\n" not in text and "FinderResult" not in text and len(text) < 300
    assert text.startswith(f"AutoLR(lr={auto.lr:.4g}, suggestion={auto.to_dict()['suggestion']:.4g}, trials=[")
    assert f"extra_steps={auto.extra_steps}" in text
    assert "lr0_source='auto'" in repr(results) and "AutoLR" not in repr(results)


def test_auto_lr_repr_after_a_resume_has_no_curve_and_shows_diverged_trials() -> None:
    from lrkit.train.auto import AutoLR

    auto = AutoLR.from_dict({"lr": 0.01, "trials": [{"lr": 0.04, "val_loss": None, "steps": 3},
                                                     {"lr": 0.01, "val_loss": 0.5, "steps": 16}],
                             "extra_steps": 30, "extra_fraction": 0.1})
    assert repr(auto) == ("AutoLR(lr=0.01, trials=[(0.04, val_loss=inf), (0.01, val_loss=0.5)], trial_steps=0, "
                          "extra_steps=30, extra_fraction=0.1)")
