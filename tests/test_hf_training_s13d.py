"""The end-to-end fine-tuning workflow with ``lrkit.train`` on Hugging Face ``transformers`` models, built from tiny
configs with random weights (nothing is downloaded: ``XxxConfig(...)`` + ``XxxForYyy(config)``, ``HF_HUB_OFFLINE=1``):
dict batches (``input_ids``, ``attention_mask``, ``labels``) from a list of dicts, a ``datasets``-style map dataset
and a padding ``collate_fn``; ``step_fn=lambda m, b: m(**b).loss`` with ``layer_decay``/``freeze``/``lr0="auto"``;
checkpoints that load with ``weights_only=True`` into a fresh model; GPT-2's tied ``lm_head`` across save, load and
resume; the default loss on a model returning a ``ModelOutput``. Each finding is also shown on a small hand-written
module (a dict-output model, plain lists of dict samples), so that CI covers it without ``transformers``.

Tests marked "Bug:" failed before their fix (src/lrkit/train/data.py, src/lrkit/_step.py, src/lrkit/train/trainer.py).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the Hub: every model here is built from a config

from collections import OrderedDict
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrkit

FAST = dict(plots=False, verbose=False, optimizer="AdamW", batch=16, nbs=16, warmup_epochs=0.5, monitor=False)



def _bert(hf: ModuleType) -> nn.Module:
    torch.manual_seed(0)
    return hf.BertForSequenceClassification(hf.BertConfig(
        vocab_size=100, max_position_embeddings=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, num_labels=3))


def _gpt2(hf: ModuleType) -> nn.Module:
    torch.manual_seed(0)
    return hf.GPT2LMHeadModel(hf.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2, n_positions=64,
                                            bos_token_id=0, eos_token_id=0, pad_token_id=0))


def _classification_samples(n: int, seed: int, *, as_lists: bool = False) -> list[dict[str, Any]]:
    """``n`` tokenised samples of 12 tokens whose label is the first token mod 3 (learnable)."""
    g = torch.Generator().manual_seed(seed)
    out: list[dict[str, Any]] = []
    for _ in range(n):
        ids = torch.randint(1, 100, (12,), generator=g)
        sample = {"input_ids": ids, "attention_mask": torch.ones(12, dtype=torch.long), "labels": ids[0] % 3}
        out.append({k: v.tolist() for k, v in sample.items()} if as_lists else sample)
    return out


def _lm_samples(n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """``n`` arithmetic token sequences of 16 tokens (a causal LM learns them): HF LMs shift ``labels`` themselves."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = (torch.arange(16) * 3 + int(torch.randint(1, 50, (1,), generator=g))) % 100
        out.append({"input_ids": ids, "labels": ids.clone()})
    return out


