"""Adversarial review (second pass) of session 18's library changes: each test is a user-visible bug found there.

* A real Ultralytics ``args.yaml`` holds ``cfg: null`` (refused before any of its keys was named) and some twenty
  prediction/export keys ULTRALYTICS_ONLY lacked, which got did-you-means to unrelated keys (``optimize`` ->
  'optimizer', ``embed`` -> 'seed', ``visualize`` -> 'val', ``save_dir`` -> 'seed'): the README's "told every such
  key at once" did not hold for the file it describes. ``lrkit.train(**kwargs)`` named one foreign key at a time.
* ``model=C:\\runs\\best.pt`` (a Windows path: its drive colon read as a ``module:factory`` spec) was
  ``cannot import 'C'`` instead of the weights-file message.
* ``no_decay`` messages that gave a "write this" which was still wrong: ``'bias norm'`` -> write ``'bias norm'``,
  ``'[01].bias'`` -> ``'01.bias'``, ``r'\\d+\\.bias'`` -> ``'d.bias'``.
* ``plot_results``: a second custom check's event line was drawn navy, the colour of the val-loss curve
  (``CURVE_COLORS`` promises no event line shares a curve's colour); a sixth, tab:blue, the train curve's.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.colors import to_hex

import lrkit
from lrkit._config import TrainConfig
from lrkit.plots import results as results_mod

# the keys of an Ultralytics 8.3 args.yaml that lrkit.train has no equivalent for and ULTRALYTICS_ONLY lacked
_PREDICT_EXPORT_KEYS = ("vid_stride", "stream_buffer", "visualize", "retina_masks", "embed", "save_frames", "save_txt",
                        "save_conf", "save_crop", "show_labels", "show_conf", "show_boxes", "line_width", "keras",
                        "optimize", "int8", "dynamic", "simplify", "opset", "workspace", "save_dir")

# an Ultralytics 8.3 run's args.yaml, as `yolo train` writes it (a classify run, so the values are plausible)
_ARGS_YAML = """\
task: classify
mode: train
model: yolov8n-cls.pt
data: iris
epochs: 100
time: null
patience: 100
batch: 16
imgsz: 224
save: true
save_period: -1
cache: false
device: null
workers: 8
project: null
name: train
exist_ok: false
pretrained: true
optimizer: auto
verbose: true
seed: 0
deterministic: true
single_cls: false
rect: false
cos_lr: false
close_mosaic: 10
resume: false
amp: true
fraction: 1.0
profile: false
freeze: null
multi_scale: false
overlap_mask: true
mask_ratio: 4
dropout: 0.0
val: true
split: val
save_json: false
conf: null
iou: 0.7
max_det: 300
half: false
dnn: false
plots: true
source: null
vid_stride: 1
stream_buffer: false
visualize: false
augment: false
agnostic_nms: false
classes: null
retina_masks: false
embed: null
show: false
save_frames: false
save_txt: false
save_conf: false
save_crop: false
show_labels: true
show_conf: true
show_boxes: true
line_width: null
format: torchscript
keras: false
optimize: false
int8: false
dynamic: false
simplify: true
opset: null
workspace: null
nms: false
lr0: 0.01
lrf: 0.01
momentum: 0.937
weight_decay: 0.0005
warmup_epochs: 3.0
warmup_momentum: 0.8
warmup_bias_lr: 0.1
box: 7.5
cls: 0.5
dfl: 1.5
pose: 12.0
kobj: 1.0
nbs: 64
hsv_h: 0.015
hsv_s: 0.7
hsv_v: 0.4
degrees: 0.0
translate: 0.1
scale: 0.5
shear: 0.0
perspective: 0.0
flipud: 0.0
fliplr: 0.5
bgr: 0.0
mosaic: 1.0
mixup: 0.0
cutmix: 0.0
copy_paste: 0.0
copy_paste_mode: flip
auto_augment: randaugment
erasing: 0.4
cfg: null
tracker: botsort.yaml
save_dir: runs/classify/train
"""


# ----------------------------------------------------------------------------------- an Ultralytics args.yaml
def test_an_ultralytics_args_yaml_with_cfg_null_is_read_and_its_keys_named(tmp_path):
    cfg = tmp_path / "args.yaml"  # Ultralytics writes `cfg: null` into every run's args.yaml
    cfg.write_text("data: iris\nepochs: 3\nimgsz: 64\ncfg: null\n")
    with pytest.raises(ValueError) as e:
        TrainConfig.from_tokens([f"cfg={cfg}"])
    assert str(e.value).startswith("unknown train key 'imgsz': Ultralytics' imgsz= has no lrkit equivalent")
    cfg.write_text("data: iris\ncfg: other.yaml\n")  # a cfg that names a file is still refused
    with pytest.raises(ValueError, match="may not itself contain a 'cfg' key"):
        TrainConfig.from_tokens([f"cfg={cfg}"])


@pytest.mark.parametrize("key", _PREDICT_EXPORT_KEYS)
def test_every_key_of_an_ultralytics_args_yaml_is_named_as_ultralytics_only(key):
    with pytest.raises(ValueError) as e:
        TrainConfig.from_tokens(["data=iris", f"{key}=1"])
    msg = str(e.value)
    assert f"unknown train key {key!r}: Ultralytics' {key}= has no lrkit equivalent" in msg
    assert "Did you mean" not in msg


def test_optimize_still_points_at_optimizer():
    with pytest.raises(ValueError) as e:  # an export flag, but also one letter from optimizer=
        TrainConfig.from_tokens(["data=iris", "optimize=AdamW"])
    assert "optimizer=" in str(e.value).split(". Valid:")[0]


def test_a_whole_ultralytics_args_yaml_is_told_every_foreign_key_at_once(tmp_path):
    cfg = tmp_path / "args.yaml"
    cfg.write_text(_ARGS_YAML)
    with pytest.raises(ValueError) as e:
        TrainConfig.from_tokens([f"cfg={cfg}"])
    msg = str(e.value)
    assert msg.startswith("unknown train key 'mode': Ultralytics' mode= has no lrkit equivalent")
    also = msg.split("also Ultralytics-only here: ")[1].split(" (remove them too)")[0].split(", ")
    assert set(_PREDICT_EXPORT_KEYS) <= set(also)
    # after removing the named keys, nothing is left that gets a did-you-mean to an unrelated key
    named = {"mode", *also}
    rest = "".join(line + "\n" for line in _ARGS_YAML.splitlines() if line.split(":")[0] not in named | {"cfg"})
    cfg.write_text(rest)
    with pytest.raises(ValueError) as e:
        TrainConfig.from_tokens([f"cfg={cfg}"])
    assert "unknown train key" not in str(e.value)


def test_python_train_names_every_ultralytics_key_at_once(tmp_path):
    with pytest.raises(ValueError) as e:
        lrkit.train(data="iris", imgsz=64, mosaic=1.0, project=tmp_path, verbose=False)
    assert "also Ultralytics-only here: mosaic (remove it too)" in str(e.value)
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------------------- model= a Windows path
@pytest.mark.parametrize(("model", "what"), [(r"C:\runs\train\weights\best.pt", "a weights file"),
                                             ("D:/models/yolov8n.pt", "a weights file"),
                                             (r"C:\cfg\yolo11n.yaml", "a model YAML")])
def test_a_windows_path_to_a_weights_file_is_named_as_one(model, what):
    with pytest.raises(ValueError) as e:
        TrainConfig.from_kwargs(data="iris", model=model)
    assert str(e.value).startswith(f"model={model!r} is {what}")


def test_factory_specs_on_windows_paths_are_still_factories():
    for spec in (r"C:\nets\file.py:make", "D:/nets/zoo.pt:make", "zoo.pt:make", "mymodels:Net.build"):
        assert TrainConfig.from_kwargs(data="iris", model=spec).model == spec


# --------------------------------------------------------------------------------------- no_decay messages
def _model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 1))


@pytest.mark.parametrize(("entry", "wrong"), [("[01].bias", "'01.bias'"), (r"\d+\.bias", "'d.bias'"),
                                              (r"layer\d+", "'layerd'")])
def test_a_pattern_entry_is_not_rewritten_into_a_wrong_substring(entry, wrong):
    with pytest.raises(ValueError) as e:
        lrkit.param_groups(_model(), 1e-3, weight_decay=0.1, no_decay=(entry,))
    msg = str(e.value)
    assert f"no_decay entry {entry!r} matches no parameter name" in msg
    assert f"write {wrong}" not in msg


def test_a_pattern_entry_still_suggests_the_word_it_was_after():
    with pytest.raises(ValueError, match=r"write 'bias'$"):
        lrkit.param_groups(_model(), 1e-3, weight_decay=0.1, no_decay=("[01].bias",))
    with pytest.raises(ValueError, match=r"write 'bias'$"):
        lrkit.param_groups(_model(), 1e-3, weight_decay=0.1, no_decay=(r"\d+\.bias",))


def test_a_space_inside_an_entry_does_not_suggest_the_same_space():
    with pytest.raises(ValueError) as e:  # two names in one string: one string per name
        lrkit.param_groups(_model(), 1e-3, weight_decay=0.1, no_decay=("bias weight",))
    msg = str(e.value)
    assert "write 'bias weight'" not in msg
    assert "no_decay=('bias', 'weight')" in msg
    model = torch.nn.Module()
    model.layer_norm = torch.nn.LayerNorm(4)
    model.fc = torch.nn.Linear(4, 2)
    with pytest.raises(ValueError) as e:  # the name with its space as the model spells it
        lrkit.param_groups(model, 1e-3, weight_decay=0.1, no_decay=("layer norm",))
    assert "write 'layer_norm'" in str(e.value)
    with pytest.raises(ValueError, match="write 'norm'$"):  # a stray space at an end: still just stripped
        lrkit.param_groups(_model(), 1e-3, weight_decay=0.1, no_decay=(" norm",))


# ------------------------------------------------------------------------- event lines vs the curves' colours
def test_no_custom_check_event_line_shares_a_curve_colour(tmp_path, monkeypatch):
    csv = tmp_path / "results.csv"
    csv.write_text("epoch,train_loss,val_loss,val_acc,grad_norm,lr/all/decay\n"
                   "1,1.0,0.9,0.5,1.0,0.01\n2,0.5,0.7,0.6,0.8,0.005\n3,0.4,0.6,0.7,0.7,0.004\n")
    events = [{"epoch": 1.0 + i / 4, "check": f"mine_{i}", "action": "warn"} for i in range(6)]
    close, figures = plt.close, []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to look at it
    results_mod.plot_results(csv, tmp_path / "run.png", events=events)
    monkeypatch.undo()
    fig = figures[0]
    try:
        curves = {to_hex(c) for c in results_mod.CURVE_COLORS.values()}
        curves |= {to_hex(line.get_color()) for ax in fig.axes for line in ax.get_lines()
                   if not line.get_label().startswith(("mine_", "_"))}
        marks = {to_hex(line.get_color()) for line in fig.axes[0].get_lines()
                 if line.get_label().startswith("mine_")}
        assert len(marks) == 6
        assert not marks & curves
    finally:
        close(fig)
