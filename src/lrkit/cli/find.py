"""``lrkit find [TASK_FILE]``: run the LR range test and show/plot/save its suggestion.

A thin wrapper over :func:`lrkit.find_lr`: with no argument it runs the built-in digits demo; with a Python file it
builds the user's task from ``model()``, ``optimizer(params)``, ``train_loader()`` and ``loss_fn()``/``step_fn`` (or
neither: ``find_lr``'s default loss, or a Hugging Face model's own).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import torch
import typer

from lrkit._dist import distributed
from lrkit._utils import check_int, claim_dir, last_frame_in, optional_import, unknown_name_error
from lrkit.cli._common import (
    check_writable,
    cli_message,
    console,
    fail,
    print_chart,
    progress_bar,
    typed_float,
    typed_int,
    user_code_error,
)
from lrkit.finder import SUGGESTION_RULES, FinderResult, find_lr
from lrkit.finder import suggest as _suggest
from lrkit.finder.demo import demo_task, load_task_file
from lrkit.finder.range_test import _check_device
from lrkit.finder.suggest import REGIME_BACKOFF
from lrkit.plots.finder import _number_apart

__all__ = ["find_command", "register", "run_find"]


def run_find(
    task_file: str | None = None,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    mode: str = "exp",
    rule: str = "robust",
    accumulation_steps: int = 1,
    seed: int = 0,
    out: str | Path = "runs/find",
    progress: Any = None,
    device: str | None = None,
    amp: str = "off",
    max_grad_norm: float | None = None,
    diverge_factor: float | None = 4.0,
) -> tuple[FinderResult, Path | None]:
    """Run the range test on the demo (``task_file=None``) or a task file; write ``lr_find.png``/``lr_find.json``.

    Returns the result and the output directory (``runs/find``, ``runs/find2``, ... — never overwritten). Launched
    in several processes (``torchrun``: a task file that starts torch.distributed runs one test over every rank's
    shard), rank 0 alone writes; the other ranks return the same result and ``None``. The
    output location, the seed, ``device`` and ``amp`` are checked before anything runs, so a bad one costs no test.
    ``device`` (``"cuda"``, ``"cuda:1"``, ``"cpu"``, ...; ``None``: where ``model()`` put the model) moves the model
    there, and the batches with it. ``amp`` is ``"off"``, ``"on"`` (fp16 with a GradScaler on CUDA, bf16
    elsewhere), ``"bf16"`` or ``"fp16"``; ``max_grad_norm`` clips as the user's training loop does.
    """
    seed = check_int("seed", seed, 0, f" and <= {_MAX_SEED} (torch's seed range)")
    if seed > _MAX_SEED:
        raise ValueError(f"seed={seed} must be an integer >= 0 and <= {_MAX_SEED} (torch's seed range)")
    shown = os.fspath(out)
    out = Path(shown).expanduser()  # `--out=~/lr` reaches us unexpanded: no shell expands ~ after "="
    _check_out(out, shown)
    if amp not in _AMP:
        raise unknown_name_error("--amp", amp, list(_AMP))
    dev = _check_device(device, "leave out --device to use the device model() puts the model on") \
        if device is not None else None
    torch.manual_seed(seed)
    task = demo_task(seed) if task_file is None else load_task_file(Path(task_file).expanduser())
    if dev is not None and distributed():  # a DDP wrapper built in model() cannot move afterwards
        raise ValueError(f"--device {device} under torch.distributed: the task file's model() places the model (each "
                         "rank on its own device, e.g. torch.cuda.set_device(local_rank) before wrapping it in "
                         "DistributedDataParallel): leave out --device")
    if dev is not None:
        task.model.to(dev)  # in place: the optimizer keeps the same parameters
    try:
        result = find_lr(
            task.model, task.optimizer, task.train_loader, loss_fn=task.loss_fn, step_fn=task.step_fn,
            start_lr=start_lr, end_lr=end_lr, num_steps=num_steps, mode=mode, rule=rule,
            accumulation_steps=accumulation_steps, progress=progress, device=dev, amp=_AMP[amp],
            max_grad_norm=max_grad_norm, diverge_factor=diverge_factor,
        )
    except Exception as e:
        if task_file is None:
            raise
        path = Path(task_file).expanduser()
        error = user_code_error(e, {path: "task file"}, "the range test failed")
        if error is e and isinstance(e, ValueError) and repr(str(path)) not in str(e):  # (not named there yet)
            # find_lr's own message about an error the task file raised
            cause = _cause_in(e, path)  # (a loss_fn's RuntimeError, wrapped: the line was only in the cause)
            if cause is not None:
                error = ValueError(f"the range test failed running task file {str(path)!r} (in {cause.name}, line "
                                   f"{cause.lineno}): {e}")
        if isinstance(error, ValueError) and (_API_ADVICE.search(str(error))
                                              or any(api in str(error) for api, _ in _OPTIMIZER_ADVICE)):
            raise ValueError(_task_file_advice(str(error), own_loss=task.loss_fn is not None)) from e
        raise error from e
    result.setup = {"task": "demo" if task_file is None else str(Path(task_file).expanduser().resolve()),
                    "seed": seed, **(result.setup or {})}  # (lr_find.json says what was tested)
    if _process_rank()[0] != 0:  # rank 0 writes the one record (every rank holds the same result under DDP)
        return result, None
    # claimed with an exclusive mkdir: a concurrent `lrkit find` that took the name moves on
    out_dir = claim_dir(out, what="the folder for lr_find.png and lr_find.json")
    picture = out_dir / "lr_find.png"
    try:
        record = result.to_json(out_dir / "lr_find.json")
        result.plot(picture)  # a curve too short to judge is drawn too ("no suggestion"): it is worth a look
    except KeyboardInterrupt as e:  # Ctrl-C after the test: "nothing was written" would not be true
        raise _Interrupted(out_dir) from e
    try:
        _ = result.suggestion
    except ValueError as e:  # too short to judge: the record and the picture are kept, and the command fails
        raise _TooShort(f"{e} (the curve so far is in {record} and {picture})", result) from e
    return result, out_dir


def _cause_in(error: BaseException, path: Path) -> Any:
    """The innermost traceback frame in the task file ``path`` of the exceptions that caused ``error`` (its
    ``__cause__`` chain: find_lr wraps a loss_fn's error in its own message), or ``None``."""
    seen: set[int] = set()
    cause = error.__cause__
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        found = last_frame_in(cause, [path])
        if found is not None:
            return found[0]
        cause = cause.__cause__
    return None


def _process_rank() -> tuple[int, int, bool]:
    """``(rank, world size, grouped)`` of this process: torch.distributed's where a process group runs
    (``grouped``), else what a launcher (``torchrun``, ``accelerate launch``) put in ``RANK``/``WORLD_SIZE``, else
    ``(0, 1, False)``."""
    if distributed():
        return torch.distributed.get_rank(), torch.distributed.get_world_size(), True
    rank, world = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)
    if not 0 <= rank < world:  # a RANK left in the environment, no launch of WORLD_SIZE processes: one process alone
        return 0, 1, False
    return rank, world, False