class MapDataset:
    """A ``datasets.Dataset``-like map-style dataset: ``__getitem__`` and ``__len__``, not a torch ``Dataset``."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]


def _pad(samples: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
    """A ``DataCollatorWithPadding``-style collate_fn: pad ``input_ids`` with 0 and mask the padding."""
    width = max(len(s["input_ids"]) for s in samples)
    ids = torch.tensor([s["input_ids"] + [0] * (width - len(s["input_ids"])) for s in samples])
    mask = torch.tensor([[1] * len(s["input_ids"]) + [0] * (width - len(s["input_ids"])) for s in samples])
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([s["labels"] for s in samples])}


def _hf_step(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(**batch).loss


# ------------------------------------------------------------------------------------------- hand-written models
class DictInputClassifier(nn.Module):
    """An HF-style model: keyword tensors in, a dict-like output with ``loss`` (given labels) and ``logits``."""

    def __init__(self, vocab: int = 100, dim: int = 16, classes: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.drop = nn.Dropout(0.1)
        self.classifier = nn.Linear(dim, classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> OrderedDict[str, torch.Tensor]:
        h = self.drop(self.embed(input_ids))
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        logits = self.classifier((h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True))
        out: OrderedDict[str, torch.Tensor] = OrderedDict(logits=logits)
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
            out.move_to_end("loss", last=False)
        return out


def _run(tmp_path: Path, model: nn.Module, data: Any, **kw: Any) -> Any:
    return lrkit.train(model, data=data, project=str(tmp_path), **{**FAST, "epochs": 2, "lr0": 3e-3, **kw})


def test_pair_of_lists_of_dict_samples_trains(tmp_path: Path) -> None:
    """Bug: ``data=(train_samples, val_samples)`` with plain lists (a tokenised dataset as a list of dicts) was
    refused: 'train is a list, not a torch Dataset/DataLoader', though a DataLoader takes any map-style dataset."""
    r = _run(tmp_path, DictInputClassifier(), (_classification_samples(64, 1), _classification_samples(16, 2)),
             step_fn=lambda m, b: m(**b)["loss"])
    assert r.history[-1]["val_loss"] < r.history[0]["train_loss"] + 1.0 and len(r.history) == 2
    assert r.metric_name == "val_loss"


def test_datasets_style_map_dataset_trains_as_one_source_and_as_a_pair(tmp_path: Path) -> None:
    """Bug: a map-style dataset that is not a torch ``Dataset`` (``datasets.Dataset`` has ``__getitem__`` and
    ``__len__`` only) was refused as ``data=`` and as each part of a pair."""
    rows = _classification_samples(80, 3)
    one = _run(tmp_path, DictInputClassifier(), MapDataset(rows), step_fn=lambda m, b: m(**b)["loss"], name="one")
    pair = _run(tmp_path, DictInputClassifier(), (MapDataset(rows[:64]), MapDataset(rows[64:])),
                step_fn=lambda m, b: m(**b)["loss"], name="pair")
    assert len(one.history) == len(pair.history) == 2
    assert (tmp_path / "one" / "last.pt").is_file() and (tmp_path / "pair" / "last.pt").is_file()


def test_a_list_of_samples_as_data_says_how_to_pass_it(tmp_path: Path) -> None:
    """A list of samples as ``data=`` is not silently a (train, val) pair; the error says how to pass it."""
    with pytest.raises(ValueError, match=r"list of 64 items.*\(train_samples, val_samples\)"):
        _run(tmp_path, DictInputClassifier(), _classification_samples(64, 1), step_fn=lambda m, b: m(**b)["loss"])


def test_non_dataset_parts_of_a_pair_are_still_refused(tmp_path: Path) -> None:
    """Accepting map-style datasets does not accept anything indexable: a dict of columns, a string, a tensor."""
    for bad in ({"input_ids": [1, 2]}, "train.csv", torch.zeros(5, 3)):
        with pytest.raises(ValueError, match="data=\\(train, val\\): train is a"):
            _run(tmp_path, DictInputClassifier(), (bad, _classification_samples(8, 1)))


def test_dict_output_model_default_loss_reads_the_logits(tmp_path: Path) -> None:
    """Bug: a model returning a dict-like output with ``logits`` (a Hugging Face ``ModelOutput``) on ``(x, y)``
    batches failed with 'returned a OrderedDict, but the default classification loss needs a tensor'. Its
    ``logits`` are the outputs: the default loss and the accuracy read them."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 100, (96, 12), generator=g)
    r = _run(tmp_path, DictInputClassifier(), TensorDataset(x, x[:, 0] % 3), epochs=3, lr0=0.03)
    assert r.task == "classification" and r.metric_name == "accuracy"
    assert 0.0 <= r.best_metric <= 1.0
    # find_lr by hand reads the logits too (session 14a; before, its default loss refused the OrderedDict)
    model = DictInputClassifier()
    opt = torch.optim.AdamW(model.parameters())
    finder = lrkit.find_lr(model, opt, DataLoader(TensorDataset(x, x[:, 0] % 3), batch_size=16), num_steps=10)
    assert len(finder.losses) > 3


def test_dict_output_without_logits_still_names_the_fix(tmp_path: Path) -> None:
    """A dict output without a ``logits`` tensor is still an error that says what to pass."""

    class Hidden(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"hidden": self.lin(x)}

    data = TensorDataset(torch.randn(40, 4), torch.arange(40) % 3)
    with pytest.raises(ValueError, match="returned a dict.*loss_fn=/step_fn="):
        _run(tmp_path, Hidden(), data)


def test_hf_dict_batches_without_step_fn_train_on_the_model_s_own_loss(tmp_path: Path) -> None:
    """Dict samples with Hugging Face keys (``input_ids``, ``labels``) and no ``step_fn``: session 13 named the
    step_fn that fits them in an error; since session 15 that step (``model(**batch).loss``) is the default for such
    batches (tests/test_hf_batches_s15.py compares it with the explicit step_fn)."""
    r = _run(tmp_path, DictInputClassifier(), (_classification_samples(32, 1), _classification_samples(8, 2)))
    assert r.metric_name == "val_loss" and len(r.history) == 2


