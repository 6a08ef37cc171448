"""args.yaml's resolved.data.classes holds the labels as the file has them: numbers as numbers, text as text
(session 26; every label was written as a string, so 0/1 read back as '0'/'1')."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

import lrkit


def test_args_yaml_classes_keep_their_type(tmp_path: Path) -> None:
    for name, labels in (("num", [0, 1]), ("txt", ["no", "yes"]), ("digits", ["0", "1x"])):
        path = tmp_path / f"{name}.csv"
        path.write_text("a,b,label\n" + "".join(f"{i % 7},{i % 3},{labels[i % 2]}\n" for i in range(40)))
        r = lrkit.train("mlp", data=str(path), epochs=1, verbose=False, plots=False, project=tmp_path, name=name)
        with open(r.run_dir / "args.yaml") as f:
            args = yaml.safe_load(f)
        assert args["resolved"]["data"]["classes"] == labels
        assert [type(c) for c in args["resolved"]["data"]["classes"]] == [type(c) for c in labels]
        assert lrkit.load_run(r.run_dir).classes == labels


def test_a_run_saved_with_text_labels_still_resumes(tmp_path: Path) -> None:
    path = tmp_path / "num.csv"
    path.write_text("a,b,label\n" + "".join(f"{i % 7},{i % 3},{i % 2}\n" for i in range(40)))
    r = lrkit.train("mlp", data=str(path), epochs=1, verbose=False, plots=False, project=tmp_path, name="old")
    # as a run before session 26 saved it: its labels as text
    last = r.run_dir / "last.pt"
    ck = torch.load(last, weights_only=True)
    assert ck["data"]["classes"] == [0, 1]
    ck["data"]["classes"] = ["0", "1"]
    torch.save(ck, last)
    resumed = lrkit.train(resume=str(last), epochs=2, verbose=False, plots=False)  # one epoch more
    assert resumed.epochs_run == 2
    # another set of labels is still a changed dataset
    ck["data"]["classes"] = ["0", "2"]
    torch.save(ck, last)
    with pytest.raises(ValueError, match=r"the data changed since the run was saved \(classes"):
        lrkit.train(resume=str(last), epochs=3, verbose=False, plots=False)