def _fail(message: str, code: int = 2) -> None:
    """:func:`fail`, prefixed ``rank 1 of 2:`` when launched in several processes (each rank says its own)."""
    rank, world, _ = _process_rank()
    fail(message if world == 1 else f"rank {rank} of {world}: {message}", code)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() else default


def _ungrouped_note(world: int, demo: bool) -> str:
    """Rank 0's note when a launcher started ``world`` processes but no process group runs (``demo``: no task file)."""
    if demo:
        return (f"{world} processes were launched (WORLD_SIZE={world}), and each ran the built-in demo on its own; "
                "rank 0's is shown and written. The demo runs in one process: for a range test over several, give a "
                "task file whose model() starts torch.distributed")
    return (f"{world} processes were launched (WORLD_SIZE={world}), but the task file did not start torch.distributed: "
            "each process ran its own range test on its own copy of the data, and rank 0's is shown and written. "
            "For one test over every rank's shard, call torch.distributed.init_process_group() and wrap the model in "
            "DistributedDataParallel in model(), and give each rank its shard in train_loader()")


class _Interrupted(KeyboardInterrupt):
    """Ctrl-C while ``run_find`` wrote its results into ``out_dir`` (each file is written atomically: whole or not
    there)."""

    def __init__(self, out_dir: Path) -> None:
        super().__init__(str(out_dir))
        self.out_dir = out_dir


