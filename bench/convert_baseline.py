# PyTorch side of bench/convert.ts: "the PyTorch way" of converting a Qwen2 / Llama checkpoint between
# Hugging Face's and litgpt's layouts, with the names of litgpt's convert_hf_checkpoint / convert_lit_checkpoint
# (copy_weights_qwen_2_5) but without litgpt's lazy loader:
#   to-litgpt    safetensors.torch.load_file of every shard, rename, torch.cat of q/k/v (weights and biases)
#                into attn.qkv, a tied head stored as the embedding's tensor, torch.save to lit_model.pth;
#   from-litgpt  torch.load(lit_model.pth, mmap=True) (the pages are the file's, read as the split touches them),
#                split attn.qkv into q/k/v (cloned: save_file refuses tensors that share storage), rename, a tied
#                head left out, safetensors.torch.save_file to one model.safetensors (no config.json: the
#                weights only).
# Both fsync their output before the clock stops, as litlora's atomic writer does (ext4 starts writing back a file
# rewritten in place as it is closed, so the fsync may find little left: that time is inside `seconds` either way). Prints one JSON line:
# seconds (conversion after the imports, fsync included), fsync_seconds (its part), maxrss_kb, baseline_kb
# (VmHWM after the imports), tensors, bytes.
# Usage: python bench/convert_baseline.py to-litgpt HF_DIR OUT.pth '{"n_head":14,"n_query_groups":2,"head_size":64,"threads":2}'
#        python bench/convert_baseline.py from-litgpt LIT.pth OUT_DIR '{...}'
import json, os, re, sys, time

import torch
from safetensors.torch import load_file, save_file

direction, src, dst, cfg = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
torch.set_num_threads(cfg["threads"])


def hwm_kb():
    # VmHWM: this process's peak RSS. (ru_maxrss would also count the parent's RSS at fork time.)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def fsync(path):
    t0 = time.perf_counter()
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    return time.perf_counter() - t0


# HF (Llama / Qwen2) → litgpt names of the tensors that are only renamed; `{}` is the layer index.
RENAMES = {
    "model.embed_tokens.weight": "transformer.wte.weight",
    "model.norm.weight": "transformer.ln_f.weight",
    "lm_head.weight": "lm_head.weight",
    "model.layers.{}.input_layernorm.weight": "transformer.h.{}.norm_1.weight",
    "model.layers.{}.post_attention_layernorm.weight": "transformer.h.{}.norm_2.weight",
    "model.layers.{}.self_attn.o_proj.weight": "transformer.h.{}.attn.proj.weight",
    "model.layers.{}.mlp.gate_proj.weight": "transformer.h.{}.mlp.fc_1.weight",
    "model.layers.{}.mlp.up_proj.weight": "transformer.h.{}.mlp.fc_2.weight",
    "model.layers.{}.mlp.down_proj.weight": "transformer.h.{}.mlp.proj.weight",
}
QKV = re.compile(r"model\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)")
LAYER = re.compile(r"\.(\d+)\.")


def to_litgpt(hf_dir, out_path):
    shards = sorted(f for f in os.listdir(hf_dir) if f.endswith(".safetensors"))
    hf = {}
    for shard in shards:
        hf.update(load_file(os.path.join(hf_dir, shard)))
    sd, qkv = {}, {}
    for name, t in hf.items():
        m = QKV.fullmatch(name)
        if m:
            qkv.setdefault((int(m[1]), m[3]), {})[m[2]] = t
            continue
        layer = LAYER.search(name)
        key = LAYER.sub(".{}.", name, count=1) if layer else name
        sd[RENAMES[key].replace("{}", layer[1]) if layer else RENAMES[key]] = t
    for (i, kind), parts in qkv.items():
        sd[f"transformer.h.{i}.attn.qkv.{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    if "lm_head.weight" not in sd:
        sd["lm_head.weight"] = sd["transformer.wte.weight"]  # tied: one storage, as litgpt saves it
    torch.save(sd, out_path)
    return len(sd)


def from_litgpt(lit_path, out_dir):
    lit = torch.load(lit_path, mmap=True, weights_only=True)
    back = {v: k for k, v in RENAMES.items()}
    q_rows = cfg["n_head"] * cfg["head_size"]
    kv_rows = cfg["n_query_groups"] * cfg["head_size"]
    hf = {}
    for name, t in lit.items():
        if name == "lm_head.weight" and t.data_ptr() == lit["transformer.wte.weight"].data_ptr():
            continue  # tied head: transformers re-ties it from config.json's tie_word_embeddings
        layer = LAYER.search(name)
        if ".attn.qkv." in name:
            kind = name.rsplit(".", 1)[1]
            for part, piece in zip("qkv", t.split([q_rows, kv_rows, kv_rows])):
                hf[f"model.layers.{layer[1]}.self_attn.{part}_proj.{kind}"] = piece.clone()
            continue
        key = LAYER.sub(".{}.", name, count=1) if layer else name
        hf[back[key].replace("{}", layer[1]) if layer else back[key]] = t
    os.makedirs(out_dir, exist_ok=True)
    out_path = os.path.join(out_dir, "model.safetensors")
    save_file(hf, out_path, metadata={"format": "pt"})
    return len(hf), out_path


baseline_kb = hwm_kb()
start = time.perf_counter()
if direction == "to-litgpt":
    tensors, out_file = to_litgpt(src, dst), dst
elif direction == "from-litgpt":
    tensors, out_file = from_litgpt(src, dst)
else:
    sys.exit(f"direction must be to-litgpt or from-litgpt, got {direction!r}")
fsync_seconds = fsync(out_file)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "fsync_seconds": fsync_seconds, "maxrss_kb": hwm_kb(), "baseline_kb": baseline_kb,
                  "tensors": tensors, "bytes": os.path.getsize(out_file)}))
