"""README.md's examples, run as written, so they cannot rot silently.

Every ```python block of the README is either in ``COVERED`` (run here) or in ``NOT_COVERED`` (with the reason it is
not run); a block in neither list fails ``test_every_python_block_is_triaged``. A block is named by a marker: the
heading it sits under and its first line. A marker that no longer matches exactly one block fails
``test_markers_match_one_block``, so a renamed or edited block cannot silently drop out of the test.

Blocks use the user's own objects (``model``, ``train_loader``, ...). Each covered block names a *prelude* defined
below that supplies small stand-ins for them (a linear model on scikit-learn's digits, ...); the block's own lines
are never changed. Each block runs statement by statement in a fresh temporary working directory. Where a line is a
bare expression whose trailing comment starts with a Python literal (``lrkit.scale_lr(0.1, 256, 1024)  # 0.4``), the
value is checked against the comment (numbers to the digits shown; a set literal lists keys a returned dict must
have, ``...`` meaning "and more"). ``>>>`` blocks run as doctests.

The signatures the README prints and its table of ``lrkit.train`` hyperparameter defaults are checked against the
code too.
"""

from __future__ import annotations

import ast
import dataclasses
import decimal
import doctest
import inspect
import io
import math
import re
import sys
import tokenize
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest
import torch

import lrkit

README = Path(__file__).resolve().parents[1] / "README.md"


# ----------------------------------------------------------------------------------------------------------------
# Reading the README
# ----------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Block:
    lang: str
    heading: str
    line: int  # 1-based line of the block's first code line
    code: str

    @property
    def first_line(self) -> str:
        return self.code.splitlines()[0].strip() if self.code.strip() else ""


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block with its language and the nearest heading above it."""
    blocks: list[Block] = []
    heading = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = re.match(r"^```(\w*)\s*$", line)
        if fence:
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            blocks.append(Block(fence.group(1), heading, i + 2, "\n".join(lines[i + 1:j])))
            i = j + 1
            continue
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        i += 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
PYTHON_BLOCKS = [b for b in BLOCKS if b.lang == "python"]


def find_block(heading: str, first_line: str) -> Block:
    found = [b for b in PYTHON_BLOCKS if b.heading == heading and b.first_line == first_line]
    assert len(found) == 1, (
        f"README marker ({heading!r}, {first_line!r}) matches {len(found)} python blocks; "
        "update the marker in tests/test_readme_examples.py to the block's new heading/first line"
    )
    return found[0]


# ----------------------------------------------------------------------------------------------------------------
# Preludes: small stand-ins for the user's objects a block refers to (names as the README uses them)
# ----------------------------------------------------------------------------------------------------------------
def _digits(ns: dict[str, Any]) -> None:
    """A linear classifier on 512/128 scikit-learn digits, SGD with momentum, a per-batch scheduler."""
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    x, y = load_digits(return_X_y=True)
    xt, yt = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
    train_ds = torch.utils.data.TensorDataset(xt[:512], yt[:512])
    val_ds = torch.utils.data.TensorDataset(xt[512:640], yt[512:640])
    train_loader = torch.utils.data.DataLoader(train_ds, batch_size=64, shuffle=True,
                                               generator=torch.Generator().manual_seed(0))
    model = torch.nn.Linear(64, 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    ns.update(
        torch=torch, lrkit=lrkit, train_ds=train_ds, val_ds=val_ds, train_loader=train_loader, loader=train_loader,
        val_loader=torch.utils.data.DataLoader(val_ds, batch_size=128), model=model, my_model=model,
        optimizer=optimizer, opt=optimizer, loss_fn=torch.nn.functional.cross_entropy,
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1.0),
    )


def _spec(ns: dict[str, Any]) -> None:
    """The spec examples call ``from_spec`` bare."""
    from lrkit.schedules import from_spec

    ns["from_spec"] = from_spec


def _digits_spec(ns: dict[str, Any]) -> None:
    """Digits stand-ins plus ``from_spec`` (the resume block; see ``NOT_COVERED``)."""
    _digits(ns)
    _spec(ns)


def _auto(ns: dict[str, Any]) -> None:
    """``choose_lr0``'s block: digits, plus ``epochs`` and the user's ``my_warmup_cosine(steps)`` multiplier.

    60 epochs x 8 batches = 480 steps: enough for the range test and three 8-step confirmation trials.
    """
    _digits(ns)

    def my_warmup_cosine(steps: int) -> Callable[[int], float]:
        warm = max(1, steps // 20)
        return lambda t: (t + 1) / warm if t < warm else 0.5 * (1 + math.cos(math.pi * (t - warm) / (steps - warm)))

    ns.update(epochs=60, my_warmup_cosine=my_warmup_cosine)


def _auto_prefix(ns: dict[str, Any]) -> None:
    """The prefix search's block: ``_auto``'s names, plus the ``make_scheduler`` the section's first block defines."""
    _auto(ns)
    ns["make_scheduler"] = lambda o, n: torch.optim.lr_scheduler.LambdaLR(o, ns["my_warmup_cosine"](n))


def _after_prefix(ns: dict[str, Any]) -> None:
    auto = ns["auto"]
    assert len(auto.trials) == 5 and [t.lr for t in auto.trials] == sorted(t.lr for t in auto.trials)
    assert 1.2 <= auto.extra_fraction <= 1.5 + 1e-9


def _finished_run(ns: dict[str, Any]) -> None:
    """The checkpoint block loads ``runs/train/last.pt``: a 1-epoch run of the built-in linear model on iris."""
    results = lrkit.train(data="iris", model="linear", epochs=1, lr0=0.01, verbose=False, plots=False)
    assert results.run_dir == Path("runs/train")
    model = results.model
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # so that loading the checkpoint visibly changes the model
    ns.update(torch=torch, lrkit=lrkit, model=model)


