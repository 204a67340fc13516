# PyTorch side of bench/ops.ts: times the dense floor, PEFT-style eager LoRA (autograd) and litgpt's merge
# for one size, on the same device/dtype/threads as ours. Prints one JSON line (milliseconds, medians).
# Usage: python bench/ops_baseline.py '{"device":"cpu","dtype":"float32","threads":2,"reps":5,"tokens":4096,"in":2048,"out":2048,"r":16}'
import json, statistics, sys, time
import torch
import torch.nn.functional as F

cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg["threads"])
dev, dt = torch.device(cfg["device"]), getattr(torch, cfg["dtype"])
n, fin, fout, r, reps = cfg["tokens"], cfg["in"], cfg["out"], cfg["r"], cfg["reps"]
s = 2.0
g = torch.Generator().manual_seed(0)
def rnd(*shape, scale=1.0):
    return (torch.rand(*shape, generator=g) * 2 - 1).mul_(scale).to(dev, dt)
x, W, gy = rnd(n, fin), rnd(fout, fin, scale=0.02), rnd(n, fout)
A, B = rnd(r, fin, scale=fin ** -0.5), rnd(fout, r, scale=0.01)
sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)

def timed(fn):
    fn(); sync()  # warm-up
    out = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn(); sync(); out.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(out)

def floor():
    F.linear(x, W)
    gy @ W

xg = x.clone().requires_grad_(True)
Ag, Bg = A.clone().requires_grad_(True), B.clone().requires_grad_(True)
def peft():
    y = F.linear(xg, W) + F.linear(F.linear(xg, Ag), Bg) * s
    y.backward(gy)
    xg.grad = Ag.grad = Bg.grad = None

Wm = W.clone()
def merge():  # litgpt LoRALinear.merge: weight.data += (B @ A) * scaling
    Wm.data += (B @ A) * s
dst = torch.empty_like(W)
def copy():
    dst.copy_(W)

# floor and PEFT alternate rep by rep, so that both see the same machine load; the ratio is the median of
# the per-rep ratios.
floor(); peft(); sync()
tf, tp = [], []
for _ in range(reps):
    for fn, acc in ((floor, tf), (peft, tp)):
        t0 = time.perf_counter(); fn(); sync(); acc.append((time.perf_counter() - t0) * 1e3)
res = {"floor": statistics.median(tf), "peft": statistics.median(tp),
       "peftOverFloor": statistics.median([p / f for p, f in zip(tp, tf)]), "merge": timed(merge), "copy": timed(copy),
       "threads": torch.get_num_threads(), "torch": torch.__version__}
print(json.dumps(res))
