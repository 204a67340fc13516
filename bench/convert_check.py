# The correctness check of bench/convert.ts, so that a fast but wrong conversion cannot pass: compares the
# tensors of two checkpoints, each a .pth file (torch.load, mmap) or a folder of .safetensors files, name by name
# and bit for bit, and hashes one tensor of each. Prints one JSON line: tensors (of each), same_names, identical,
# differing (the first few names), checksum_name and checksums (sha256 of its bytes in each), tied (per .pth: does
# lm_head.weight share the embedding's storage, as litgpt saves a tied head).
# Usage: python bench/convert_check.py A B CHECKSUM_TENSOR_NAME
import hashlib, json, os, sys

import torch
from safetensors import safe_open


def load(path):
    if path.endswith(".pth"):
        return torch.load(path, mmap=True, weights_only=True)
    tensors = {}
    for f in sorted(os.listdir(path)):
        if f.endswith(".safetensors"):
            with safe_open(os.path.join(path, f), framework="pt") as st:
                for name in st.keys():
                    tensors[name] = st.get_tensor(name)
    return tensors


def tied(sd):
    if "lm_head.weight" not in sd or "transformer.wte.weight" not in sd:
        return None
    return sd["lm_head.weight"].untyped_storage().data_ptr() == sd["transformer.wte.weight"].untyped_storage().data_ptr()


def checksum(t):
    return hashlib.sha256(t.contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()[:16] if t is not None else None


a_path, b_path, name = sys.argv[1:4]
a, b = load(a_path), load(b_path)
common = [k for k in a if k in b]
differing = [k for k in common if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape or not torch.equal(a[k], b[k])]
print(json.dumps({
    "tensors": [len(a), len(b)], "same_names": set(a) == set(b), "identical": set(a) == set(b) and not differing,
    "differing": differing[:5] + sorted(set(a) ^ set(b))[:5], "checksum_name": name,
    "checksums": [checksum(a.get(name)), checksum(b.get(name))],
    "tied": [tied(a) if a_path.endswith(".pth") else None, tied(b) if b_path.endswith(".pth") else None],
}))
