"""Session 37: small fixes of the lead engineer's, each with a test that fails without it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import lrkit
from lrkit._config import TrainConfig


def _loader() -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 8, generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long()), batch_size=16)


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))


@pytest.mark.parametrize(("given", "read"), [
    (np.array([0, 1]), [0, 1]), (np.int64(3), 3), (torch.tensor(2), 2), ({"body": 1}.keys(), ["body"]),
    (np.array(["body", "head"]), ["body", "head"]), (range(2), [0, 1])])
def test_freeze_takes_numpy_values_and_any_iterable_of_layers(given: Any, read: Any) -> None:
    # before: "freeze=array([0, 1]) must be a number of layers, ..." for each of these
    value = TrainConfig(freeze=given).freeze
    assert value == read
    assert all(type(v) in (int, str) for v in (value if isinstance(value, list) else [value]))  # plain YAML


def test_freeze_still_refuses_an_entry_that_is_no_layer() -> None:
    with pytest.raises(ValueError, match=r"entry 1\.5 must be a layer index or a parameter-name prefix"):
        TrainConfig(freeze=np.array([1.5]))


def test_freeze_from_a_numpy_array_freezes_those_layers(tmp_path: Path) -> None:
    model = _net()
    lrkit.train(model, data=_loader(), epochs=1, lr0=0.01, freeze=np.array([0]), project=str(tmp_path),
                verbose=False, plots=False, monitor=False)
    assert not model[0].weight.requires_grad and model[2].weight.requires_grad


def test_find_lr_progress_false_means_no_progress_callback() -> None:
    # before: "progress=False must be a function progress(step, total, lr, loss), or None"
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    result = lrkit.find_lr(model, opt, _loader(), num_steps=12, progress=False)
    assert len(result.lrs) > 0
    with pytest.raises(ValueError, match=r"progress=True must be a function progress\(step, total, lr, loss\)"):
        lrkit.find_lr(model, opt, _loader(), num_steps=12, progress=True)


@pytest.mark.parametrize(("word", "same_as"), [("off", False), ("No", False), ("false", False), ("0", False),
                                               ("on", "bf16"), ("yes", "bf16"), ("TRUE", "bf16")])
def test_find_lr_amp_reads_the_true_false_words_lrkit_train_does(word: str, same_as: bool | str) -> None:
    # before: "unknown amp setting 'off'. Valid: False, True, bf16, ..." (lrkit.train(amp='off') was fine)
    def run(amp: Any) -> tuple[list[float], list[float]]:
        model = _net()
        result = lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.01), _loader(), num_steps=12, amp=amp)
        return list(result.lrs), list(result.losses)

    assert run(word) == run(same_as)  # on the CPU amp=True is bf16: the same curve bit for bit


def test_spec_key_spelt_in_another_case_and_without_underscore_gets_a_hint() -> None:
    # before: "unknown cosine_restarts parameter 't0'. Valid: T_0, ..." with no hint (difflib compares case)
    with pytest.raises(ValueError, match=r"unknown cosine_restarts parameter 't0'\. Did you mean 'T_0'\?"):
        lrkit.schedules.from_spec("cosine_restarts lr0=0.1 t0=1", total_steps=100)


@pytest.mark.parametrize(("rule", "optimizer", "factor"), [("Linear", None, 4.0), (" SQRT ", None, 2.0),
                                                          ("Auto", "AdamW", 2.0)])
def test_scale_lr_rule_in_any_case(rule: str, optimizer: str | None, factor: float) -> None:
    # before: "unknown scaling rule 'Linear'. Did you mean 'linear'?" (optimizer names were read in any case)
    assert lrkit.scale_lr(0.1, 32, 128, rule=rule, optimizer=optimizer) == pytest.approx(0.1 * factor)
    with pytest.raises(ValueError, match=r"unknown scaling rule 'sqr'\. Did you mean 'sqrt'\?"):
        lrkit.scale_lr(0.1, 32, 128, rule="sqr")


def test_a_linear_sweep_that_blew_up_at_once_is_told_to_lower_end_lr_not_start_lr() -> None:
    # before: "lower start_lr (now 0.001)", which cannot help: the second LR of a linear sweep is ~end_lr / num_steps
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from lrkit.plots.finder import plot_finder

    nan = float("nan")
    r = lrkit.FinderResult(lrs=[1e-3, 1.112, 2.223], losses=[1.0, nan, nan], start_lr=1e-3, end_lr=10.0,
                           num_steps=10, mode="linear", stop_reason="diverged")
    with pytest.raises(ValueError) as e:
        _ = r.suggestion
    assert "lower end_lr (now 10), raise num_steps (now 10) or sweep exponentially (mode='exp')" in str(e.value)
    assert "second LR was already 1.11" in str(e.value) and "lower start_lr" not in str(e.value)
    exp = lrkit.FinderResult(lrs=r.lrs, losses=r.losses, start_lr=1e-3, end_lr=10.0, num_steps=10,
                             stop_reason="diverged")
    with pytest.raises(ValueError, match=r"lower start_lr \(now 0\.001\)"):
        _ = exp.suggestion
    fig = plot_finder(r.to_dict())
    try:
        assert "lower end_lr" in fig.axes[0].get_title()
    finally:
        plt.close(fig)


def test_lrkit_find_linear_sweep_advice_names_the_flags() -> None:
    from lrkit.cli.find import _as_flags

    text = _as_flags("lower end_lr (now 10), raise num_steps (now 10) or sweep exponentially (mode='exp') so")
    assert text == "lower --end-lr (now 10), raise --num-steps (now 10) or sweep exponentially (--mode exp) so"


def test_find_lr_records_how_the_test_ran(tmp_path: Path) -> None:
    # before: lr_find.json said nothing of the optimizer, batch size, accumulation or precision the LR holds for
    model = _net()
    opt = torch.optim.AdamW([{"params": model[0].parameters(), "lr": 1e-3},
                             {"params": model[2].parameters(), "lr": 1e-4}])
    r = lrkit.find_lr(model, opt, _loader(), num_steps=12, accumulation_steps=2, amp="bf16", max_grad_norm=1.0)
    assert r.setup is not None
    assert {k: r.setup[k] for k in ("optimizer", "param_groups", "batch_size", "accumulation_steps", "amp",
                                    "max_grad_norm", "device", "world_size")} == {
        "optimizer": "AdamW", "param_groups": 2, "batch_size": 16, "accumulation_steps": 2, "amp": "bf16",
        "max_grad_norm": 1.0, "device": "cpu", "world_size": 1}
    assert r.setup["lr_scales"] == pytest.approx([1.0, 0.1])
    assert r.setup["torch"] == torch.__version__
    loaded = lrkit.FinderResult.from_json(r.to_json(tmp_path / "r.json"))
    assert loaded.setup == r.setup and loaded == r
    plain = lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), _loader(), num_steps=12)
    assert plain.setup is not None and plain.setup["amp"] is None and plain.setup["max_grad_norm"] is None


def test_a_record_without_setup_loads_and_a_bad_one_is_named(tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    old.write_text('{"lrs": [0.001, 0.01, 0.1], "losses": [1.0, 0.5, 2.0]}')
    assert lrkit.FinderResult.from_json(old).setup is None
    with pytest.raises(ValueError, match=r"setup=\[1, 2\]: how the range test ran is a mapping"):
        lrkit.FinderResult(lrs=[1e-3, 1e-2], losses=[1.0, 0.5], setup=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"setup=\{'device': device\(type='cpu'\)\}"):
        lrkit.FinderResult(lrs=[1e-3, 1e-2], losses=[1.0, 0.5], setup={"device": torch.device("cpu")})


def test_lrkit_find_record_names_the_task_and_seed(tmp_path: Path) -> None:
    from lrkit.cli.find import run_find

    _, out = run_find(None, num_steps=12, seed=3, out=tmp_path / "find")
    assert out is not None
    record = lrkit.FinderResult.from_json(out / "lr_find.json")
    assert record.setup is not None and record.setup["task"] == "demo" and record.setup["seed"] == 3
    assert record.setup["optimizer"] == "SGD"


def test_plot_finder_and_plot_results_keep_the_backend_the_user_chose(tmp_path: Path) -> None:
    # before: matplotlib.use("Agg", force=False) switched the user's pyplot to Agg (plt.show() then showed nothing)
    matplotlib = pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from lrkit.plots.results import plot_results

    csv = tmp_path / "results.csv"
    csv.write_text("epoch,train_loss,val_loss,lr/pg0\n1,1.0,1.1,0.01\n2,0.8,0.9,0.005\n")
    record = lrkit.FinderResult(lrs=[1e-4, 1e-3, 1e-2, 1e-1, 1.0], losses=[2.0, 1.9, 1.2, 0.9, 5.0])
    plt.switch_backend("svg")
    try:
        plt.close(record.plot(tmp_path / "f.png"))
        assert matplotlib.get_backend().lower() == "svg"
        plot_results(csv, tmp_path / "r.png")
        assert matplotlib.get_backend().lower() == "svg"
        assert (tmp_path / "f.png").read_bytes()[1:4] == b"PNG" and (tmp_path / "r.png").read_bytes()[1:4] == b"PNG"
    finally:
        plt.switch_backend("agg")


@pytest.fixture(scope="module")
def text_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("lm")
    (d / "t.txt").write_text("abcab " * 80)
    return lrkit.train(data=str(d / "t.txt"), seq_len=8, epochs=2, project=str(d), verbose=False, plots=False,
                       monitor=False).run_dir


def test_a_text_run_generates_text_after_a_prompt(text_run: Path) -> None:
    # before: a text run could only predict its next character (LoadedRun.predict); no way to write text
    run = lrkit.load_run(text_run)
    state = torch.get_rng_state()
    text = run.generate("ab", 20, seed=3)
    assert torch.equal(torch.get_rng_state(), state)  # its own generator: the global RNG is not drawn from
    assert len(text) == 20 and set(text) <= set(run.vocab)
    assert text == run.generate("ab", 20, seed=3) and run.generate("ab", 0) == ""
    greedy, context = run.generate("abca", 5, temperature=0), "abca"
    for ch in greedy:  # temperature 0: predict's answer, step by step
        assert run.predict(context) == ch
        context += ch
    assert run.generate("ab", 8, top_k=1, seed=1) == run.generate("ab", 8, temperature=0)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"prompt": ""}, r"generate\(prompt=''\): give the text to go on from, a non-empty str"),
    ({"prompt": "ab", "length": -1}, r"length=-1 must be a whole number >= 0"),
    ({"prompt": "ab", "temperature": float("nan")}, r"temperature=nan must be a finite number >= 0"),
    ({"prompt": "ab", "top_k": 0}, r"top_k=0 must be a whole number >= 1"),
    ({"prompt": "abQ"}, r"does not: 'Q'")])
def test_generate_names_a_bad_argument(text_run: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lrkit.load_run(text_run).generate(**kwargs)


def test_lrkit_predict_generate(text_run: Path) -> None:
    from typer.testing import CliRunner

    from lrkit.cli.app import build_app

    app = build_app()
    result = CliRunner().invoke(app, ["predict", str(text_run), "--text", "ab", "--generate", "12", "--seed", "3"])
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()[:2]
    assert header == "text,generated" and row == "ab," + lrkit.load_run(text_run).generate("ab", 12, seed=3)
    bad = CliRunner().invoke(app, ["predict", str(text_run), "--text", "ab", "--generate", "-2"])
    assert bad.exit_code == 2 and "--generate -2 must be a whole number >= 0" in bad.output


def test_generate_on_a_token_id_lm_run_says_why_not() -> None:
    # an lm run on token ids has no vocabulary: the message said "for a text run ...; this run's task is 'lm'"
    from lrkit.train.reuse import LoadedRun

    run = LoadedRun(model=torch.nn.Linear(2, 2), checkpoint=Path("x.pt"), epoch=1, task="lm")
    with pytest.raises(ValueError, match=r"trained on token ids without a vocabulary .* run\.predict\(ids\)"):
        run.generate("ab", 3)


def test_a_hugging_face_batch_with_label_not_labels_is_told_to_rename_it() -> None:
    # before: "... Did you mean 'inputs' for 'input_ids'? Rename the keys" (a datasets column is 'label')
    from lrkit._step import split_batch

    batch = {"input_ids": torch.zeros(2, 3, dtype=torch.long), "attention_mask": torch.ones(2, 3),
             "label": torch.zeros(2, dtype=torch.long)}
    with pytest.raises(ValueError, match=r"rename 'label' to 'labels' \(dataset\.rename_column\('label', 'labels'\)"):
        split_batch(batch)


def test_a_namedtuple_batch_is_split_by_its_field_names() -> None:
    # before: Sample(label, image) was split by position, the labels given to the model as its input
    from collections import namedtuple

    from lrkit._step import split_batch

    sample = namedtuple("Sample", "label image")
    x, y = torch.randn(16, 8), torch.randint(0, 2, (16,))
    got_x, got_y = split_batch(sample(y, x))
    assert got_x is x and got_y is y
    extra = namedtuple("Extra", "x y idx")  # a third field, as a dict batch's other keys, is not read
    assert split_batch(extra(1, 2, 3)) == (1, 2)
    plain = namedtuple("Plain", "a b")  # no field names to go by: by position, as a tuple
    assert split_batch(plain(1, 2)) == (1, 2)
    model = _net()
    result = lrkit.find_lr(model, torch.optim.SGD(model.parameters(), lr=0.01), [sample(y, x)] * 3, num_steps=12)
    assert result.loss == "default: cross-entropy (integer targets)"


def test_lm_val_loss_is_weighted_by_the_targets_it_scores(tmp_path: Path) -> None:
    # before: each batch's mean loss counted by its samples, while perplexity counts the targets that are not -100:
    # with padding, val_loss 2.18 (exp 8.8) beside val_perplexity 27.0 (found by helper t)
    import math

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 10, (64, 8), generator=g)
    xv = torch.randint(0, 10, (48, 8), generator=g)
    yv = torch.randint(0, 10, (48, 8), generator=g)
    yv[:24] = xv[:24]  # the first half: the copy task the model learns, one target a window (the rest padding) ...
    yv[:24, 1:] = -100
    loader = torch.utils.data.DataLoader
    data = (loader(torch.utils.data.TensorDataset(x, x.clone()), batch_size=8),
            loader(torch.utils.data.TensorDataset(xv, yv), batch_size=8))  # ... the rest noise, in batches of their own
    r = lrkit.train(model="charlm", data=data, task="lm", nbs=8, lr0=0.003, epochs=4, project=str(tmp_path),
                    verbose=False, plots=False, monitor=False)
    row = r.history[-1]
    assert row["val_perplexity"] == pytest.approx(math.exp(row["val_loss"]), rel=1e-4)


def test_lrkit_train_reads_namedtuple_samples_by_their_field_names(tmp_path: Path) -> None:
    # before: Sample(label, image) samples were read by position: the labels taken for the inputs
    from collections import namedtuple

    sample = namedtuple("Sample", "label image")

    class Data(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 64

        def __getitem__(self, i: int) -> Any:
            x = torch.randn(8, generator=torch.Generator().manual_seed(i))
            return sample(int(x[0] > 0), x)

    r = lrkit.train(torch.nn.Linear(8, 2), data=Data(), epochs=1, lr0=0.01, project=str(tmp_path), verbose=False,
                    plots=False, monitor=False)
    assert r.task == "classification"