def _interrupted_writing(out_dir: Path) -> str:
    """The Ctrl-C message for :class:`_Interrupted`: what ``out_dir`` holds, or that it was removed (empty)."""
    held = sorted(p.name for p in out_dir.iterdir()) if out_dir.is_dir() else []
    if not held:
        with contextlib.suppress(OSError):
            out_dir.rmdir()  # the folder this run claimed, still empty: nothing was written
        return "interrupted — the range test had finished, but it was stopped before its results were written; " \
               "nothing was written"
    return (f"interrupted — the range test had finished, but writing its results into {str(out_dir)!r} stopped: it "
            f"holds {' and '.join(held)} only; run the test again for both lr_find.png and lr_find.json")


class _TooShort(ValueError):
    """A range test too short to judge: ``result`` holds the curve so far, which ``lrkit find`` still draws."""

    def __init__(self, message: str, result: FinderResult) -> None:
        super().__init__(message)
        self.result = result


_MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit integer

#: ``--amp`` on the command line -> ``find_lr(amp=...)``.
_AMP: dict[str, bool | str] = {"off": False, "on": True, "bf16": "bf16", "fp16": "fp16"}


#: find_lr's advice for its Python callers ("pass step_fn=lambda model, batch: loss", "pass a loss_fn that fits
#: them"), which a task file follows by defining the function instead.
_API_ADVICE = re.compile(r"\b(?:pass )?(step_fn=lambda model, batch: loss|loss_fn=lambda out, y: loss)(?: instead)?"
                         r"|\bpass (a loss_fn) that fits them")


#: find_lr's notes about the optimizer (Prodigy's, LBFGS's with a line search) -> what a task file changes instead
_OPTIMIZER_ADVICE = (
    ("run find_lr with a non-adaptive optimizer (SGD, AdamW)",
     "return a non-adaptive optimizer (SGD, AdamW) from optimizer(params)"),
    ("run find_lr with line_search_fn=None", "build it with line_search_fn=None in optimizer(params)"),
    # a Dataset from train_loader(): the file returns the DataLoader
    ("pass DataLoader(dataset, batch_size=32, shuffle=True)",
     "return DataLoader(dataset, batch_size=32, shuffle=True) from train_loader()"),
    # optimizer(params) that builds on a new model() (SGD(model().parameters())): the file's params are the model's
    ("build the optimizer on this model's parameters (",
     "build the optimizer on this model's parameters (in the task file, optimizer(params): build it on the params it "
     "is given, those of the model model() returned, not on a new model(); "),
)


#: find_lr's note that without a loss_fn a Hugging Face batch goes to the model whole: a task file gets there by
#: defining neither loss_fn nor step_fn.
_WHOLE_BATCH_NOTE = re.compile(r" \(with no loss_fn, a batch with 'labels' and no input key goes to the model whole, "
                               r"[^()]*\(\*\*batch\)[^()]*\)")
_WHOLE_BATCH_TASK = (" (a task file that defines neither loss_fn nor step_fn sends a batch with 'labels' and no input "
                     "key to the model whole, model(**batch), and uses the loss it returns, as a Hugging Face model "
                     "computes it)")


def _task_file_advice(message: str, *, own_loss: bool = False) -> str:
    """``message`` with find_lr's advice to pass a lambda rewritten for a task file, which defines the function; a
    Hugging Face batch (``input_ids`` and ``labels``) gets the ``step_fn`` such a model takes.

    >>> _task_file_advice("cannot split it; pass step_fn=lambda model, batch: loss instead")
    'cannot split it; define step_fn(model, batch) in the task file, returning the loss'
    >>> _task_file_advice("the default loss failed; pass a loss_fn that fits them (cross_entropy ...)")
    'the default loss failed; define loss_fn(output, target) in the task file to fit them (cross_entropy ...)'

    ``own_loss``: the task file defines its loss_fn, which failed: it is changed, not defined.
    """
    def define(m: re.Match[str]) -> str:
        if m.group(2):
            return f"{'change' if own_loss else 'define'} loss_fn(output, target) in the task file to fit them"
        if m.group(1).startswith("step_fn"):
            return "define step_fn(model, batch) in the task file, returning the loss"
        return "define loss_fn(output, target) in the task file"

    message = _API_ADVICE.sub(define, message)
    for api, task in _OPTIMIZER_ADVICE:  # the optimizer notes: a task file changes its optimizer(params)
        message = message.replace(api, task)
    message = _WHOLE_BATCH_NOTE.sub(lambda m: _WHOLE_BATCH_TASK, message)  # the task file's way to the default
    if "'input_ids'" in message and "'labels'" in message:  # a Hugging Face model takes the dict, returns its loss
        message += " (a Hugging Face model: def step_fn(model, batch): return model(**batch).loss)"
    return message


