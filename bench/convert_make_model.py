# The input of bench/convert.ts: a Qwen2-architecture model with random bf16 weights, saved by transformers'
# save_pretrained in exactly two safetensors shards + model.safetensors.index.json (as the hub's Qwen2.5 files
# come). The model is built on the meta device and its parameters filled with torch.randn afterwards, so no
# nn.init pass runs over half a billion parameters. Prints one JSON line {bytes, shards, tensors}.
# Usage: python bench/convert_make_model.py OUT_DIR '{"hidden_size": 896, "num_hidden_layers": 24, ...}'
import json, os, sys

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

out_dir, sizes = sys.argv[1], json.loads(sys.argv[2])
config = Qwen2Config(
    hidden_size=sizes["hidden_size"], num_hidden_layers=sizes["num_hidden_layers"],
    num_attention_heads=sizes["num_attention_heads"], num_key_value_heads=sizes["num_key_value_heads"],
    intermediate_size=sizes["intermediate_size"], vocab_size=sizes["vocab_size"],
    max_position_embeddings=sizes["max_position_embeddings"], rms_norm_eps=sizes["rms_norm_eps"],
    tie_word_embeddings=True, rope_parameters={"rope_type": "default", "rope_theta": sizes["rope_theta"]},
    torch_dtype=torch.bfloat16,
)
with torch.device("meta"):
    model = Qwen2ForCausalLM(config)
model.to_empty(device="cpu")
model.tie_weights()
generator = torch.Generator().manual_seed(0)
with torch.no_grad():
    for p in model.parameters():  # a tied head is the embedding's Parameter: filled once
        p.data = torch.randn(p.shape, generator=generator, dtype=torch.float32).mul_(0.02).to(torch.bfloat16)
model.tie_weights()
model = model.to(torch.bfloat16)

# 0.6 of the weights' bytes per shard: the first shard fills up to it, the rest goes to the second.
total = sum(p.numel() * p.element_size() for p in model.parameters())
model.save_pretrained(out_dir, max_shard_size=int(total * 0.6))
shards = sorted(f for f in os.listdir(out_dir) if f.endswith(".safetensors"))
with open(os.path.join(out_dir, "model.safetensors.index.json")) as f:
    index = json.load(f)
assert len(shards) == 2, f"expected two shards, transformers wrote {shards}"
print(json.dumps({"bytes": sum(os.path.getsize(os.path.join(out_dir, s)) for s in shards), "shards": shards,
                  "tensors": len(index["weight_map"])}))
