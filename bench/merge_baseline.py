# PyTorch side of bench/merge.ts: "the PyTorch way" of merging — litgpt's merge_lora without the model class:
# load everything (torch.load of the base and the adapter), W += (B @ A) * scaling per LoRA layer (fused QKV
# rows placed as litgpt's zero_pad does), torch.save the flat dict. Prints one JSON line.
# Usage: python bench/merge_baseline.py BASE.pth LORA.pth OUT.pth '{"r":8,"alpha":16,"n_head":16,"n_query_groups":16,"head_size":64,"query":true,"key":true,"value":true,"threads":2}'
import json, os, sys, time

import torch

base_path, lora_path, out_path, cfg = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
torch.set_num_threads(cfg["threads"])
def hwm_kb():
    # VmHWM: this process's peak RSS. (ru_maxrss would also count the parent's RSS at fork time.)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


baseline_kb = hwm_kb()
start = time.perf_counter()
sd = torch.load(base_path, weights_only=True)
lora = torch.load(lora_path, weights_only=True)
lora = lora.get("model", lora)
scaling = cfg["alpha"] / cfg["r"]
hs, nh, nqg = cfg["head_size"], cfg["n_head"], cfg["n_query_groups"]
enable = [cfg["query"], cfg["key"], cfg["value"]]
sizes, starts = [nh * hs, nqg * hs, nqg * hs], [0, nh * hs, (nh + nqg) * hs]
lora_ind = [i for s0, s, on in zip(starts, sizes, enable) if on for i in range(s0, s0 + s)]
with torch.no_grad():
    for name in [k for k in lora if k.endswith(".lora_A")]:
        module = name[: -len(".lora_A")]
        A, B = lora[name], lora[module + ".lora_B"]
        W = sd[module + ".weight"]
        if module.endswith("attn.qkv"):
            r = cfg["r"]
            parts = [b @ a for a, b in zip(A.split(r, dim=0), B.split([s for s, on in zip(sizes, enable) if on], dim=0))]
            delta = torch.cat(parts, dim=0) * scaling
            if not all(enable):
                full = delta.new_zeros(W.shape)
                full[lora_ind] = delta
                delta = full
        else:
            delta = (B @ A) * scaling
        W += delta.to(W.dtype)
torch.save(sd, out_path)
seconds = time.perf_counter() - start
# What a durable write would add (litlora's writer fsyncs before its rename): timed apart, not in `seconds`.
t0 = time.perf_counter()
fd = os.open(out_path, os.O_RDONLY)
os.fsync(fd)
os.close(fd)
fsync_seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "fsync_seconds": fsync_seconds, "maxrss_kb": hwm_kb(), "baseline_kb": baseline_kb}))