def _finetune_model(ns: dict[str, Any]) -> None:
    """``param_groups``' block: a model with a pretrained ``body`` and an ``fc`` head (one LayerNorm inside)."""
    body = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.LayerNorm(16), torch.nn.ReLU(), torch.nn.Linear(16, 16))
    ns.update(torch=torch, lrkit=lrkit,
              model=torch.nn.Sequential(OrderedDict(body=body, fc=torch.nn.Linear(16, 3))))


def _monitored_curve(ns: dict[str, Any]) -> None:
    """``mark_events``' block: ``plt``, ``steps``/``losses`` of a monitored loop and its ``monitor`` (one NaN event)."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    monitor = lrkit.Monitor(model, optimizer)
    steps, losses = [], []
    for i in range(30):
        x = torch.randn(16, 4)
        optimizer.zero_grad()
        loss = ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()
        if i == 20:
            loss = loss * float("nan")
        loss.backward()
        monitor.after_backward(loss)
        optimizer.step()
        monitor.after_step()
        steps.append(i)
        losses.append(loss.item())
    assert [e.check for e in monitor.events] == ["non_finite"]
    ns.update(plt=plt, steps=steps, losses=losses, monitor=monitor)


def _torch_lrkit(ns: dict[str, Any]) -> None:
    ns.update(torch=torch, lrkit=lrkit)


def _none(ns: dict[str, Any]) -> None:
    """The block needs nothing."""


# ----------------------------------------------------------------------------------------------------------------
# Which blocks run, and which do not (and why)
# ----------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Covered:
    heading: str
    first_line: str
    prelude: Callable[[dict[str, Any]], None]
    check_comments: bool = True
    after: Callable[[dict[str, Any]], None] | None = None  # further checks on the block's namespace
    #: a module the block imports that the test extra installs only on some Pythons (transformers: >= 3.11); where
    #: it is missing the block is skipped, saying so
    needs: str | None = None


def _after_find(ns: dict[str, Any]) -> None:
    assert Path("lr_find.json").is_file() and Path("lr_find.png").is_file() and Path("again.png").is_file()
    result = ns["result"]
    assert set(result.suggestions()) == set(lrkit.SUGGESTION_RULES)
    assert result.suggestions()[result.rule] == result.suggestion


def _after_schedules(ns: dict[str, Any]) -> None:
    scheduler, optimizer = ns["scheduler"], ns["optimizer"]
    assert isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(ns["s"].lr(0))


def _after_train(ns: dict[str, Any]) -> None:
    results = ns["results"]
    files = {p.name for p in Path(results.run_dir).iterdir()}
    assert {"args.yaml", "results.csv", "last.pt", "best.pt", "results.png", "events.json"} <= files


def _after_checkpoint(ns: dict[str, Any]) -> None:
    ckpt, model = ns["ckpt"], ns["model"]
    for k, v in model.state_dict().items():
        assert torch.equal(v.cpu(), ckpt["model"][k])  # checkpoints hold CPU tensors
    assert {"optimizer", "scheduler", "scaler", "monitor", "rng", "config", "history", "epoch"} <= set(ckpt)


def _after_choose_lr0(ns: dict[str, Any]) -> None:
    auto = ns["auto"]
    assert auto.lr > 0 and 0 < auto.extra_fraction <= 0.3 + 1e-9
    assert len(auto.trials) >= 1 and all(t.steps > 0 for t in auto.trials)  # the suggestion's own trial at least


def _after_param_groups(ns: dict[str, Any]) -> None:
    model, groups = ns["model"], ns["groups"]
    backbone = lrkit.param_groups(model, 1e-3, weight_decay=0.05, backbone_lr_scale=0.1)
    lrs = {g["name"].split("/")[0]: g["lr"] for g in backbone}
    assert lrs == {"head": pytest.approx(1e-3), "backbone": pytest.approx(1e-4)}  # the comment's claim
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def _after_monitor(ns: dict[str, Any]) -> None:
    assert ns["monitor"].summary()["steps"] == 3 * len(ns["loader"])
    assert ns["monitor"].record.count("val_loss") == 3


def _after_mark_events(ns: dict[str, Any]) -> None:
    assert [t.get_text() for t in ns["ax"].get_legend().get_texts()] == ["loss", "non_finite → rollback"]


def _after_load_run(ns: dict[str, Any]) -> None:
    """The loaded model answers raw iris rows as the comment says: a setosa row is class 0, a batch of one."""
    run = ns["run"]
    assert run.predict([[5.1, 3.5, 1.4, 0.2]]) == [0]
    assert tuple(ns["x"].shape) == (1, 4) and run.checkpoint == Path("runs/train/best.pt")


def _after_task_file(ns: dict[str, Any]) -> None:
    """The copyable task file defines what ``lrkit find my_task.py`` loads: a range test on it suggests an LR."""
    model = ns["model"]()
    res = lrkit.find_lr(model, ns["optimizer"](model.parameters()), ns["train_loader"](), loss_fn=ns["loss_fn"],
                        num_steps=20, end_lr=1.0)
    assert 0 < res.suggestion < 1.0 and len(res.losses) == 20


def _after_hf_finder(ns: dict[str, Any]) -> None:
    """The Trainer trained at the suggestion the example printed: its args hold it, its optimizer peaked at it."""
    trainer, result = ns["trainer"], ns["result"]
    assert trainer.args.learning_rate == result.suggestion and 1e-5 < result.suggestion < 1.0
    assert max(g["initial_lr"] for g in trainer.optimizer.param_groups) == result.suggestion
    assert trainer.state.global_step == 48  # 3 epochs of 512 / 32 batches: the run that followed


def _after_hf_auto(ns: dict[str, Any]) -> None:
    """The Trainer trained at the LR chosen: its args hold it, its optimizer peaked at it, the run was 192 steps."""
    trainer, auto = ns["trainer"], ns["auto"]
    assert trainer.args.learning_rate == auto.lr and 1e-5 < auto.lr < 1.0 and auto.trials
    assert max(g["initial_lr"] for g in trainer.optimizer.param_groups) == auto.lr
    assert auto.extra_steps <= 0.5 * trainer.state.global_step == 96


def _after_lightning_auto(ns: dict[str, Any]) -> None:
    """The fit trained 320 steps at the chosen peak: warmup from a tenth of it up to it, then the cosine."""
    trainer, chooser, model = ns["trainer"], ns["chooser"], ns["model"]
    auto = chooser.auto
    assert trainer.global_step == 320 and auto.trials and 1e-5 < auto.lr < 1.0
    assert round(auto.extra_steps / auto.extra_fraction) == 320
    assert max(g["initial_lr"] for g in trainer.optimizers[0].param_groups) == pytest.approx(model.lr, rel=1e-12)


COVERED = [
    Covered("Find the learning rate: `lrkit.find_lr` and `lrkit find`", "import lrkit", _digits, after=_after_find),
    Covered("CLI", "import torch", _none, after=_after_task_file),
    Covered("Schedules: `lrkit.schedules` and `lrkit schedule`", "import torch", _none, after=_after_schedules),
    Covered("Spec syntax (Python, YAML and CLI)",
            'from_spec("step lr0=0.1 step_size=30 gamma=0.1", epochs=90, steps_per_epoch=100)   # ÷10 every 30 epochs',
            _spec),
    # Trains 20 epochs of the built-in digits MLP with lr0="auto" as written (~3 s); its comment's lr0 is checked.
    Covered("Training: `lrkit.train(...)` and `lrkit train key=value`", "import lrkit", _none, after=_after_train),
    Covered("Training: `lrkit.train(...)` and `lrkit train key=value`",
            "results = lrkit.train(my_model, data=(train_ds, val_ds), epochs=30, lr0=3e-4, optimizer=\"AdamW\",",
            _digits, after=_after_train),
    # Two 5-epoch digits runs with optimizer classes (torch's Adagrad, schedule-free AdamW); checks the recorded name.
    Covered("Any optimizer class", "import lrkit, torch, schedulefree", _none),
    Covered("The run directory", 'ckpt = torch.load("runs/train/last.pt", weights_only=True)', _finished_run,
            after=_after_checkpoint),
    Covered("Using a finished run", "import lrkit", _none, after=_after_load_run),
    Covered('`lr0="auto"`: the peak LR for this run\'s schedule and budget', "import lrkit, torch",
            _auto, after=_after_choose_lr0),
    # 480 steps of the digits MLP: a 120-step range test and five 120-step prefix trials (~2 s).
    Covered('The opt-in prefix search (`search="prefix"`)', "auto = lrkit.choose_lr0(model, optimizer, train_loader, "
            "val_loader, total_steps=epochs * len(train_loader),", _auto_prefix, after=_after_prefix),
    Covered("`scale_lr` — change the batch size, keep the LR right", "import lrkit", _digits),
    Covered("`nominal_batch` — Ultralytics' `nbs`", ">>> from lrkit.scaling import nominal_batch", _none),
    Covered("`param_groups` — discriminative LRs for fine-tuning",
            "groups = lrkit.param_groups(model, 1e-3, weight_decay=0.05, backbone_lr_scale=0.1)  "
            "# head at 1e-3, rest at 1e-4", _finetune_model, after=_after_param_groups),
    Covered("`freeze_layers` — transfer learning",
            ">>> model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))",
            _torch_lrkit),
    Covered("Watch training health: `lrkit.Monitor`", "import lrkit", _digits, after=_after_monitor),
    Covered("torch, resume, fast-forward, re-plan",
            'sched = from_spec("onecycle max_lr=0.1", epochs=90, steps_per_epoch=len(loader)).to_torch(optimizer)',
            _digits_spec),
    Covered("Records and pictures", "from lrkit.plots.monitor import mark_events", _monitored_curve,
            after=_after_mark_events),
    Covered("From torch-lr-finder (`LRFinder`)", "criterion = torch.nn.CrossEntropyLoss()", _digits),
    Covered("From fastai (`learn.lr_find`)",
            "result = lrkit.find_lr(model, optimizer, train_loader, loss_fn=loss_fn,", _digits),
    Covered("From Lightning (`Tuner.lr_find`)",
            "result = lrkit.find_lr(model, optimizer, train_loader, loss_fn=loss_fn,", _digits),
    # A tiny config-built BERT: the range test (100 steps) and a 48-step Trainer run (~5 s), nothing downloaded.
    Covered("Finding the LR for a `Trainer`: `find_trainer_lr`", "import torch", _none, after=_after_hf_finder,
            needs="transformers"),
    # The same tiny BERT: a 48-step range test, one 17-step trial and a 192-step Trainer run (~5 s).
    Covered('`lr0="auto"` for a `Trainer`: `choose_trainer_lr`', "import torch", _none, after=_after_hf_auto,
            needs="transformers"),
    # A 10-epoch fit of a tiny MLP with warmup + cosine: the range test, a trial or two, and the fit (~4 s).
    Covered('`lr0="auto"` in a Lightning fit: `ChooseLRCallback`', "import lightning.pytorch as pl, torch", _none,
            after=_after_lightning_auto, needs="lightning"),
    Covered("From Ultralytics (`lr0`, `lrf`, `warmup_*`)",
            'results = lrkit.train(model, data=(train_ds, val_ds), epochs=30, lr0="auto", lrf=0.01, cos_lr=True,',
            _digits),
]

#: Python blocks deliberately not run here: (heading, first line) -> why.
NOT_COVERED = {
    ("Reusing the suite", 'import sys; sys.path.insert(0, "benchmarks")           # run from the repository root '
                          '(_suite is not in the package)'):
        "benchmarks/_suite.py, not the package: oracle(task) trains 75 runs per task unless cached",
    ("API", "lrkit.train(model=None, *, data=None, epochs=10, lr0=None, lrf=0.01, batch=32, optimizer=\"auto\", "
            "momentum=0.937,"):
        "a signature, not code: checked by test_readme_signatures_match_the_code instead",
    ("From Lightning (`Tuner.lr_find`)", "result = lrkit.find_lr(module, module.configure_optimizers(), train_loader,"):
        "needs a LightningModule (`module`): run with a stand-in by tests/test_migrate_s18j.py",
    ("In a Lightning fit: `FindLRCallback`", "import lightning.pytorch as pl"):
        "needs a LightningModule (`model`) and its loader: the same calls run in tests/test_lightning_finder_s22a.py "
        "(and the class docstring's example runs there)",
    ("In a Lightning fit: `FindLRCallback`", 'finder = FindLRCallback(num_steps=100, out="lr_find")'):
        "a 2-process DDP fit of your model: tests/test_lightning_ddp_finder_s22f.py runs one with ddp_spawn",
    ("With PyTorch Lightning: `MonitorCallback`", "import lightning.pytorch as pl"):
        "needs a LightningModule (`model`) and its loaders: the same calls run in tests/test_lightning_monitor_s20e.py",
    ("With Hugging Face `transformers.Trainer`: `MonitorCallback`",
     "from transformers import Trainer, TrainingArguments"):
        "needs a model and datasets of yours (and `...` in TrainingArguments): run in tests/test_hf_monitor_s20h.py",
    ("With Hugging Face accelerate (a loop of your own)", "from accelerate import Accelerator"):
        "needs a model, loader, scheduler and loss_fn of yours: the same gated loop runs in "
        "tests/test_accelerate_walk_s21d.py",
}


# ----------------------------------------------------------------------------------------------------------------
# Running a block
# ----------------------------------------------------------------------------------------------------------------
def _comments(code: str) -> dict[int, str]:
    """Line number -> the text of the comment on that line."""
    out: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string.lstrip("#").strip()
    return out


def _leading_literal(comment: str) -> str | None:
    """The longest whitespace-delimited prefix of ``comment`` that is a Python literal, if any."""
    cuts = [m.start() for m in re.finditer(r"\s", comment)] + [len(comment)]
    for cut in sorted(cuts, reverse=True):
        text = comment[:cut].strip()
        try:
            ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        return text
    return None


def _matches(actual: Any, node: ast.expr, src: str) -> bool:
    """Does ``actual`` match the literal ``node`` (parsed from ``src``) to the precision it is written with?

    A number written as ``0.00998`` matches anything that rounds to it (within half a unit of its last digit); a
    set literal lists keys a dict must have (``...``: "and more").
    """
    if isinstance(node, ast.Set):
        keys = {ast.literal_eval(e) for e in node.elts if not (isinstance(e, ast.Constant) and e.value is Ellipsis)}
        more = len(keys) < len(node.elts)
        return isinstance(actual, dict) and keys <= set(actual) and (more or keys == set(actual))
    if isinstance(node, (ast.Tuple, ast.List)):
        return (isinstance(actual, (tuple, list)) and len(actual) == len(node.elts)
                and all(_matches(a, e, src) for a, e in zip(actual, node.elts)))
    if isinstance(node, ast.Dict):
        keys = [ast.literal_eval(k) for k in node.keys if k is not None]
        return (isinstance(actual, dict) and list(actual) == keys
                and all(_matches(actual[k], v, src) for k, v in zip(keys, node.values)))
    value = ast.literal_eval(node)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        text = ast.get_source_segment(src, node) or repr(value)
        half_unit = 0.5 * 10.0 ** decimal.Decimal(text.lstrip("+-")).as_tuple().exponent
        return (isinstance(actual, (int, float)) and not isinstance(actual, bool)
                and abs(actual - value) <= half_unit * (1 + 1e-9))
    return bool(actual == value)


def run_block(block: Block, ns: dict[str, Any], *, check_comments: bool) -> list[str]:
    """Run ``block`` statement by statement in ``ns``; return the claims that did not hold."""
    tree = ast.parse(block.code)
    comments = _comments(block.code)
    wrong: list[str] = []
    for node in tree.body:
        where = f"README.md:{block.line + node.lineno - 1}"
        if isinstance(node, ast.Expr):
            value = eval(compile(ast.Expression(node.value), where, "eval"), ns)
            comment = comments.get(node.end_lineno or node.lineno, "")
            claim = _leading_literal(comment) if check_comments and comment else None
            if claim is not None and not _matches(value, ast.parse(claim, mode="eval").body, claim):
                wrong.append(f"{where}: {ast.unparse(node)} gives {value!r}; the README says {claim}")
        else:
            exec(compile(ast.Module([node], type_ignores=[]), where, "exec"), ns)
    return wrong


# ----------------------------------------------------------------------------------------------------------------
# Tests
# ----------------------------------------------------------------------------------------------------------------
def test_markers_match_one_block() -> None:
    for c in COVERED:
        find_block(c.heading, c.first_line)
    for heading, first_line in NOT_COVERED:
        find_block(heading, first_line)


def test_every_python_block_is_triaged() -> None:
    known = {(c.heading, c.first_line) for c in COVERED} | set(NOT_COVERED)
    new = [(b.heading, b.first_line, f"README.md:{b.line}") for b in PYTHON_BLOCKS
           if (b.heading, b.first_line) not in known]
    assert not new, f"python blocks neither run nor listed in NOT_COVERED (add them to one list): {new}"
    assert len(COVERED) + len(NOT_COVERED) == len(PYTHON_BLOCKS)


@pytest.mark.parametrize("case", COVERED, ids=lambda c: f"{c.heading[:40]}|{c.first_line[:30]}")
def test_readme_block_runs(case: Covered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    block = find_block(case.heading, case.first_line)
    if case.needs is not None:
        pytest.importorskip(case.needs, reason=f"the block imports {case.needs}, not installed here")
    monkeypatch.chdir(tmp_path)
    ns: dict[str, Any] = {"__name__": "readme_example"}
    case.prelude(ns)
    try:
        if block.first_line.startswith(">>>"):
            test = doctest.DocTestParser().get_doctest(block.code, ns, f"README.md:{block.line}", str(README),
                                                       block.line - 1)
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
            out = io.StringIO()
            runner.run(test, out=out.write)
            assert runner.failures == 0, out.getvalue()
            assert runner.tries > 0
        else:
            wrong = run_block(block, ns, check_comments=case.check_comments)
            assert not wrong, "\n".join(wrong)
            if case.after is not None:
                case.after(ns)
    finally:
        plt.close("all")


def test_comment_check_catches_a_wrong_claim() -> None:
    """The comment check is live: a claim that does not hold is reported, one that does is not."""
    ns: dict[str, Any] = {"lrkit": lrkit}
    good = Block("python", "h", 1, "lrkit.scale_lr(0.1, 256, 1024)   # 0.4   linear\n")
    bad = Block("python", "h", 1, "lrkit.scale_lr(0.1, 256, 1024)   # 0.5   linear\n")
    keys = Block("python", "h", 1, 'dict(a=1, b=2)   # {"a", ...}\nlist("ab")   # picks by the optimizer\n')
    missing = Block("python", "h", 1, 'dict(a=1)   # {"a", "c", ...}\n')
    rounded = Block("python", "h", 1, "(0.009978, 'auto')   # (0.00998, 'auto') - rounded\n")
    too_far = Block("python", "h", 1, "(0.009978, 'auto')   # (0.0099, 'auto')\n")
    assert run_block(good, ns, check_comments=True) == []
    assert len(run_block(bad, ns, check_comments=True)) == 1
    assert run_block(rounded, ns, check_comments=True) == []
    assert len(run_block(too_far, ns, check_comments=True)) == 1
    assert run_block(keys, ns, check_comments=True) == []
    assert len(run_block(missing, ns, check_comments=True)) == 1


# ----------------------------------------------------------------------------------------------------------------
# Signatures and defaults printed in the README
# ----------------------------------------------------------------------------------------------------------------
def _readme_signature(text: str, anchor: str) -> inspect.Signature:
    """Parse the call that starts with ``anchor`` as printed in the README (a code block or inline code)."""
    start = text.index(anchor)
    i = text.index("(", start)
    open_paren = i
    depth = 0
    while True:
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            break
        i += 1
    params = text[open_paren + 1:i].replace("`", "")
    fn = ast.parse(f"def f({params}): pass").body[0]
    assert isinstance(fn, ast.FunctionDef)
    args = fn.args

    def default(node: ast.expr | None) -> Any:
        if node is None:
            return inspect.Parameter.empty
        while isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):  # rule="linear"|"sqrt"|"auto"
            node = node.left
        return ast.literal_eval(node)

    pos = args.posonlyargs + args.args
    pos_defaults = [None] * (len(pos) - len(args.defaults)) + list(args.defaults)
    out = [inspect.Parameter(a.arg, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default(d))
           for a, d in zip(pos, pos_defaults)]
    out += [inspect.Parameter(a.arg, inspect.Parameter.KEYWORD_ONLY, default=default(d))
            for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    return inspect.Signature(out)


def _signature_cases() -> list[tuple[str, Callable[..., Any]]]:
    from lrkit import schedules
    from lrkit.scaling import nominal_batch
    from lrkit.train.auto import choose_lr0
    from lrkit.train.trainer import train

    return [  # (where the README prints the signature, the function)
        ("lrkit.train(model=None, *", train),
        ("choose_lr0(model, optimizer, train_loader, val_loader, *", choose_lr0),
        ("scale_lr(lr, from_batch, to_batch,", lrkit.scale_lr),
        ("nominal_batch(batch, nbs=", nominal_batch),
        ("param_groups(model, lr, *", lrkit.param_groups),
        ("freeze_layers(model, n)", lrkit.freeze_layers),
        ("schedules.from_spec(spec, *", schedules.from_spec),
        ("schedules.ultralytics(*", schedules.ultralytics),
    ]


@pytest.mark.parametrize("call,fn", _signature_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_readme_signatures_match_the_code(call: str, fn: Callable[..., Any]) -> None:
    text = README.read_text(encoding="utf-8")
    shown = _readme_signature(text, call)
    real = inspect.signature(fn)
    real_params = [p for p in real.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    assert [p.name for p in shown.parameters.values()] == [p.name for p in real_params], call
    for p, q in zip(shown.parameters.values(), real_params):
        kw_only = q.kind is inspect.Parameter.KEYWORD_ONLY
        assert (p.kind is inspect.Parameter.KEYWORD_ONLY) == kw_only, f"{call}: {p.name} keyword-only in one only"
        if p.default is not inspect.Parameter.empty:
            assert p.default == q.default, f"{call}: README default {p.name}={p.default!r}, code {q.default!r}"
        else:
            assert q.default is inspect.Parameter.empty, f"{call}: {p.name} has default {q.default!r} in the code"


def test_hyperparameter_table_defaults_match_train_config() -> None:
    from lrkit._config import TrainConfig
    from lrkit.train.trainer import train

    text = README.read_text(encoding="utf-8")
    table = text[text.index("### Hyperparameters"):]
    table = table[:table.index("\n\n", table.index("| --- |"))]
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    seen: set[str] = set()
    rows = [row for row in table.splitlines() if row.startswith("| `")]
    assert len(rows) >= 30, "the hyperparameter table was not found"
    for row in rows:
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        keys = re.findall(r"`(\w+)`", cells[0])
        defaults = [d.strip().strip("`") for d in cells[1].split(",")]
        assert len(keys) == len(defaults), row
        for key, shown in zip(keys, defaults):
            seen.add(key)
            if key == "cfg":  # a train() argument, not a TrainConfig field
                assert inspect.signature(train).parameters["cfg"].default is None
                continue
            assert key in fields, f"README hyperparameter {key!r} is not a train key"
            value = None if shown in ("—", "None") else ast.literal_eval(shown)
            assert fields[key] == value, f"README default {key}={shown}, TrainConfig {fields[key]!r}"
    assert set(fields) <= seen, f"train keys missing from the README table: {sorted(set(fields) - seen)}"


# ----------------------------------------------------------------------------------------------------------------
# Tables the README prints: each row against the code it describes
# ----------------------------------------------------------------------------------------------------------------
def _section(heading: str) -> str:
    """The README text under ``heading`` (a full heading line, e.g. ``"### Checks"``) up to the next heading."""
    text = README.read_text(encoding="utf-8")
    start = text.index("\n" + heading + "\n") + len(heading) + 2
    nxt = re.search(r"^#{1,6} ", text[start:], flags=re.M)
    return text[start:start + nxt.start()] if nxt else text[start:]


def _table(section: str, header_starts: str) -> list[list[str]]:
    """The body rows (cells stripped) of the first Markdown table in ``section`` whose header starts so."""
    lines = section.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(header_starts))
    rows = []
    for line in lines[i + 2:]:
        if not line.startswith("|"):
            break
        cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
        rows.append([c.strip() for c in cells])
    assert rows, f"no rows under {header_starts!r}"
    return rows


def _ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_find_lr_argument_table_defaults_match_the_signature() -> None:
    """The Find section's `| argument | default | meaning |` table against `find_lr`'s keyword defaults."""
    params = inspect.signature(lrkit.find_lr).parameters
    rows = _table(_section("## Find the learning rate: `lrkit.find_lr` and `lrkit find`"), "| argument | default |")
    seen = set()
    for cells in rows:
        names, shown = _ticked(cells[0]), _ticked(cells[1])
        for i, name in enumerate(names):
            assert name in params, f"README find_lr argument {name!r} is not a parameter of find_lr"
            assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
            seen.add(name)
            expected = ast.literal_eval(shown[i]) if len(shown) == len(names) else None  # prose: "—", "the model's…"
            actual = params[name].default
            assert actual == expected, f"README default {name}={expected!r}, code {actual!r}"
    keyword_only = {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert keyword_only <= seen, f"find_lr arguments missing from the README table: {sorted(keyword_only - seen)}"


def test_schedule_families_table_matches_the_registry() -> None:
    """Name, aliases, unit and warmup columns of the Families table against `lrkit.schedules.available()`."""
    from lrkit.schedules import available

    entries = {e.name: e for e in available()}
    rows = _table(_section("### Families"), "| name (aliases) |")
    shown = {}
    for cells in rows:
        name = _ticked(cells[0])[0]
        aliases = re.search(r"\(([^)]*)\)", cells[0])
        assert name in entries, f"README family {name!r} is not registered"
        e = entries[name]
        for alias in (a.strip() for a in aliases.group(1).split(",")) if aliases else ():
            assert alias in e.aliases, f"README alias {alias!r} of {name!r} is not registered: {e.aliases}"
        unit, warmup = cells[3], cells[4]
        takes_unit = "unit" in e.parameters
        assert unit == (e.unit if takes_unit else "–"), f"{name}: README unit {unit!r}, code {e.unit!r}/{takes_unit}"
        assert warmup == ("prefix" if e.warmup_prefix else "blend"), f"{name}: README warmup {warmup!r}"
        shown[name] = cells
    assert set(shown) == set(entries), f"families missing from the README table: {sorted(set(entries) - set(shown))}"


_CATEGORY_KEYWORD = {"divergence": "on_divergence", "explode": "on_explode", "too_low": "on_too_low",
                     "overfit": "on_overfit"}


def _check_rows() -> list[Any]:
    rows = _table(_section("### Checks"), "| check |")
    return [pytest.param(cells, id=_ticked(cells[0])[0]) for cells in rows]


@pytest.mark.parametrize("cells", _check_rows())
def test_monitor_checks_table_matches_the_checks(cells: list[str]) -> None:
    """Each row of the Checks table: the check exists by that name, its category and default action, and every
    `key=value` of its defaults column (plus "every N steps") equal the class's defaults."""
    from lrkit import monitor as mon

    assert len(cells) == 4, f"the row has {len(cells)} cells on GitHub, not 4 (an unescaped | in it?): {cells}"
    name = _ticked(cells[0])[0]
    by_name = {type(c).name: type(c) for c in mon.default_checks()}
    added = {c.name: c for c in (mon.LossAboveStart,)}  # checks a Monitor keyword adds (the row names the keyword)
    if "opt-in" in cells[0] or "collapse_check" in cells[0]:
        assert name in added and name not in by_name, f"README marks {name!r} as added by a keyword: {sorted(by_name)}"
        # "the default": a Monitor with its default checks (and collapse_check left at its default) adds it
        model = torch.nn.Linear(1, 1)
        default = name in [c.name for c in lrkit.Monitor(model, torch.optim.SGD(model.parameters(), lr=0.1)).checks]
        assert default is ("the default" in cells[0]), f"README on {name!r}: {cells[0]!r}; added by default={default}"
        by_name = added
    assert name in by_name, f"README check {name!r} is not a default check: {sorted(by_name)}"
    check = by_name[name]()
    category = cells[1].split()[0]
    assert check.category == category, f"{name}: README category {category!r}, code {check.category!r}"
    action = re.search(r"\((\w+)\)\s*$", cells[1])
    assert action is not None, cells[1]
    monitor_defaults = inspect.signature(lrkit.Monitor).parameters
    assert monitor_defaults[_CATEGORY_KEYWORD[category]].default == action.group(1), name
    for text in _ticked(cells[3]):
        for key, value in re.findall(r"(\w+)=([^,\s]+)", text):
            assert hasattr(check, key), f"README default {key}= of {name!r} is not a parameter of {type(check)}"
            assert getattr(check, key) == ast.literal_eval(value), f"{name}: README {key}={value}, code " \
                                                                    f"{getattr(check, key)!r}"
    every = re.search(r"every (\d+) steps", cells[3])
    if every:
        assert check.every == int(every.group(1)), name


