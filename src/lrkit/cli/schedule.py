"""``lrkit schedule``: print a schedule's key points, draw it, or dump it as JSON.

    lrkit schedule "cosine lr0=0.01 lrf=0.01 warmup_epochs=3" --epochs 100 --steps-per-epoch 500 --out lr.png
    lrkit schedule "onecycle max_lr=0.1" -e 10 -n 100 --compare "cosine lr0=0.1 warmup_steps=100"
    lrkit schedule "wsd lr0=1e-3 warmup_steps=100 decay_frac=0.1" --total-steps 10000 --json
    lrkit schedule --list

The command parses its options, builds the schedule with :func:`lrkit.schedules.from_spec`, takes a bounded
:func:`~lrkit.schedules.report.sampled_record` (every step of a run up to 20 000 steps; of a longer one, 20 000 even
steps plus both sides of every phase boundary) and prints/plots that record
(:func:`lrkit.plots.schedule.plot_schedule`); ``--json`` streams one value per step
(:func:`~lrkit.schedules.report.write_json`), so a run of ten million steps is quick and lean either way.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from lrkit._utils import optional_import
from lrkit.cli._common import check_named_writable, cli_message, console, fail, print_chart, shown, typed_float
from lrkit.plots.finder import figure_format

__all__ = ["register", "schedule_command"]

_EPILOG = (
    "Spec: '<name> key=value ...', e.g. 'step lr0=0.1 step_size=30 gamma=0.1' (step_size in epochs), "
    "'cyclic base_lr=0.001 max_lr=0.1 step_size_up=200 mode=triangular2', "
    "'cosine lr0=0.01 lrf=0.01 warmup_epochs=3'. See --list for every family."
)


def _fmt(v: Any, digits: int = 4) -> str:
    """A table cell's number: ``digits`` significant digits; with fewer than 4 (a narrow terminal) the exponent
    short too (``6.17e-7``, not ``6.168e-07``)."""
    if v is None:
        return "-"
    if isinstance(v, float):
        text = f"{v:.{digits}g}"
        if digits < 4 and "e" in text:
            mant, _, exp = text.partition("e")
            text = f"{mant}e{int(exp)}"
        return text
    return str(v)


def _epoch(x: float) -> str:
    """An epoch in the table: every digit of its whole part, and 4 significant digits at least (epoch 12345 of a
    long run is ``12345``, not ``1.234e+04``, which is epoch 12340).

    >>> _epoch(3.0), _epoch(2.5714285), _epoch(12345.0), _epoch(12345.5), _epoch(0.0)
    ('3', '2.571', '12345', '12345.5', '0')
    """
    whole = len(str(int(abs(x)))) if math.isfinite(x) and abs(x) < 1e15 else 0
    return f"{x:.{max(4, whole + 1)}g}"


#: Below this terminal width ``--list`` prints two columns (name; description with its unit, torch name and aliases
#: under it): five columns in 80 cut names and words in two (``cosine_restart`` / ``s``).
_LIST_WIDE = 150


def _print_list() -> None:
    from lrkit.schedules import available

    rich_table = optional_import("rich.table", "cli")
    text_mod = optional_import("rich.text", "cli")
    out = console()
    wide = out.width >= _LIST_WIDE
    table = rich_table.Table(title="lrkit schedules", show_lines=not wide)
    if wide:
        for col in ("name", "aliases", "time unit", "same as", "description"):
            table.add_column(col, overflow="fold", no_wrap=col in ("name", "time unit"))
    else:
        table.add_column("name", no_wrap=True)
        table.add_column("description · time unit · same as · aliases", overflow="fold")
    for e in available():
        # a family without a unit= parameter has no default unit to show: its keys say theirs (warmup_steps, ...)
        unit = e.unit if "unit" in e.parameters else "–"
        if wide:
            table.add_row(e.name, ", ".join(e.aliases), unit, e.torch_equivalent, e.description)
        else:  # plain Text: a description's brackets are not rich markup
            table.add_row(e.name, text_mod.Text.assemble(
                e.description, "\n", (f"time unit: {unit} · same as: {e.torch_equivalent}", "dim"), "\n",
                (f"aliases: {', '.join(e.aliases)}", "dim")))
    out.print(table)


def _list_record() -> list[dict[str, Any]]:
    """Every registered family as plain JSON values: ``lrkit schedule --list --json``'s output. A default JSON has
    no literal for (a callable ``scale_fn``, say) is written as its ``repr``."""
    from lrkit.schedules import available

    def plain(value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, str)):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else repr(value)
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        return repr(value)

    return [{"name": e.name, "aliases": list(e.aliases), "description": e.description,
             "torch_equivalent": e.torch_equivalent,
             "unit": e.unit if "unit" in e.parameters else None,
             "required": list(e.required),
             "defaults": {k: plain(v) for k, v in e.defaults.items()}} for e in available()]


def _write_list_json(stream: Any) -> None:
    json.dump(_list_record(), stream, indent=1)
    stream.write("\n")


def _print_key_points(record: dict[str, Any], digits: int = 4) -> None:
    """The key-points table of one schedule record. In a terminal too narrow for its numbers at 4 significant
    digits it prints them at 3 with a short exponent, so a number is not folded across two lines
    (``6.168e-`` / ``07``); where even that does not fit, the columns fold as before."""
    from lrkit.schedules.report import key_points

    rich_table = optional_import("rich.table", "cli")
    kp = key_points(record)
    spe = record.get("steps_per_epoch")
    unit = "LR" if record.get("absolute") else "LR (x peak)"
    has_mom = any(m is not None for m in record["momentum"])
    n, epochs = kp["steps"], kp["steps"] / spe if spe else None
    title = (f"{record['label']} — {n} step{'' if n == 1 else 's'}"
             + (f" ({epochs:g} epoch{'' if epochs == 1 else 's'})" if spe else ""))
    # as wide as its title where the terminal has room: a narrower table wrapped the title mid-phrase ("(90 / epochs)")
    table = rich_table.Table(title=title, min_width=min(len(title), console().width))
    for col in ("phase", "steps", *(("epochs",) if spe else ()), f"{unit} start", f"{unit} end",
                *(("momentum start", "momentum end") if has_mom else ())):
        # fold, never cut: the numbers are what the table is for, and in an 80-column terminal a 10^6-step run's
        # steps read "999998–9999…" with rich's default overflow
        table.add_column(col, justify="left" if col == "phase" else "right", overflow="fold")
    rows = kp["phases"]
    count = kp["phase_count"]  # an elided record of millions of cycles lists only its first and last rows
    shown = rows if count <= 17 else [*rows[:8], None, *rows[-8:]]  # the first and the last 8, as the record keeps
    for r in shown:
        if r is None:
            table.add_row(f"… {count - 16} more", *([""] * (len(table.columns) - 1)))
            continue
        cells = [r["phase"], f"{r['start']}–{r['end']}"]
        if spe:
            cells.append(f"{_epoch(r['start'] / spe)}–{_epoch((r['end'] + 1) / spe)}")
        cells += [_fmt(r["lr_start"], digits), _fmt(r["lr_end"], digits)]
        if has_mom:
            cells += [_fmt(r["momentum_start"], digits), _fmt(r["momentum_end"], digits)]
        table.add_row(*cells)
    out = console()
    # rich's own measure of the table at full width: wider than the terminal, a number would fold mid-number
    measure = optional_import("rich.measure", "cli").Measurement.get(out, out.options.update_width(10_000), table)
    if measure.maximum > out.width and digits == 4:
        _print_key_points(record, digits=3)
        return
    out.print(table)
    out.print(
        f"max {_fmt(kp['max']['lr'])} at step {kp['max']['step']} · min {_fmt(kp['min']['lr'])} at step "
        f"{kp['min']['step']} · final {_fmt(kp['last']['lr'])}"
        + (f" · momentum {_fmt(kp['first']['momentum'])} → {_fmt(kp['last']['momentum'])}" if has_mom else ""),
        highlight=False,
    )


def schedule_command(
    spec: Optional[str] = None,  # noqa: UP045 - typer reads these annotations at runtime
    *,
    epochs: Optional[float] = None,  # noqa: UP045
    steps_per_epoch: Optional[float] = None,  # noqa: UP045
    total_steps: Optional[float] = None,  # noqa: UP045
    out: Optional[Path] = None,  # noqa: UP045
    compare: Optional[list[str]] = None,  # noqa: UP045
    as_json: bool = False,
    list_: bool = False,
    base_lr: Optional[float] = None,  # noqa: UP045
    no_plot: bool = False,
    log_y: bool = False,
    chart: bool = True,
) -> None:
    """Everything ``lrkit schedule`` does, callable without typer's option parsing."""
    if list_:
        if compare:
            fail("--list prints every family: drop --compare")
        if spec:
            fail(f"--list prints every family: drop the spec {spec!r} (or drop --list to draw it)")
        if as_json:
            if sys.stdout is None:
                fail("--json writes the JSON to stdout, which is closed: give the command a stdout (a file, a pipe)")
            _write_list_json(sys.stdout)
        else:
            _print_list()
        return
    # `--out --json`, `--compare --no-plot`: a value forgotten, the next flag was taken as the value (a PNG named
    # '--json' was written; '--no-plot' was an "unknown schedule")
    if out is not None and str(out) in _FLAGS:
        fail(f"--out needs a file name, got the option {str(out)!r}: give --out FILE (e.g. --out schedule.png) "
             f"and {out} on its own")
    for other in compare or []:
        if other.strip().startswith("-"):  # a spec starts with a family's name, never with '-'
            fail(f"--compare needs a spec, got {other.strip()!r}"
                 + (" (an option)" if other.strip().split()[0] in _FLAGS else "")
                 + ": give --compare 'SPEC' (e.g. --compare 'cosine lr0=0.1'), each option on its own")
    if not spec:
        fail("give a schedule spec, e.g. lrkit schedule \"cosine lr0=0.01 lrf=0.01\" --epochs 100 "
             "--steps-per-epoch 500 (or --list to see every family)")
    if as_json and compare:
        fail("--json prints one schedule as {\"lr\": [...], \"momentum\": [...]}: drop --compare")
    if as_json and sys.stdout is None:  # `>&-`: Python has no stdout to write the JSON to
        fail("--json writes the JSON to stdout, which is closed: give the command a stdout (a file, a pipe)")
    # the library's keywords, as the command line names them: an error about one names the flag, its value as typed
    options = {"epochs": ("--epochs", epochs), "steps_per_epoch": ("--steps-per-epoch", steps_per_epoch),
               "total_steps": ("--total-steps", total_steps)}
    if base_lr is not None and not (0 < base_lr < float("inf")):  # checked even where a spec has its own peak
        fail(f"--base-lr {shown(base_lr)} must be a finite number > 0")
    if out is not None and str(out) == "-":  # not stdout: the picture is a file (the table or JSON is on stdout)
        fail("--out - is no picture's name: give a file, e.g. --out schedule.png (or --no-plot for none)")
    if out is not None:
        out = out.expanduser()  # `--out=~/lr.png` reaches us unexpanded: no shell expands ~ after "="
    if not no_plot and (out is not None or not as_json):
        # a picture will be drawn: without matplotlib, the one line naming the extra, before the table and the chart
        # (not after them, for a picture that could never be written)
        optional_import("matplotlib.pyplot", "plot")
    if out is not None and not (as_json and no_plot):
        try:
            figure_format(out)  # a name matplotlib cannot write is refused before any work
            _check_out(out)  # and so is a folder, or a path through a file: nothing printed, then a failure
        except ValueError as e:
            fail(f"--out: {e}")
    from lrkit.schedules import from_spec
    from lrkit.schedules.report import sampled_record, write_json

    specs = [spec, *(compare or [])]
    records = []
    scheds = []
    used_base_lr = False
    for s in specs:
        try:
            sched = from_spec(s, epochs=_plain(epochs), steps_per_epoch=_plain(steps_per_epoch),
                              total_steps=_plain(total_steps))
            if sched.total_steps is None:
                fail(f"{s!r} has no fixed length: pass --epochs and --steps-per-epoch, or --total-steps")
            if base_lr is not None and sched.peak_lr is None:
                _check_base_lr(s, sched, float(base_lr), epochs, steps_per_epoch, total_steps)
                sched = sched.with_peak(float(base_lr))
                used_base_lr = True
            # a bounded record: every step of a short run, of a long one an even grid plus every phase boundary
            records.append(sampled_record(sched))
            bad = _first_non_finite(sched, records[-1])
        except (ValueError, TypeError, ArithmeticError) as e:  # ArithmeticError: a multiplier that overflows
            hint = " (here: --base-lr LR gives the peak)" if "the peak LR must be known" in str(e) else ""
            fail(f"{_naming(s, cli_message(str(e), options))}{hint}")
        if bad is not None:  # never printed: `Infinity`/`NaN` are not JSON, and such a schedule is no schedule
            what, step, value = bad
            fail(f"{s!r}: the {what} is not finite from step {step} on ({value}): the schedule overflows a float; "
                 "lower lr0 or gamma, or shorten the run")
        if not no_plot and (out is not None or not as_json):  # a picture will be drawn: one it can draw, before
            from lrkit.plots.schedule import check_drawable  # the table (a constant 1e308 broke matplotlib's ticker)

            try:
                check_drawable(records[-1:])
            except ValueError as e:
                fail(_naming(s, str(e)))
        scheds.append(sched)
    _check_same_scale(specs, scheds)
    if epochs is not None and steps_per_epoch is not None and total_steps is not None \
            and round(float(epochs) * float(steps_per_epoch)) != float(total_steps):
        # torch's OneCycleLR order: total_steps wins; the epochs asked for are not the run drawn, so say so
        console(stderr=True).print(
            f"[yellow]warning:[/] --total-steps {shown(total_steps)} wins over --epochs {shown(epochs)} x "
            f"--steps-per-epoch {shown(steps_per_epoch)} = {round(float(epochs) * float(steps_per_epoch))} steps: "
            f"the run is {int(float(total_steps))} steps ({float(total_steps) / float(steps_per_epoch):g} epochs); "
            "drop one of the three", highlight=False, soft_wrap=True)
    if base_lr is not None and not used_base_lr:  # on stderr: --json output stays clean
        console(stderr=True).print(
            f"[yellow]warning:[/] --base-lr {shown(base_lr)} is not used: "
            + ("every spec gives" if compare else f"{spec!r} gives") + " its own peak LR (lr0/max_lr)",
            highlight=False, soft_wrap=True)
    if as_json:
        try:  # one value per step, streamed in chunks: a long run is never held in memory
            write_json(scheds[0], sys.stdout)
        except (ValueError, ArithmeticError) as e:
            fail(_naming(specs[0], cli_message(str(e), options)))
        if out is not None and not no_plot:
            _plot(records, out, log_y)
        return
    for rec in records:
        _print_key_points(rec)
    if chart:
        from lrkit.plots.text import schedule_text

        print_chart(console(), lambda **kw: schedule_text(records, log_y=log_y, **kw), height=12)
    if not no_plot:
        path = _plot(records, out if out is not None else _free_picture_name(), log_y)
        console().print(f"wrote {path}", highlight=False, markup=False, soft_wrap=True)  # one line, as written


