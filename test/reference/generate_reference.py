"""Generation references on top of gpt_reference.py (the plain-PyTorch litgpt GPT):

- `greedy_no_cache`: the definition of greedy decoding — a full forward over the whole sequence for every
  new token, argmax of the last position. The tests compare litlora's KV-cache decode loop against it.
- `decode_with_cache`: an eager-PyTorch decode loop with a KV cache, the way litgpt's generate works
  (prefill the prompt, then one token per forward at input_pos), attending only to the filled part of the
  cache. bench/generate.ts times it as "the PyTorch reference".
"""
import time

import torch


@torch.no_grad()
def greedy_no_cache(model, prompt, max_new_tokens, vocab_limit=None):
    ids = torch.tensor(prompt, dtype=torch.long).view(1, -1)
    out, margins = [], []
    for _ in range(max_new_tokens):
        logits = model(ids)[0, -1].float()
        if vocab_limit:
            logits = logits[:vocab_limit]
        top2 = torch.topk(logits, 2).values
        margins.append(float(top2[0] - top2[1]))
        nxt = int(torch.argmax(logits))
        out.append(nxt)
        ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return out, margins


class Cache:
    def __init__(self, config, max_len, dtype, device=None):
        shape = (1, config.n_query_groups, max_len, config.head_size)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.n_layer)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(config.n_layer)]


def _attention(attn, x, cos, sin, k_cache, v_cache, pos):
    T = x.size(1)
    q, k, v = attn.heads(x, cos, sin)
    k_cache[:, :, pos:pos + T] = k
    v_cache[:, :, pos:pos + T] = v
    return attn.proj(attn.attend(q, k_cache[:, :, :pos + T], v_cache[:, :, :pos + T], start=pos))


def forward_cached(model, idx, pos, cache):
    """Logits of the last position for idx (1, T) placed at positions pos…pos+T−1."""
    c = model.config
    T = idx.size(1)
    x = model.transformer.wte(idx)
    if c.scale_embeddings:
        x = x * torch.tensor(c.n_embd ** 0.5, dtype=x.dtype)
    for i, block in enumerate(model.transformer.h):
        x_normed = block.norm_1(x)
        x = block.residual(x, x_normed, _attention(block.attn, x_normed, *model.rope(i, pos, T, x.dtype), cache.k[i], cache.v[i], pos))
    return model.head(model.transformer.ln_f(x[:, -1:]))


@torch.no_grad()
def decode_with_cache(model, prompt, max_new_tokens, device=None):
    """Greedy decode with a KV cache. Returns (tokens, prefill seconds, decode seconds)."""
    dtype = model.transformer.wte.weight.dtype
    cache = Cache(model.config, len(prompt) + max_new_tokens, dtype, device)
    start = time.perf_counter()
    logits = forward_cached(model, torch.tensor(prompt, dtype=torch.long, device=device).view(1, -1), 0, cache)
    nxt = int(torch.argmax(logits[0, -1]))
    prefill = time.perf_counter() - start
    out = [nxt]
    pos = len(prompt)
    start = time.perf_counter()
    for _ in range(max_new_tokens - 1):
        logits = forward_cached(model, torch.tensor([[nxt]], dtype=torch.long, device=device), pos, cache)
        nxt = int(torch.argmax(logits[0, -1]))
        out.append(nxt)
        pos += 1
    return out, prefill, time.perf_counter() - start