def test_train_results_table_names_real_attributes() -> None:
    """Every attribute the `TrainResults` table lists exists on the class (a field or a property/method)."""
    from lrkit.train.results import TrainResults

    fields = {f.name for f in dataclasses.fields(TrainResults)} if dataclasses.is_dataclass(TrainResults) else set()
    rows = _table(_section("### API"), "| attribute | meaning |")
    names = [n.removesuffix("()") for cells in rows for n in _ticked(cells[0])]
    assert len(names) >= 20, names
    missing = [n for n in names if n not in fields and not hasattr(TrainResults, n)]
    assert not missing, f"README TrainResults attributes that do not exist: {missing}"
    assert callable(TrainResults.to_dict)


def test_auto_lr_and_monitor_event_records_name_their_real_fields() -> None:
    """The README's inline lists of `AutoLR`'s, `Trial`'s and `MonitorEvent`'s fields."""
    from lrkit.monitor import MonitorEvent
    from lrkit.train.auto import AutoLR, Trial

    text = README.read_text(encoding="utf-8")
    auto = text[text.index("`AutoLR`: `lr`"):]
    end = re.search(r"for a\s+run's records", auto)
    assert end is not None
    auto = auto[:end.start()]
    listed = [n for n in _ticked(auto) if re.fullmatch(r"\w+(\(\))?", n) and n not in ("AutoLR", "FinderResult")]
    names = {n.removesuffix("()") for n in listed}
    properties = {n for n in names if isinstance(getattr(AutoLR, n, None), property)}  # finder_loss
    assert {f.name for f in dataclasses.fields(AutoLR)} == names - {"to_dict"} - properties
    assert callable(AutoLR.to_dict)
    trial = re.search(r"`Trial\(([^)]*)\)`", auto)
    assert trial is not None and tuple(s.strip() for s in trial.group(1).split(",")) == Trial._fields
    event = re.search(r"`MonitorEvent\(([^)]*)\)` is frozen", text)
    assert event is not None
    assert [s.strip() for s in event.group(1).split(",")] == [f.name for f in dataclasses.fields(MonitorEvent)]