#: the command's own options: an ``--out`` value that is one of them is a forgotten value, not a file name
_FLAGS = frozenset({"--epochs", "-e", "--steps-per-epoch", "-n", "--total-steps", "-t", "--out", "-o", "--compare",
                    "-c", "--json", "--list", "--base-lr", "--no-plot", "--log-y", "--chart", "--no-chart", "--help",
                    "-h"})


def _check_base_lr(spec: str, sched: Any, base_lr: float, epochs: float | None, steps_per_epoch: float | None,
                   total_steps: float | None) -> None:
    """Fail unless ``--base-lr`` passes the checks the spec's own peak key would (``cosine eta_min=0.01 --base-lr
    0.005`` drew an LR climbing to its floor, where ``lr0=0.005`` is refused), naming ``--base-lr``."""
    from lrkit.schedules import from_spec

    try:
        from_spec(f"{spec} {sched._peak_name}={base_lr!r}", epochs=_plain(epochs),
                  steps_per_epoch=_plain(steps_per_epoch), total_steps=_plain(total_steps))
    except ValueError as e:
        fail(f"{spec!r}: --base-lr {shown(base_lr)} is its peak LR ({sched._peak_name}): {e}")


def _plain(value: float | None) -> float | None:
    """A plain float for the library (a :class:`~lrkit.cli._common.TypedFloat` stays on the command line)."""
    return None if value is None else float(value)


