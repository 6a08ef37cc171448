"""Session 15 (noticed by audit s15f): ``workers=`` beyond the machine's CPUs (a typo, ``workers=1e6``) passed the
checks and tried to start that many DataLoader processes; it is capped to the CPU count with a note, as Ultralytics
caps it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch.utils.data

import lrkit

QUIET = {"plots": False, "verbose": True}


def test_workers_above_the_cpu_count_are_capped_with_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    # (3, not a huge count: were the cap to regress, the test must fail, not hang starting workers)
    seen: list[int] = []
    real = torch.utils.data.DataLoader.__init__

    def spy(self: torch.utils.data.DataLoader, *args: object, **kwargs: object) -> None:
        seen.append(int(kwargs.get("num_workers", 0)))  # type: ignore[call-overload]
        real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    monkeypatch.setattr(torch.utils.data.DataLoader, "__init__", spy)
    r = lrkit.train(data="iris", model="linear", epochs=1, lr0=0.01, workers=3, project=str(tmp_path),
                    **QUIET)
    assert len(r.history) == 1
    assert seen and max(seen) == 1
    assert "workers=3 is more than this machine's 1 CPU: using 1" in capsys.readouterr().out


def test_workers_within_the_cpu_count_are_used_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    lrkit.train(data="iris", model="linear", epochs=1, lr0=0.01, workers=0, project=str(tmp_path), **QUIET)
    assert "is more than this machine's" not in capsys.readouterr().out
