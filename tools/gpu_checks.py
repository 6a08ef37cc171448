"""GPU-only checks for lrkit's CUDA branches, which the CPU test suite covers only with fakes.

Run on a CUDA machine from the repository root; each check prints OK, FAIL (with the traceback) or SKIP:

    python tools/gpu_checks.py

Checks 6 and 7 need 2 GPUs and say SKIP otherwise. Check 8 confirms a fix made without a GPU: a monitor state loaded
with ``map_location="cpu"`` rolls its optimizer state back onto the parameters' CUDA device. Checks 10-14 came with
the first GPU lent to the project (an H100, session 13): device-neutral checkpoints and an exact resume on CUDA, the
class-target check before a device-side assert, find_lr's device= with a model elsewhere, bf16 + channels_last, and
torch.compile with Triton kernels. Last run: all OK but 6 and 7 (one GPU) — see the README's "CUDA paths".
"""

import argparse
import copy
import math
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import torch

import lrkit
from lrkit.monitor import Monitor

N = torch.cuda.device_count()
torch.manual_seed(0)
X = torch.randn(512, 8)
Y = X @ torch.randn(8, 1)
LOADER = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, Y), batch_size=32)


def net(dev="cuda"):
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1)).to(dev)


def check(name: str, fn: Callable[[], Any]) -> bool:
    """Run one check and print OK, SKIP or FAIL with the traceback; False when it failed."""
    try:
        r = fn()
        print(f"{'SKIP' if r == 'skip' else 'OK  '} {name}")
        return True
    except Exception:
        print(f"FAIL {name}\n{traceback.format_exc()}")
        return False


def c1():  # amp=True on CUDA: fp16 autocast + a fresh GradScaler, state restored bit for bit, one sync per micro-batch
    m = net()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    before = copy.deepcopy(m.state_dict())
    seen = []
    m[0].register_forward_hook(lambda mod, i, o: seen.append(o.dtype))
    r = lrkit.find_lr(m, opt, LOADER, num_steps=30, amp=True)
    assert seen and all(d == torch.float16 for d in seen), set(seen)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert len(r.losses) > 0 and all(math.isfinite(v) for v in r.losses[:5])


def c2():  # the user's scaler: used and put back (scale + per-optimizer stage)
    m = net()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    sc = torch.amp.GradScaler("cuda", init_scale=1024.0)
    m(X[:4].cuda()).sum().backward()
    sc.scale(torch.ones((), device="cuda"))
    st = sc.state_dict()
    lrkit.find_lr(m, opt, LOADER, num_steps=20, amp="fp16", scaler=sc)
    assert sc.state_dict() == st, (sc.state_dict(), st)


def c3():  # CUDA RNG state restored by find_lr (CUDA initialised)
    m = net()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    s = torch.cuda.get_rng_state_all()
    lrkit.find_lr(torch.nn.Sequential(m, torch.nn.Dropout(0.5)), opt, LOADER, num_steps=20)
    assert all(torch.equal(a, b) for a, b in zip(s, torch.cuda.get_rng_state_all()))


def c4():  # a device that does not exist: clear ValueErrors, not a CUDA traceback
    m = net()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    for call in (lambda: lrkit.find_lr(m, opt, LOADER, num_steps=10, device=f"cuda:{N + 6}"),):
        try:
            call()
        except ValueError as e:
            assert f"cuda:{N + 6}" in str(e), e
        else:
            raise AssertionError("no error")
    from lrkit.train.trainer import _resolve_device

    try:
        _resolve_device(f"cuda:{N + 6}")
    except ValueError as e:
        assert f"{N} CUDA device" in str(e), e
    else:
        raise AssertionError("no error")


def c5():  # Monitor + GradScaler, torch's recipe without an explicit unscale_, an inf step skipped by the scaler
    m = net()
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    sc = torch.amp.GradScaler("cuda")
    mon = Monitor(m, opt, grad_scaler=sc)
    for i, (x, y) in enumerate(LOADER):
        x, y = x.cuda(), y.cuda()
        with torch.autocast("cuda", torch.float16):
            loss = torch.nn.functional.mse_loss(m(x).float(), y)
        sc.scale(loss * (1e30 if i == 5 else 1)).backward()
        mon.after_backward(loss)
        sc.step(opt)
        sc.update()
        mon.after_step()
        opt.zero_grad()
    assert mon.rollbacks == 0 and not mon.should_stop, mon.events