def _naming(spec: str, message: str) -> str:
    """``message`` with the spec it is about in front, unless it names that spec already (``schedule 'cyclic' needs
    base_lr=... (spec 'cyclic max_lr=0.1')``): with ``--compare`` the reader must know which spec failed, once.

    >>> _naming("cosine lfr=1", "unknown cosine parameter 'lfr'")
    "'cosine lfr=1': unknown cosine parameter 'lfr'"
    >>> _naming("cosine =3", "bad token '=3' in spec 'cosine =3': ...")
    "bad token '=3' in spec 'cosine =3': ..."
    """
    return message if repr(spec) in message else f"{spec!r}: {message}"


def _check_same_scale(specs: list[str], scheds: list[Any]) -> None:
    """Fail when ``--compare`` overlays absolute LRs (a spec with ``lr0``/``max_lr``) and multipliers of the peak (a
    spec without, and no ``--base-lr``) on one LR axis: 0.1 as an LR and 1.0 as "the peak" drawn on one scale
    would be a false picture, whatever the axis is called."""
    absolute = [s for s, sched in zip(specs, scheds) if sched.peak_lr is not None]
    relative = [s for s, sched in zip(specs, scheds) if sched.peak_lr is None]
    if absolute and relative:
        fail(f"{relative[0]!r} gives no peak LR (lr0/max_lr), so its LRs are multipliers of the peak, while "
             f"{absolute[0]!r} gives absolute LRs: one axis cannot show both. Add lr0=... to "
             f"{', '.join(repr(s) for s in relative)}, or pass --base-lr LR (the peak of every spec without one)")