# Suffixes of the files lrkit find writes *into* --out: `--out lr.png` means a file, but --out names a folder.
_FILE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".pdf", ".svg", ".svgz", ".eps", ".ps", ".webp", ".gif", ".tif",
                            ".tiff", ".json", ".csv"})


#: find_lr's numeric keywords that are ``lrkit find`` options, and their flags (``mode``/``rule``: ``_UNKNOWN``)
_OPTIONS = {"start_lr": "--start-lr", "end_lr": "--end-lr", "num_steps": "--num-steps",
            "accumulation_steps": "--accumulation-steps", "max_grad_norm": "--max-grad-norm", "seed": "--seed",
            "diverge_factor": "--diverge-factor"}
_UNKNOWN = re.compile(r"\bunknown (mode|rule) ")


def _as_flags(message: str, values: dict[str, Any] | None = None) -> str:
    """``find_lr``'s messages name its Python arguments (``num_steps=5 must be ...``); on the command line they name
    the flags the user typed, with the values as typed (``--num-steps 5 must be ...``): :func:`cli_message` with
    ``values``, the options' values by keyword (a :class:`~lrkit.cli._common.TypedFloat` keeps its text).

    >>> _as_flags("end_lr=1.0 must be greater than start_lr=10.0", {"end_lr": 1.0, "start_lr": 10.0})
    '--end-lr 1 must be greater than --start-lr 10'
    >>> _as_flags("unknown mode 'cubic'. Valid: exp, linear")
    "unknown --mode 'cubic'. Valid: exp, linear"
    >>> _as_flags("too short to judge; lower start_lr (now 5) or raise num_steps (now 20)")
    'too short to judge; lower --start-lr (now 5) or raise --num-steps (now 20)'
    """
    values = values or {}
    message = message.replace("(mode='exp')", "(--mode exp)")  # FinderResult's advice for a linear sweep
    options = {key: (flag, values.get(key)) for key, flag in _OPTIONS.items()}
    # (no spec keys here: each key=VALUE is the option's, however the library spelt the value)
    return _UNKNOWN.sub(lambda m: f"unknown --{m.group(1)} ", cli_message(message, options, any_value=True))


def _check_out(out: Path, shown: str | None = None) -> None:
    """Refuse an output folder that cannot be created (a file or a broken symlink on its path, a read-only parent)
    before the test.

    ``--out`` is a folder that receives ``lr_find.png`` and ``lr_find.json``: a name with a picture or record suffix
    (``--out lr.png``, the way ``lrkit schedule --out`` is used) and an existing file are refused, rather than
    creating a folder called ``lr.png`` or quietly writing to ``afile2/`` beside a file called ``afile``. A path with
    no folder name of its own (``""``, ``.``, ``..``) is refused too: numbering it made a folder called ``2``.
    ``shown`` is the text the user gave (default ``str(out)``).
    """
    if out.name in ("", ".."):  # Path("") and Path("./") are "."; "." and "/" have the name ""
        raise ValueError(
            f"--out={str(out) if shown is None else shown!r} names no folder of its own (the current folder, a parent "
            "or the root): --out is a new folder that receives lr_find.png and lr_find.json, e.g. --out runs/find"
        )
    if out.suffix.lower() in _FILE_SUFFIXES and not out.is_dir():
        raise ValueError(
            f"--out={str(out)!r} names a file, but --out is the folder that receives lr_find.png and lr_find.json; "
            f"give a folder, e.g. --out {str(out.with_suffix(''))!r}"
        )
    if out.exists() and not out.is_dir():
        raise ValueError(
            f"cannot write to {str(out)!r}: it is a file, not a folder (--out is the folder that receives "
            "lr_find.png and lr_find.json)"
        )
    for link in (out, *out.parents):  # mkdir cannot make a folder where, or under where, a broken symlink is
        if link.is_symlink() and not link.exists():
            raise ValueError(
                f"cannot create the folder for lr_find.png and lr_find.json {str(out)!r}: it, or a folder on its "
                f"path, is a file or a broken symlink ({str(link)!r} points to {os.readlink(link)!r}, which does not "
                "exist)"
            )
    # the folder is made beside an existing --out (runs/find2) or in its place: either way in out.parent
    check_writable(out)
    _probe_folder(out, shown)