def test_backbone_lr_scale_takes_the_head_by_name(tmp_path: Path) -> None:
    """``backbone_lr_scale`` on a model whose head is not named head/fc/classifier (every causal LM: ``lm_head``;
    ``score``) said 'Pass head= with the head's name' — a key ``lrkit.train`` did not have. It has one now."""

    class LM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(10, 8)
            self.lm_head = nn.Linear(8, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lm_head(self.embed(x))

    x = torch.randint(0, 10, (32, 6))
    with pytest.raises(ValueError, match=r"lm_head.*Pass head= with the head's name"):
        _run(tmp_path, LM(), TensorDataset(x, x), backbone_lr_scale=0.1)
    r = _run(tmp_path, LM(), TensorDataset(x, x), backbone_lr_scale=0.1, head="lm_head", lr0=0.01)
    opt = torch.load(r.run_dir / "last.pt", weights_only=True)["optimizer"]
    peaks = sorted({round(g["initial_lr"], 12) for g in opt["param_groups"]})
    assert peaks == [0.001, 0.01]  # the backbone at 0.1 x lr0, the head at lr0


def test_epoch_line_names_the_validation_loss_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Bug (log): with a step_fn the metric is the validation loss, and each epoch line printed it twice
    ('val_loss 1.096  val_loss 1.096')."""
    _run(tmp_path, DictInputClassifier(), (_classification_samples(32, 1), _classification_samples(8, 2)),
         step_fn=lambda m, b: m(**b)["loss"], verbose=True)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("epoch ")]
    assert len(lines) == 2 and all(ln.count("val_loss") == 1 for ln in lines)


# ------------------------------------------------------------------------------------------- transformers
def test_hf_bert_list_of_dicts_layer_decay_freeze_and_checkpoints(hf: ModuleType, tmp_path: Path) -> None:
    """BERT fine-tuned from a list of dict samples with ``layer_decay`` and ``freeze=1``: the embeddings stay put,
    the classifier trains at lr0, and last.pt/best.pt load with ``weights_only=True`` into a fresh model. (Failed
    before the data fix: a list of dicts was refused.)"""
    model = _bert(hf)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = _run(tmp_path, model, (_classification_samples(64, 1), _classification_samples(16, 2)),
             step_fn=_hf_step, layer_decay=0.75, freeze=1, lr0=1e-3)
    after = {k: v.cpu() for k, v in r.model.state_dict().items()}  # (on CUDA where there is one)
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("bert.embeddings."))
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])
    top = [k for k in r.history[-1] if k.startswith("lr/")]
    assert max(r.history[0][k] for k in top if not k.endswith("/bias")) <= r.lr0
    for ckpt in (r.last_checkpoint, r.best_checkpoint):
        fresh = _bert(hf)
        fresh.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
    last = _bert(hf)
    last.load_state_dict(torch.load(r.last_checkpoint, weights_only=True)["model"])
    assert all(torch.equal(v, after[k]) for k, v in last.state_dict().items())


def test_hf_datasets_style_rows_with_a_padding_collate_fn(hf: ModuleType, tmp_path: Path) -> None:
    """A ``datasets``-style dataset of python-list rows of varying length, padded by a ``collate_fn`` in the
    DataLoader passed as ``data=`` (split by ``val=``, collate kept), and a pair of such DataLoaders (passed before)."""
    g = torch.Generator().manual_seed(5)
    rows = []
    for _ in range(80):
        ids = torch.randint(1, 100, (int(torch.randint(4, 16, (1,), generator=g)),), generator=g).tolist()
        rows.append({"input_ids": ids, "labels": ids[0] % 3})
    r = _run(tmp_path, _bert(hf), DataLoader(MapDataset(rows), batch_size=16, collate_fn=_pad), step_fn=_hf_step)
    assert len(r.history) == 2
    pair = (DataLoader(MapDataset(rows[:64]), batch_size=16, collate_fn=_pad, shuffle=True),
            DataLoader(MapDataset(rows[64:]), batch_size=16, collate_fn=_pad))
    r2 = _run(tmp_path, _bert(hf), pair, step_fn=_hf_step)
    assert all(torch.isfinite(torch.tensor(h["val_loss"])) for h in r2.history)


def test_hf_model_output_on_xy_batches_trains_with_accuracy(hf: ModuleType, tmp_path: Path) -> None:
    """Bug: ``lrkit.train(bert, data=TensorDataset(input_ids, labels))`` failed ('returned a
    SequenceClassifierOutput, but the default classification loss needs a tensor'); the logits are read."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 100, (96, 12), generator=g)
    r = _run(tmp_path, _bert(hf), TensorDataset(x, x[:, 0] % 3))
    assert r.task == "classification" and r.metric_name == "accuracy"
    # a causal LM on (tokens, next tokens): the lm task, perplexity from the logits (B, T, V)
    seqs = torch.stack([s["input_ids"] for s in _lm_samples(80, 1)])
    lm = _run(tmp_path, _gpt2(hf), TensorDataset(seqs[:, :-1], seqs[:, 1:]))
    assert lm.task == "lm" and lm.metric_name == "perplexity"
    assert lm.best_metric < 100  # below the uniform guess over the 100-token vocabulary


def test_hf_gpt2_tied_head_survives_checkpoints_and_resume_bit_for_bit(hf: ModuleType, tmp_path: Path) -> None:
    """GPT-2's ``lm_head.weight`` is ``transformer.wte.weight``: after training, after loading last.pt into a fresh
    model, and after a killed-and-resumed run, which ends with the weights of an uninterrupted one, bit for bit."""
    data = (_lm_samples(64, 1), _lm_samples(16, 2))
    kw = dict(step_fn=_hf_step, epochs=3, layer_decay=0.8, monitor=True)
    full = _run(tmp_path, _gpt2(hf), data, name="full", **kw)

    def stop(**k: Any) -> None:
        if k.get("event") == "epoch" and k.get("epoch") == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, _gpt2(hf), data, name="cut", progress=stop, **kw)
    resumed = _run(tmp_path, _gpt2(hf), data, name="cut", resume=True, **kw)
    for r in (full, resumed):
        assert r.model.lm_head.weight is r.model.transformer.wte.weight
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h["val_loss"] for h in full.history] == [h["val_loss"] for h in resumed.history]
    fresh = _gpt2(hf)
    fresh.load_state_dict(torch.load(resumed.last_checkpoint, weights_only=True)["model"])
    assert fresh.lm_head.weight is fresh.transformer.wte.weight
    assert torch.equal(fresh.transformer.wte.weight, a["transformer.wte.weight"].cpu())  # checkpoints: CPU tensors