def _free_picture_name() -> Path:
    """The default picture without ``--out``: ``schedule.png``, or the first free ``schedule2.png``, ... — a file of
    that name in the working directory may be the user's own, and only ``--out`` asks for it to be replaced."""
    n = 1
    while (path := Path(f"schedule{n if n > 1 else ''}.png")).exists() or path.is_symlink():
        n += 1
    return path


def _check_out(out: Path) -> None:
    """``ValueError`` when the picture cannot be written at ``out``: a folder there, a file on its path, or a
    read-only folder — found before the table or the JSON is printed, so a failing command prints nothing else."""
    if out.is_dir():
        raise ValueError(f"{str(out)!r} is a folder; give a file name, e.g. --out {str(out / 'schedule.png')!r}")
    check_named_writable(out)  # written as open(out, "w") would (lrkit._utils.write_named)


def _first_non_finite(sched: Any, record: dict[str, Any]) -> tuple[str, int, float] | None:
    """``(what, step, value)`` of the first LR or momentum that is inf/NaN in a (sampled) record, or ``None``.

    In a sampled record the steps between the last finite sample and the first non-finite one are evaluated one by
    one (a few hundred at most), so the step named is the first one, not the next sample."""
    steps = record["steps"]
    for what, values in (("LR", record["lr"]), ("momentum", record["momentum"])):
        for i, v in enumerate(values):
            if v is not None and not math.isfinite(v):
                scale = 1.0 if what == "momentum" or sched.peak_lr is None else sched.peak_lr
                for t in range(steps[i - 1] + 1 if i else 0, steps[i]):
                    w = sched.momentum(t) if what == "momentum" else scale * sched.multiplier(t)
                    if w is not None and not math.isfinite(w):
                        return what, t, w
                return what, steps[i], v
    return None