# ----------------------------------------------------------------------------------------------------------------
# Benchmark scripts the README names, and the flags it gives them
# ----------------------------------------------------------------------------------------------------------------
def _script_flags(path: Path) -> set[str]:
    """The option strings a script's argparse defines (read from its source: importing would load torch)."""
    flags: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument":
            flags |= {a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("-")}
    return flags


def test_benchmark_commands_name_existing_scripts_and_flags() -> None:
    """Every `python benchmarks/<script>.py --flag ...` in the README: the script exists and defines each flag."""
    text = README.read_text(encoding="utf-8")
    root = README.parent
    commands = re.findall(r"python (benchmarks/\w+\.py)((?:\s+--[\w-]+(?:[ =][^\s`|)]+)*)*)", text)
    scripts = {s for s, _ in commands}
    assert len(scripts) >= 10, scripts
    for script, rest in commands:
        path = root / script
        assert path.is_file(), f"README names {script}, which does not exist"
        defined = _script_flags(path)
        for flag in re.findall(r"--[\w-]+", rest):
            assert flag in defined, f"README runs {script} {flag}, which the script does not define: {defined}"
    # The finder benchmark's flag list in prose
    flags_line = text[text.index("Flags: `--tasks a,b`"):]
    flags_line = flags_line[:flags_line.index("\n\n")]
    listed = {f for f in re.findall(r"`(--[\w-]+)", flags_line)}
    assert listed == _script_flags(root / "benchmarks/finder_quality.py") - {"-h", "--help"}


