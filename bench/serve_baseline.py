# Hugging Face transformers' side of bench/serve.ts: one static batch of the bench's prompts, left-padded, through
# GPTNeoXForCausalLM.generate (greedy, exactly `new` tokens each) on a pythia-70m-shaped model with random weights.
# Usage: python bench/serve_baseline.py '{"prompts": [[…], …], "new": 128, "reps": 3, "threads": 2}'
# Prints one JSON line: the median seconds of the whole generate call and the tokens/s it gives.
import json, statistics, sys, time

import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg["threads"])
torch.manual_seed(0)
config = GPTNeoXConfig(vocab_size=50304, hidden_size=512, num_hidden_layers=6, num_attention_heads=8, intermediate_size=2048,
                       rotary_pct=0.25, max_position_embeddings=2048, use_parallel_residual=True, tie_word_embeddings=False,
                       pad_token_id=0, eos_token_id=None, bos_token_id=None)
model = GPTNeoXForCausalLM(config).eval()
prompts = cfg["prompts"]
width = max(len(p) for p in prompts)
ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])


def run():
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=cfg["new"], min_new_tokens=cfg["new"],
                             do_sample=False, pad_token_id=0)
    assert out.shape[1] == width + cfg["new"]
    return time.perf_counter() - t0


run()  # warm-up
seconds = statistics.median(run() for _ in range(cfg["reps"]))
print(json.dumps({"seconds": seconds, "tokens_per_s": len(prompts) * cfg["new"] / seconds}))