@pytest.mark.filterwarnings("ignore:the loss barely moved")  # a tiny random BERT: the range test is flat-ish
def test_hf_auto_lr0_is_the_peak_of_the_top_layer_and_groups_keep_their_ratios(hf: ModuleType,
                                                                              tmp_path: Path) -> None:
    """``lr0="auto"`` with ``layer_decay`` on BERT: the chosen lr0 is the top layer's (the classifier's) peak LR, and
    every group keeps its ``layer_decay`` ratio to it during the run."""
    r = _run(tmp_path, _bert(hf), (_classification_samples(96, 1), _classification_samples(16, 2)),
             step_fn=_hf_step, lr0="auto", epochs=8, layer_decay=0.5, warmup_epochs=0, lrf=1.0)
    assert r.lr0_source == "auto" and r.auto is not None and r.auto.lr == r.lr0
    row = r.history[0]
    weights = {k: v for k, v in row.items() if k.startswith("lr/") and not k.endswith("/bias")}
    assert max(weights.values()) == pytest.approx(r.lr0)  # lrf=1, no warmup: the peak throughout
    for k, v in weights.items():
        depth = int(k.split("/")[1].removeprefix("layer"))
        top = max(int(n.split("/")[1].removeprefix("layer")) for n in weights)
        assert v == pytest.approx(r.lr0 * 0.5 ** (top - depth))


def test_hf_bf16_autocast_on_cpu_and_eval_mode_model(hf: ModuleType, tmp_path: Path) -> None:
    """``from_pretrained`` returns a model in eval mode: training puts it in train mode (dropout on), validation in
    eval mode and back; ``amp=True`` on the CPU trains under bfloat16 autocast."""
    model = _bert(hf).eval()
    seen: list[tuple[bool, torch.dtype]] = []
    model.classifier.register_forward_hook(lambda m, i, o: seen.append((m.training, o.dtype)))
    r = _run(tmp_path, model, (_classification_samples(32, 1), _classification_samples(16, 2)), step_fn=_hf_step,
             amp=True, device="cpu", epochs=1)
    assert (True, torch.bfloat16) in seen and (False, torch.bfloat16) in seen
    assert seen[-1][0] is False and r.model.training  # validation last, in eval mode; the model handed back training


def test_amp_names_a_precision(tmp_path: Path) -> None:
    """``lrkit.train(amp=...)`` took only true/false, though find_lr takes "bf16"/"fp16" — and on CUDA ``true`` is
    float16, so bfloat16 (the usual precision for fine-tuning transformers) could not be asked for."""
    from lrkit._config import TrainConfig

    seen: list[torch.dtype] = []
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    model[0].register_forward_hook(lambda m, i, out: seen.append(out.dtype) if m.training else None)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    r = _run(tmp_path, model, TensorDataset(x, (x[:, 0] > 0).long()), amp="BF16", device="cpu")
    assert seen and set(seen) == {torch.bfloat16} and len(r.history) == 2
    assert yaml_amp(r.run_dir) == "bf16"  # args.yaml records the name, plain YAML
    for value in ("fp8", "half", 2):
        with pytest.raises(ValueError, match=r"amp=.* must be true, false, bf16 or fp16"):
            TrainConfig(amp=value)


def yaml_amp(run_dir: Path) -> Any:
    import yaml

    return yaml.safe_load((run_dir / "args.yaml").read_text())["amp"]