def _probe_folder(out: Path, shown: str | None = None) -> None:
    """Make and remove a folder where ``--out``'s folder will be made (its nearest existing ancestor), so a folder
    that the permission bits call writable but that refuses a ``mkdir`` — ``/proc``, an NFS export that squashes
    root, a read-only bind mount seen through ``os.access`` as root — fails before the test, not after it with a bare
    ``[Errno 2] No such file or directory`` and the curve lost."""
    import tempfile

    parent = out.parent
    while not parent.is_dir() and parent != parent.parent:
        parent = parent.parent
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".lrkit-find-probe-", dir=parent))
    except OSError as e:
        raise ValueError(
            f"cannot create the folder for lr_find.png and lr_find.json {str(out) if shown is None else shown!r}: a "
            f"folder cannot be made in {str(parent)!r} ({e.strerror or type(e).__name__}); give --out a writable "
            "folder, e.g. --out runs/find"
        ) from None


def _curve_reading(result: FinderResult) -> str:
    """How the default rule read the curve, for the table: its regime and noise, the back-off it took, and how far
    below the minimum the suggestion really is when the rule kept it inside the descent."""
    if result.flat:  # no descent, no minimum: the rule backed off from where the flat loss blew up
        return _flat_reading(result)
    reading = {"explosion": "exploded", "plateau": "plateaued, no edge"}[result.regime]
    if result.double_dip:  # backed off from the first dip's minimum, not the deeper second one
        reading = f"dipped twice, edge at the first dip ({result.edge:.3g})"
    noise = result.noise
    back = result.backoff
    full = REGIME_BACKOFF[result.regime]
    if noise == noise:  # a noise-dominated curve backs off less (README: the noise scaling)
        if not result.noise_scaled:  # a tiny dataset cycled through: its scatter is not gradient noise
            shown = _number_apart(noise, fixed=True)
            reading += f" (noise {shown}, not scaled: {result.passes:.3g} passes over the data)"
        else:  # printed on its own side of the band's edges (0.07002 is not "0.07", where the back-off is full)
            shown = _number_apart(noise, _suggest.ROBUST_NOISE_BAND or (), fixed=True)
            reading += f" (noise {shown}{', noise-dominated' if back < full else ''})"
    decades = _number_apart(back, (0.0, full))  # a scaled back-off never reads as the full one (0.9992 is not "1")
    row = f"{reading}: back off {decades} decade{'' if decades == '1' else 's'}"
    below = math.log10(result.edge / result.suggestion)  # edge: the smoothed minimum's LR (the first dip's)
    if below < back - 0.05:  # the rule kept its LR inside the part of the curve where the loss was seen falling
        # (none at all, a constant loss whose minimum is its first LR: "0 kept" said nothing)
        row += " (at the minimum: kept inside the descent)" if float(f"{below:.2g}") == 0 else \
            f" ({below:.2g} kept inside the descent)"
    return row


def _flat_reading(result: FinderResult) -> str:
    """The curve row for a curve too flat to judge that blew up (:attr:`FinderResult.flat`): how flat, where it blew
    up, the back-off (never noise-scaled), and how far below the edge the suggestion really is when the first LR
    tested clipped it."""
    share = f"{float(_suggest.ROBUST_FLAT or 0.0) * 100:.3g}%"  # (a flat reading: ROBUST_FLAT is on)
    sigmas = _suggest.ROBUST_FLAT_SIGMAS  # with it, a dip within the curve's own scatter is no learning either
    never = f"never fell {share}" if sigmas is None else f"never fell more than max({share}, {sigmas:g} sigma of its " \
        "scatter)"
    back = result.backoff
    row = (f"too flat to judge (the loss {never}); it blew up past {result.edge:.3g}: "
           f"back off {back:.2g} decade{'' if back == 1 else 's'}")
    below = math.log10(result.edge / result.suggestion)
    if below < back - 0.05:  # a decade below the edge is below the range tested
        row += f" (only {below:.2g} below it: the lowest LR tested)"
    return row