def _readme_tables() -> list[Any]:
    """Every Markdown table outside code blocks: (its heading, its header line, the lines that follow its header)."""
    lines = README.read_text(encoding="utf-8").splitlines()
    tables, heading, fence, i = [], "", False, 0
    while i < len(lines):
        line = lines[i]
        fence = fence != line.startswith("```")
        if not fence and line.startswith("#"):
            heading = line.lstrip("#").strip()
        if not fence and line.startswith("|") and i + 1 < len(lines) and re.fullmatch(r"\|[\s:|-]+\|", lines[i + 1]):
            j = i + 2
            while j < len(lines) and lines[j].strip():
                j += 1
            tables.append(pytest.param(heading, i + 1, lines[i:j], id=f"{heading[:40]}:{i + 1}"))
            i = j
            continue
        i += 1
    return tables


@pytest.mark.parametrize("heading,line,rows", _readme_tables())
def test_readme_tables_render_one_row_per_line(heading: str, line: int, rows: list[str]) -> None:
    """GitHub ends a table row at the line's end and splits cells at every unescaped `|`, code spans included: a
    row continued on the next line, or a `|x|` in a cell, breaks the table for every reader."""
    def cells(text: str) -> int:
        return len(re.split(r"(?<!\\)\|", text.strip().strip("|")))

    width = cells(rows[0])
    for k, row in enumerate(rows[2:], start=line + 2):
        assert row.startswith("|"), f"README.md:{k} continues a table row on a new line: {row[:80]!r}"
        assert cells(row) == width, f"README.md:{k} has {cells(row)} cells, the header {width}: {row[:80]!r}"