def _plot(records: list[dict[str, Any]], out: Path, log_y: bool) -> Path:
    from lrkit.plots.finder import save_figure
    from lrkit.plots.schedule import plot_schedule

    fig = plot_schedule(records, log_y=log_y)
    plt = optional_import("matplotlib.pyplot", "plot")
    try:
        save_figure(fig, out)  # in the format out's suffix names
    except OSError as e:  # strerror only: str(e) names the temporary file the atomic write used
        fail(f"cannot write {out}: {e.strerror or e}")
    except ValueError as e:  # a format matplotlib lists but cannot write here (.pgf without TeX)
        fail(f"--out: {e}")
    finally:
        plt.close(fig)
    return out


def register(app: Any) -> None:
    """Add the ``schedule`` command to a Typer app."""

    @app.command("schedule", epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
    def schedule(
        spec: Annotated[Optional[list[str]], typer.Argument(  # noqa: UP045
            help="Schedule spec, e.g. cosine lr0=0.01 lrf=0.01 (quoted or not).")] = None,
        epochs: Annotated[Optional[float], typer.Option(  # noqa: UP045
            "--epochs", "-e", parser=typed_float, help="Run length in epochs.")] = None,
        steps_per_epoch: Annotated[Optional[float], typer.Option(  # noqa: UP045
            "--steps-per-epoch", "-n", parser=typed_float,
            help="Optimizer steps per epoch (converts epoch-valued keys).")] = None,
        total_steps: Annotated[Optional[float], typer.Option(  # noqa: UP045 - a float, so that -t 1e7 is accepted
            "--total-steps", "-t", parser=typed_float,
            help="Run length in optimizer steps, e.g. 10000 or 1e7 (wins over epochs x steps/epoch).")] = None,
        out: Annotated[Optional[Path], typer.Option(  # noqa: UP045
            "--out", "-o", help="Picture to write, its format from the suffix: .png (the default), .pdf, .svg, ... "
            "(default schedule.png, or schedule2.png, ... if taken; with --json only when given).")] = None,
        compare: Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
            "--compare", "-c", help="Another spec to overlay (repeatable).")] = None,
        as_json: Annotated[bool, typer.Option(
            "--json", help="Print {\"lr\": [...], \"momentum\": [...]}, one value per step.")] = False,
        list_: Annotated[bool, typer.Option("--list", help="List every schedule family and exit.")] = False,
        base_lr: Annotated[Optional[float], typer.Option(  # noqa: UP045
            "--base-lr", parser=typed_float,
            help="Peak LR for specs without lr0/max_lr (else LRs are multipliers).")] = None,
        no_plot: Annotated[bool, typer.Option(
            "--no-plot", help="Do not write the picture (print the table, or the JSON, only).")] = False,
        log_y: Annotated[bool, typer.Option("--log-y", help="Log-scale LR axis.")] = False,
        chart: Annotated[bool, typer.Option(
            "--chart/--no-chart", help="Draw the LR in the terminal (text) below the table.")] = True,
    ) -> None:
        """Show an LR schedule: its key points, the LR drawn in the terminal, a PNG, or JSON for scripts."""
        schedule_command(" ".join(spec) if spec else None, epochs=epochs, steps_per_epoch=steps_per_epoch,
                         total_steps=total_steps, out=out,
                         compare=compare, as_json=as_json, list_=list_, base_lr=base_lr, no_plot=no_plot,
                         log_y=log_y, chart=chart)