def _diverge_option(text: str) -> float | None:
    """``--diverge-factor``: a number, or ``none``/``off`` for no divergence stop (``find_lr(diverge_factor=None)``);
    find_lr checks the number's range, under the flag's name."""
    if str(text).strip().lower() in ("none", "off", "no", "false"):
        return None
    try:
        return float(str(text).strip())
    except ValueError:
        _fail(f"--diverge-factor {text!r} must be a number (4 is the default) or none (no divergence stop)")
        raise  # pragma: no cover - fail exits


def find_command(
    task_file: Annotated[
        Optional[str],  # noqa: UP045 - typer reads Optional on Python 3.10
        typer.Argument(help="Python file defining model(), optimizer(params), train_loader(), loss_fn()/step_fn "
                            "(optional)."),
    ] = None,
    start_lr: Annotated[float, typer.Option(parser=typed_float, help="First LR of the sweep.")] = 1e-7,
    end_lr: Annotated[float, typer.Option(parser=typed_float, help="Last LR of the sweep.")] = 10.0,
    num_steps: Annotated[int, typer.Option(parser=typed_int, help="Optimizer steps in the test (at least 10).")] = 100,
    mode: Annotated[str, typer.Option(help="exp (log-spaced) or linear.")] = "exp",
    rule: Annotated[str, typer.Option(help="Suggestion rule: robust, steepest, minimum, valley.")] = "robust",
    accumulation_steps: Annotated[int, typer.Option(parser=typed_int, help="Micro-batches per optimizer step.")] = 1,
    seed: Annotated[int, typer.Option(parser=typed_int, help="Seed for the model init and data order.")] = 0,
    out: Annotated[str, typer.Option(help="Output directory (runs/find, runs/find2, ...).")] = "runs/find",
    device: Annotated[
        Optional[str],  # noqa: UP045 - typer reads Optional on Python 3.10
        typer.Option(help="Move the model (and batches) here, e.g. cuda, cuda:1, cpu. Default: where model() put it."),
    ] = None,
    amp: Annotated[
        str, typer.Option(help="Mixed precision: off, on (fp16 on CUDA, bf16 elsewhere), bf16, fp16.")
    ] = "off",
    max_grad_norm: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(parser=typed_float, help="Clip the gradient norm as your training loop does."),
    ] = None,
    diverge_factor: Annotated[
        str, typer.Option(metavar="<float|none>", help="Stop once the smoothed loss exceeds this x its best; none: run "
                                                       "to --end-lr (fastai's stop_div=False).")
    ] = "4",
    chart: Annotated[
        bool, typer.Option("--chart/--no-chart", help="Draw the curve in the terminal (text) above the table.")
    ] = True,
) -> None:
    """Run the LR range test and print the suggested learning rate.

    With no TASK_FILE: the built-in demo (scikit-learn digits, an MLP, SGD with momentum).

    A TASK_FILE is a Python file that defines:
      model()                  -> a torch.nn.Module
      optimizer(params)        -> a torch.optim optimizer over params
                                  (or optimizer(model): param groups
                                  built from the model's modules)
      train_loader()           -> an iterable of (x, y) batches (or dicts)
      loss_fn()                -> the loss function, e.g.
                                  torch.nn.functional.cross_entropy
                                  (or define loss_fn(output, target) itself)
      or step_fn(model, batch) -> the loss, for anything else
      (neither, or loss_fn = None to say so: the default loss, cross-entropy
      or MSE; a Hugging Face batch, labels and no x key, goes to the model
      whole: model(**batch).loss; a loss under another name, such as
      criterion, is refused with the name to give it)

    Draws the curve in the terminal (--no-chart: not), prints the suggestion,
    the range, every rule's LR and which loss ran; writes lr_find.png and
    lr_find.json into --out (runs/find, then runs/find2, ...: never
    overwritten).
    """
    if task_file is not None and not task_file.strip():  # Path("") is ".": it was named "task file '.'"
        _fail(f"task file {task_file!r} is empty: give a Python file (e.g. 'my_task.py'), or leave TASK_FILE out to "
              "run the built-in demo")
    if rule not in SUGGESTION_RULES:
        _fail(str(_suggest.unknown_rule_error(rule, "--rule")))
    diverge = _diverge_option(diverge_factor)
    con = console()
    import warnings

    # what each option received, by find_lr's keyword: a message about one names the flag, with the value as typed
    values = {"start_lr": start_lr, "end_lr": end_lr, "num_steps": num_steps, "accumulation_steps": accumulation_steps,
              "max_grad_norm": max_grad_norm, "seed": seed, "diverge_factor": diverge_factor}
    lead = _process_rank()[0] == 0  # under torchrun rank 0 alone draws the bar, prints and writes
    try:
        with warnings.catch_warnings(record=True) as caught, \
                progress_bar("LR range test", num_steps) if lead else _no_bar() as update:
            warnings.simplefilter("always")

            def on_step(step: int, total: int, lr: float, loss: float) -> None:
                update(info=f"lr={lr:.2e} loss={loss:.4f}")

            result, out_dir = run_find(
                task_file, start_lr=float(start_lr), end_lr=float(end_lr), num_steps=num_steps, mode=mode,
                rule=rule, accumulation_steps=accumulation_steps, seed=seed, out=out, progress=on_step,
                device=device, amp=amp, max_grad_norm=None if max_grad_norm is None else float(max_grad_norm),
                diverge_factor=diverge,
            )
            if result.stop_reason != "completed":  # the bar ends where the test did, not short of its total
                update(advance=0, total=result.num_steps_run, info=f"stopped: {result.stop_reason}")
    except (ValueError, OSError, TypeError) as e:
        if chart and isinstance(e, _TooShort):  # the curve so far is worth a look, as lr_find.png is (rank 0 only:
            print_chart(con, e.result.text_plot)  # run_find judges the curve where it writes)
        message = _as_flags(str(e), values)
        if message.startswith("--diverge-factor"):  # find_lr's Python None is typed none here
            message = message.replace("or None for no stop", "or none for no stop")
        _fail(message)
        return
    except KeyboardInterrupt as e:  # Ctrl-C: a line saying so (run_find writes --out only after the test)
        if isinstance(e, _Interrupted):  # after the test, while writing: say what --out holds
            _fail(_interrupted_writing(e.out_dir), code=130)
        _fail("interrupted — the range test stopped before it finished; nothing was written", code=130)
        return
    if out_dir is None:  # another rank: rank 0 shows and writes the one result
        return
    _, world, grouped = _process_rank()
    if world > 1 and not grouped:
        caught.insert(0, warnings.WarningMessage(_ungrouped_note(world, task_file is None), UserWarning, __file__, 0))
    for w in caught:
        escape = optional_import("rich.markup", "cli").escape
        text = str(w.message) if task_file is None else _task_file_advice(str(w.message))  # (define, not pass)
        con.print(f"[yellow]warning:[/] {escape(_as_flags(text, values))}", highlight=False)
    if chart:
        print_chart(con, result.text_plot)
    table_mod = __import__("rich.table", fromlist=["Table"])
    ranks = f", {world} ranks (torch.distributed)" if grouped and world > 1 else ""
    table = table_mod.Table(title=f"LR range test — {result.num_steps_run} steps, {result.stop_reason}{ranks}")
    table.add_column("")
    table.add_column("learning rate", justify="right")
    table.add_row(f"[bold]suggestion ({result.rule})", f"[bold green]{result.suggestion:.3g}")
    if result.rule == "robust":  # which back-off the default rule took, and why
        table.add_row("  curve", _curve_reading(result))
    low, high = result.range
    table.add_row("range (low – high)", f"{low:.3g} – {high:.3g}")
    for name, lr in result.suggestions().items():
        if name != result.rule:
            table.add_row(f"rule: {name}", f"{lr:.3g}")
    if result.loss is not None:  # which loss ran: a task file may define neither loss_fn nor step_fn
        escape = optional_import("rich.markup", "cli").escape  # (a name in [brackets] is not markup)
        table.add_row("loss", escape(result.loss))
    con.print(table)
    escape = optional_import("rich.markup", "cli").escape  # a folder "runs/[adamw]" is text, not rich markup
    # soft_wrap: each path on its one line, whatever the width (a log file's 80 columns folded a long one in two)
    con.print(f"plot:   {escape(str(out_dir / 'lr_find.png'))}\nrecord: {escape(str(out_dir / 'lr_find.json'))}",
              highlight=False, soft_wrap=True)


@contextlib.contextmanager
def _no_bar() -> Iterator[Callable[..., None]]:
    """:func:`progress_bar`'s stand-in on a rank other than 0: nothing drawn."""
    yield lambda *args, **kwargs: None


def register(app: Any) -> None:
    """Add the ``find`` command to a Typer app."""
    app.command("find", context_settings={"help_option_names": ["-h", "--help"]})(find_command)