# ----------------------------------------------------------------------------------------------------------------
# Messages the README quotes: the code must still print them (``...``/``…`` in a quote stand for any text)
# ----------------------------------------------------------------------------------------------------------------
def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _quote_pattern(quote: str) -> re.Pattern[str]:
    parts = re.split(r"\.\.\.|…", _flat(quote))
    return re.compile(".*?".join(re.escape(p) for p in parts), flags=re.S)


def _error(fn: Callable[[], Any]) -> str:
    with pytest.raises(ValueError) as info:
        fn()
    return str(info.value)


def _cli(*args: str) -> str:
    from typer.testing import CliRunner

    from lrkit.cli.app import build_app

    res = CliRunner().invoke(build_app(), list(args), terminal_width=200)
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    return res.output


def _from_spec(spec: str, **kw: Any) -> Callable[[], Any]:
    from lrkit.schedules import from_spec

    return lambda: from_spec(spec, **kw)


def _factory_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``pkg.mod`` and ``mymodels`` on sys.path, as the README's factory examples name them."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "mod.py").write_text("def f(in_features, num_outputs):\n    raise TypeError('no')\n"
                                             "def g(in_features):\n    raise SystemExit(3)\n")
    (tmp_path / "mymodels.py").write_text("WIDTH = 3\nclass Zoo:\n    @staticmethod\n"
                                          "    def small(in_features, num_outputs):\n        return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def _train_error(**kw: Any) -> Callable[[], Any]:
    return lambda: lrkit.train(**{"data": "iris", "epochs": 1, "verbose": False, "plots": False, **kw})


def _task_error() -> Any:
    ds = torch.utils.data.TensorDataset(torch.randn(8, 4), torch.randint(0, 3, (8, 3)))
    return lrkit.train(torch.nn.Linear(4, 3), data=ds, epochs=1, verbose=False, plots=False)


QUOTED_ERRORS: list[tuple[str, Callable[[Path], str]]] = [  # (the README's quote, what the code says)
    ("ValueError: cooldown_min_ratio=1.5 must be in [0, 1] (the multiplier of the peak LR the cooldown ends at; "
     "above 1 it would raise the LR)",
     lambda _: "ValueError: " + _error(_from_spec("cosine lr0=0.1 cooldown_steps=10 cooldown_min_ratio=1.5",
                                                  total_steps=100))),
    ("ValueError: unknown cosine parameter 'lfr'. Did you mean 'lrf'? Valid: T_max, cooldown_epochs, …",
     lambda _: "ValueError: " + _error(_from_spec("cosine lfr=0.01", total_steps=100))),
    ("step: step_size=30 is in epochs (unit='epoch'), so steps_per_epoch is needed: …",
     lambda _: _error(_from_spec("step lr0=0.1 step_size=30", total_steps=100))),
    ("schedule 'cyclic' needs base_lr=...", lambda _: _error(_from_spec("cyclic max_lr=0.1"))),
    ("lrf=0.01 (a ratio of lr0) and eta_min=0.001 (an absolute LR) both set the floor: give one",
     lambda _: _error(_from_spec("cosine lr0=0.1 lrf=0.01 eta_min=0.001", total_steps=100))),
    ("the LR is not finite from step 47 on",
     lambda _: _cli("schedule", "multistep lr0=1e300 milestones=47 gamma=1e10 unit=step", "-t", "100", "--json")),
    ("error: unknown train key 'lr_0'. Did you mean 'lr0'? Valid: ...", lambda _: _cli("train", "data=iris", "lr_0=1")),
    ("error: 'epochs' needs a value: write epochs=<value> (e.g. epochs=20 as one token)",
     lambda _: _cli("train", "data=iris", "epochs", "20")),
    ("error: epochs is given twice: 'epochs=3' and 'epochs=5'; give it once",
     lambda _: _cli("train", "epochs=3", "epochs=5")),
    ("error: 'monitor={on_divergence: stop, on_divergence: warn}': the key 'on_divergence' is given twice; give it "
     "once", lambda _: _cli("train", "data=iris", "monitor={on_divergence: stop, on_divergence: warn}")),
    ("Did you mean 'epochs'?", lambda _: _error(_train_error(EPOCHS=5))),
    ("error: data=2024 is a number, not a dataset: give a built-in name (digits, ...) or a file path (.csv, .npz, "
     ".txt, .yaml); in a YAML file, quote a file name that YAML reads as a number (data: '2024')",
     lambda tmp: (tmp / "c.yaml").write_text("data: 2024\n") and _cli("train", f"cfg={tmp / 'c.yaml'}")),
    ("give project='/data' name='exp'", lambda _: _cli("train", "data=iris", "name=/data/exp")),
    ("input float32 of shape (4,), target int64 of shape (3,)", lambda _: _error(_task_error)),
    ("'WIDTH' is an int, not a callable factory", lambda _: _error(_train_error(model="mymodels:WIDTH"))),
    ("Did you mean 'Zoo.small'?", lambda _: _error(_train_error(model="mymodels:Zoo.smal"))),
    ("model='pkg.mod:f': calling f(in_features=4, ...) raised TypeError: ...",
     lambda _: _error(_train_error(model="pkg.mod:f"))),
    ("... exited (SystemExit(3)); a factory must return a torch nn.Module",
     lambda _: _cli("train", "data=iris", "model=pkg.mod:g", "epochs=1")),
]


@pytest.mark.parametrize("quote,produce", QUOTED_ERRORS, ids=[q[:40] for q, _ in QUOTED_ERRORS])
def test_quoted_error_messages_are_what_the_code_says(quote: str, produce: Callable[[Path], str], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert _flat(quote) in _flat(README.read_text(encoding="utf-8")), f"the README no longer quotes {quote!r}"
    monkeypatch.chdir(tmp_path)
    _factory_module(tmp_path, monkeypatch)
    try:
        said = produce(tmp_path)
    finally:  # modules imported from tmp_path must not shadow other tests' modules of the same name
        for name in ("mymodels", "pkg", "pkg.mod"):
            sys.modules.pop(name, None)
    assert _quote_pattern(quote).search(_flat(said)), f"README quotes {quote!r}; the code says {said!r}"
    assert not (tmp_path / "runs").exists()  # refused before a run directory was made


def test_quoted_schedule_note_is_logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    quote = ("note — schedule='cosine' sets the whole LR shape, so lrf=0.2, warmup_epochs=1.0 (given) are not used; "
             "write them into the spec instead")
    assert _flat(quote) in _flat(README.read_text(encoding="utf-8"))
    monkeypatch.chdir(tmp_path)
    lrkit.train(data="iris", schedule="cosine", lrf=0.2, warmup_epochs=1, epochs=1, plots=False)
    captured = capsys.readouterr()
    assert quote in captured.out + captured.err


def test_quote_pattern_is_live() -> None:
    """The wildcard match is not vacuous: a changed word outside ``...`` fails it."""
    pattern = _quote_pattern("error: unknown train key 'lr_0'. Did you mean 'lr0'? Valid: ...")
    assert pattern.search("error: unknown train key 'lr_0'. Did you mean 'lr0'? Valid: amp, batch")
    assert not pattern.search("error: unknown key 'lr_0'. Did you mean 'lr0'? Valid: amp, batch")