def c6():  # a model on cuda:1 with device=None: batches go to cuda:1, nothing touches cuda:0's memory
    if N < 2:
        return "skip"
    m = net("cuda:1")
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    torch.cuda.reset_peak_memory_stats(0)
    base = torch.cuda.memory_allocated(0)
    lrkit.find_lr(m, opt, LOADER, num_steps=20, amp=True)
    assert torch.cuda.max_memory_allocated(0) == base


def c7():  # a model split over cuda:0 / cuda:1, device=None (batches to the first parameter's device), clipping
    if N < 2:
        return "skip"

    class Split(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(8, 32).to("cuda:0")
            self.b = torch.nn.Linear(32, 1).to("cuda:1")

        def forward(self, x):
            return self.b(torch.relu(self.a(x)).to("cuda:1")).to("cuda:0")

    m = Split()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    lrkit.find_lr(
        m, opt, LOADER, num_steps=20, max_grad_norm=1.0, loss_fn=lambda o, y: torch.nn.functional.mse_loss(o, y)
    )
    mon = Monitor(m, opt, grad_every=1)
    for x, y in LOADER:
        loss = torch.nn.functional.mse_loss(m(x.cuda(0)), y.cuda(0))
        loss.backward()
        mon.after_backward(loss)
        opt.step()
        mon.after_step()
        opt.zero_grad()


def c8():  # a Monitor state saved from CUDA, loaded with map_location="cpu", then rolled back to
    # (as lrkit.train's resume does): the optimizer state must come back on CUDA, not on the CPU
    m = net()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    mon = Monitor(m, opt, grad_every=1, snapshot_every=2)  # the snapshot holds Adam moments (not the empty start)
    for x, y in list(LOADER)[:5]:
        loss = torch.nn.functional.mse_loss(m(x.cuda()), y.cuda())
        loss.backward()
        mon.after_backward(loss)
        opt.step()
        mon.after_step()
        opt.zero_grad()
    import io

    buf = io.BytesIO()
    torch.save({"m": m.state_dict(), "o": opt.state_dict(), "mon": mon.state_dict(snapshot=True)}, buf)
    buf.seek(0)
    ck = torch.load(buf, map_location="cpu", weights_only=True)
    m2 = net()
    opt2 = torch.optim.Adam(m2.parameters(), lr=1e-3)
    m2.load_state_dict(ck["m"])
    opt2.load_state_dict(ck["o"])
    mon2 = Monitor(m2, opt2, grad_every=1, snapshot_every=2)
    mon2.load_state_dict(ck["mon"])
    x, y = next(iter(LOADER))
    loss = torch.nn.functional.mse_loss(m2(x.cuda()), y.cuda()) * float("nan")
    loss.backward()
    mon2.after_backward(loss)
    opt2.step()
    mon2.after_step()
    opt2.zero_grad()  # rollback to the loaded snapshot
    assert mon2.rollbacks == 1
    devs = {t.device.type for s in opt2.state.values() for k, t in s.items() if torch.is_tensor(t) and k != "step"}
    assert devs == {"cuda"}, f"optimizer state after rollback on {devs}"
    loss = torch.nn.functional.mse_loss(m2(x.cuda()), y.cuda())
    loss.backward()
    opt2.step()  # fails if state on CPU


def c9():  # lrkit.train with amp on CUDA: fp16 + GradScaler in the run and in lr0="auto"
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        r = lrkit.train(
            data="digits",
            model="mlp",
            epochs=2,
            amp=True,
            lr0="auto",
            device="cuda",
            project=tmp,
            verbose=False,
            plots=False,
        )
        print("     train amp result:", r)


def c10():  # lrkit.train on CUDA writes device-neutral checkpoints (CPU tensors: a plain torch.load on any machine),
    # and a resume from them continues on CUDA exactly as the uninterrupted run
    import tempfile

    def tensors(obj):
        if torch.is_tensor(obj):
            yield obj
        elif isinstance(obj, dict):
            for v in obj.values():
                yield from tensors(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                yield from tensors(v)

    import lrkit.train.run as run

    class Killed(BaseException):  # stands for SIGKILL right after epoch 2's last.pt
        pass

    original = run.save_checkpoint

    def kill_after_epoch_2(path, state):
        out = original(path, state)
        if str(path).endswith("last.pt") and state["epoch"] == 2:
            raise Killed
        return out

    with tempfile.TemporaryDirectory() as tmp:
        kw = dict(data="digits", model="mlp", lr0=0.01, device="cuda", project=tmp, verbose=False, plots=False)
        full = lrkit.train(epochs=3, name="full", **kw)
        again = lrkit.train(epochs=3, name="again", **kw)
        spread = max(float((a - b).abs().max()) for a, b in
                     zip(full.model.state_dict().values(), again.model.state_dict().values()))
        print(f"     two identical CUDA runs differ by at most {spread:.3g}")
        run.save_checkpoint = kill_after_epoch_2
        try:
            lrkit.train(epochs=3, name="cut", **kw)
        except Killed:
            pass
        finally:
            run.save_checkpoint = original
        for name in ("last.pt", "best.pt"):
            ck = torch.load(f"{tmp}/cut/{name}", weights_only=True)
            devs = {t.device.type for t in tensors(ck)}
            assert devs == {"cpu"}, (name, devs)
        resumed = lrkit.train(resume=f"{tmp}/cut", epochs=3, verbose=False, plots=False)
        assert next(resumed.model.parameters()).device.type == "cuda"
        gap = max(float((a - b).abs().max()) for a, b in
                  zip(full.model.state_dict().values(), resumed.model.state_dict().values()))
        print(f"     resumed vs uninterrupted: at most {gap:.3g} apart")
        assert gap <= spread, f"the resumed run is {gap:.3g} from the uninterrupted one (identical runs: {spread:.3g})"


def c11():  # a class target out of range on CUDA: a clear ValueError before any loss, and CUDA still usable after
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        try:
            lrkit.train(torch.nn.Linear(4, 2), data="iris", epochs=1, device="cuda", project=tmp, verbose=False,
                        plots=False)
        except ValueError as e:
            assert "but the data has 3 classes" in str(e), e
        else:
            raise AssertionError("no error")
    assert float(torch.ones(3, device="cuda").sum()) == 3.0  # no device-side assert happened


def c12():  # find_lr(device="cuda") with the model on the CPU: a clear ValueError, not a torch device mismatch
    m = net("cpu")
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    try:
        lrkit.find_lr(m, opt, LOADER, num_steps=10, device="cuda")
    except ValueError as e:
        assert "the model's parameters are on cpu" in str(e), e
    else:
        raise AssertionError("no error")


def c13():  # amp="bf16" on CUDA (no scaler), a channels_last BatchNorm CNN: bf16 forwards, exact restore
    m = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 1))
    m = m.cuda().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    xs = torch.randn(256, 1, 8, 8)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xs, xs.mean((1, 2, 3)).unsqueeze(1)),
                                         batch_size=32)
    before = copy.deepcopy(m.state_dict())
    seen = []
    m[0].register_forward_hook(lambda mod, i, o: seen.append(o.dtype))
    lrkit.find_lr(m, opt, loader, num_steps=30, amp="bf16")
    assert seen and set(seen) == {torch.bfloat16}, set(seen)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert m[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not opt.state, "the optimizer state the test made was left behind"


def c14():  # a torch.compile'd model on CUDA (Triton kernels): after find_lr, training matches an untouched twin
    torch.manual_seed(1)
    a = net()
    b = copy.deepcopy(a)
    ca, cb = torch.compile(a), torch.compile(b)
    oa = torch.optim.Adam(a.parameters(), lr=1e-3)
    ob = torch.optim.Adam(b.parameters(), lr=1e-3)
    lrkit.find_lr(ca, oa, LOADER, num_steps=20)
    for m, o in ((ca, oa), (cb, ob)):
        for x, y in list(LOADER)[:5]:
            o.zero_grad()
            torch.nn.functional.mse_loss(m(x.cuda()), y.cuda()).backward()
            o.step()
    gap = max(float((p - q).abs().max()) for p, q in zip(a.parameters(), b.parameters()))
    assert gap == 0.0, f"training after find_lr differs by {gap:.3g}"


def c15():  # snapshot_device="cpu": find_lr, a Monitor and lrkit.train keep their snapshots in (pinned) host memory
    # and restore onto CUDA bit for bit; the range test's peak GPU memory drops by the snapshot's size
    def same(a, b):
        return a.dtype == b.dtype and a.device == b.device and torch.equal(a, b)

    def opt_tensors(opt):
        return [(k, t) for s in opt.state_dict()["state"].values() for k, t in sorted(s.items()) if torch.is_tensor(t)]

    def finder_peak(where):  # (a)
        torch.manual_seed(0)
        m = torch.nn.Sequential(torch.nn.Linear(8, 2048), torch.nn.ReLU(), torch.nn.Linear(2048, 2048),
                                torch.nn.ReLU(), torch.nn.Linear(2048, 1)).cuda()  # 4.2M parameters
        opt = torch.optim.Adam(m.parameters(), lr=1e-4)
        for x, y in list(LOADER)[:3]:  # Adam moments and gradients in place before the test
            opt.zero_grad()
            torch.nn.functional.mse_loss(m(x.cuda()), y.cuda()).backward()
            opt.step()
        before, before_opt = copy.deepcopy(m.state_dict()), copy.deepcopy(opt_tensors(opt))
        grads = [p.grad.clone() for p in m.parameters()]
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        lrkit.find_lr(m, opt, LOADER, num_steps=20, snapshot_device=where)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        assert all(same(before[k], v) for k, v in m.state_dict().items()), where
        assert all(same(g, p.grad) for g, p in zip(grads, m.parameters())), where
        after_opt = opt_tensors(opt)
        assert len(after_opt) == len(before_opt) and all(
            k == j and same(a, b) for (k, a), (j, b) in zip(before_opt, after_opt)), where
        return peak

    on_gpu, on_host = finder_peak(None), finder_peak("cpu")
    print(f"     find_lr peak GPU memory above the model+optimizer: {on_gpu / 2**20:.1f} MiB with the snapshot on "
          f"the GPU, {on_host / 2**20:.1f} MiB with snapshot_device='cpu'")
    assert on_host < on_gpu, (on_host, on_gpu)

    def monitored(where, resume=False):  # (b)
        torch.manual_seed(0)
        m = net()
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        kw = dict(grad_every=1, snapshot_every=2, snapshot_device=where)
        mon = Monitor(m, opt, **kw)
        for i, (x, y) in enumerate(list(LOADER)[:12]):
            if resume and i == 5:  # as lrkit.train's resume: the monitor's state loaded with map_location="cpu"
                import io

                buf = io.BytesIO()
                torch.save(mon.state_dict(snapshot=True), buf)
                buf.seek(0)
                mon = Monitor(m, opt, **kw)
                mon.load_state_dict(torch.load(buf, map_location="cpu", weights_only=True))
            loss = torch.nn.functional.mse_loss(m(x.cuda()), y.cuda()) * (float("nan") if i == 6 else 1.0)
            loss.backward()
            mon.after_backward(loss)
            opt.step()
            mon.after_step()
            opt.zero_grad()
        assert mon.rollbacks == 1, mon.events
        return m, opt, mon

    ref = monitored(None)
    for resume in (False, True):
        m, opt, mon = monitored("cpu", resume)
        snap = mon._healthy.snapshot
        assert all(t.device.type == "cpu" for t in snap.params) and snap.params[0].is_pinned(), resume
        assert all(t.device.type == "cuda" for t in m.parameters())
        assert all(same(a, b) for a, b in zip(ref[0].parameters(), m.parameters())), resume
        a, b = opt_tensors(ref[1]), opt_tensors(opt)
        assert len(a) == len(b) and all(k == j and same(x, y) for (k, x), (j, y) in zip(a, b)), resume
        assert {t.device.type for k, t in b if k != "step"} == {"cuda"}

    import tempfile  # (c)

    with tempfile.TemporaryDirectory() as tmp:
        r = lrkit.train(data="digits", model="mlp", epochs=2, lr0="auto", device="cuda", snapshot_device="cpu",
                        project=tmp, verbose=False, plots=False)
        print("     train snapshot_device=cpu result:", r)


def run_checks(checks: Sequence[tuple[str, Callable[[], Any]]]) -> int:
    """Run every check (a failure does not stop the rest); the exit status: 1 when any failed, else 0, so a script or
    CI step running this file sees a failure without reading its output."""
    failed = [name for name, fn in checks if not check(name, fn)]
    if failed:
        print(f"\n{len(failed)} of {len(checks)} checks failed: {', '.join(failed)}")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``--help``, then run the checks on CUDA (exit status 1 with a message where there is none)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("gpu_checks: no CUDA device visible — run this on a CUDA machine")
    fns = (c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15)
    return run_checks([(f"c{i}", fn) for i, fn in enumerate(fns, 1)])


if __name__ == "__main__":
    sys.exit(main())
