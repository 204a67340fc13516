# PyTorch side of bench/generate.ts: greedy decoding with a KV cache in eager PyTorch (the reference GPT of
# test/reference/gpt_reference.py, decode loop of test/reference/generate_reference.py), batch 1.
# Usage: python bench/generate_baseline.py '{"config": {...}, "prompt": 32, "new": 128, "reps": 3, "threads": 2, "device": "cpu", "dtype": "float32"}'
# Prints one JSON line: median decode tokens/s, median prefill ms.
import json, os, statistics, sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "test", "reference"))
import generate_reference as gen  # noqa: E402
import gpt_reference as ref  # noqa: E402

cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg["threads"])
torch.manual_seed(0)
dev, dt = torch.device(cfg["device"]), getattr(torch, cfg["dtype"])
with torch.device(dev):
    model = ref.GPT(ref.Config(**cfg["config"]))
model = model.to(dtype=dt).eval()
for p in model.parameters():
    p.requires_grad_(False)
prompt = [(7 * i + 3) % 200 for i in range(cfg["prompt"])]


def run():
    return gen.decode_with_cache(model, prompt, cfg["new"], device=dev)


run()  # warm-up
rates, prefills = [], []
for _ in range(cfg["reps"]):
    tokens, prefill, decode = run()
    rates.append((len(tokens) - 1) / decode)
    prefills.append(prefill * 1e3)
print(json.dumps({"tokens_per_s": statistics.median(rates), "prefill_ms": statistics.median(prefills)}))
