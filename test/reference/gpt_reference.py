"""A plain-PyTorch reference of litgpt's GPT with LoRA layers, written from
litgpt's litgpt/model.py and litgpt/lora.py (litgpt itself is not installed). The tests compare litlora's native
GPT against it, and bench/model.ts times it as "eager PyTorch".

It follows litgpt's module structure and names (LoRA-model names: `transformer.h.0.attn.qkv.linear.weight`,
`….attn.qkv.lora_A`), its fused-QKV zero-pad, its [Q|K|V] row layout, its rope cache and its chunked
cross-entropy. `load_plain` takes a plain GPT state dict (`….attn.qkv.weight`) plus lora_* tensors.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Config:
    """litgpt's Config fields used here, with __post_init__'s derived values."""

    def __init__(self, **kw):
        self.name = kw.get("name", "")
        self.block_size = kw.get("block_size", 4096)
        self.vocab_size = kw.get("vocab_size", 50254)
        self.padding_multiple = kw.get("padding_multiple", 512)
        self.padded_vocab_size = kw.get("padded_vocab_size")
        self.n_layer = kw.get("n_layer", 16)
        self.n_head = kw.get("n_head", 32)
        self.n_embd = kw.get("n_embd", 4096)
        self.head_size = kw.get("head_size") or self.n_embd // self.n_head
        self.n_query_groups = kw.get("n_query_groups") or self.n_head
        self.rotary_percentage = kw.get("rotary_percentage", 0.25)
        self.parallel_residual = kw.get("parallel_residual", True)
        self.bias = kw.get("bias", True)
        self.attn_bias = kw.get("attn_bias", False) or False
        self.lm_head_bias = kw.get("lm_head_bias", False)
        self.shared_attention_norm = kw.get("shared_attention_norm", False)
        self.norm_class_name = kw.get("norm_class_name", "LayerNorm")
        self.norm_eps = kw.get("norm_eps", 1e-5)
        self.mlp_class_name = kw.get("mlp_class_name", "GptNeoxMLP")
        self.gelu_approximate = kw.get("gelu_approximate", "none")
        self.intermediate_size = kw.get("intermediate_size") or 4 * self.n_embd
        self.n_expert = kw.get("n_expert", 0)
        self.n_expert_per_token = kw.get("n_expert_per_token", 0)
        self.moe_intermediate_size = kw.get("moe_intermediate_size")
        self.routed_scaling_factor = kw.get("routed_scaling_factor", 1.0)
        self.rope_condense_ratio = kw.get("rope_condense_ratio", 1)
        self.rope_base = kw.get("rope_base", 10000)
        self.rope_adjustments = kw.get("rope_adjustments")
        self.scale_embeddings = kw.get("scale_embeddings", False)
        self.attention_scores_scalar = kw.get("attention_scores_scalar")
        self.norm_qk = kw.get("norm_qk", False)
        self.norm_qk_type = kw.get("norm_qk_type", "default")
        self.post_attention_norm = kw.get("post_attention_norm", False)
        self.post_mlp_norm = kw.get("post_mlp_norm", False)
        self.attention_logit_softcapping = kw.get("attention_logit_softcapping")
        self.final_logit_softcapping = kw.get("final_logit_softcapping")
        self.sliding_window_size = kw.get("sliding_window_size")
        self.sliding_window_indices = kw.get("sliding_window_indices")
        if self.sliding_window_size is not None:
            self.sliding_window_indices = (self.sliding_window_indices or [1] * self.n_layer)[: self.n_layer]
        self.norm_1 = kw.get("norm_1", True)
        self.norm_2 = kw.get("norm_2", True)
        # Gemma 3: the layers rope_indices marks rotate by rope_local_base_freq, without rope_adjustments.
        self.rope_local_base_freq = kw.get("rope_local_base_freq")
        self.rope_indices = kw.get("rope_indices")
        if self.rope_local_base_freq is not None:
            self.rope_indices = (self.rope_indices or [1] * self.n_layer)[: self.n_layer]
        if self.padded_vocab_size is None:
            m = self.padding_multiple
            self.padded_vocab_size = -(-self.vocab_size // m) * m
        self.rope_n_elem = int(self.rotary_percentage * self.head_size)
        self.lora_r = kw.get("lora_r", 0)
        self.lora_alpha = kw.get("lora_alpha", 1)
        self.lora_dropout = kw.get("lora_dropout", 0.0)
        for target in ("query", "key", "value", "projection", "mlp", "head"):
            setattr(self, f"lora_{target}", kw.get(f"lora_{target}", False))


class LoRALinear(nn.Module):
    def __init__(self, in_features, out_features, bias, r=0, alpha=1, dropout=0.0):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.r = r
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False
        if r > 0:
            self.lora_A = nn.Parameter(torch.empty(r, in_features))
            self.lora_B = nn.Parameter(torch.zeros(out_features, r))
            self.scaling = alpha / r
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def delta(self):
        return (self.lora_B @ self.lora_A) * self.scaling

    def forward(self, x):
        y = self.linear(x)
        if self.r == 0 or self.merged:
            return y
        return y + (self.dropout(x) @ self.lora_A.transpose(0, 1) @ self.lora_B.transpose(0, 1)) * self.scaling


class LoRAQKVLinear(LoRALinear):
    """The fused QKV projection; LoRA on the enabled parts only, zero-padded into the [Q|K|V] rows."""

    def __init__(self, config, r, alpha, dropout, enable):
        hs, nh, nqg = config.head_size, config.n_head, config.n_query_groups
        out = (nh + 2 * nqg) * hs
        nn.Module.__init__(self)
        self.linear = nn.Linear(config.n_embd, out, bias=config.bias or config.attn_bias)
        self.enable = enable
        self.r = r if any(enable) else 0
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False
        self.out_features = out
        self.n_head, self.n_query_groups = nh, nqg
        sizes = [nh * hs, nqg * hs, nqg * hs]
        starts = [0, nh * hs, (nh + nqg) * hs]
        self.qkv_shapes = [s for s, on in zip(sizes, enable) if on]
        self.lora_ind = [i for s0, s, on in zip(starts, sizes, enable) if on for i in range(s0, s0 + s)]
        if self.r > 0:
            n = sum(enable)
            self.lora_A = nn.Parameter(torch.empty(r * n, config.n_embd))
            self.lora_B = nn.Parameter(torch.zeros(sum(self.qkv_shapes), r))
            self.scaling = alpha / r
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def zero_pad(self, x):
        if all(self.enable):
            return x
        out = x.new_zeros(*x.shape[:-1], self.out_features)
        ind = torch.tensor(self.lora_ind, device=x.device)
        return out.index_copy(-1, ind, x)

    def packed(self, after_a):
        """The enabled parts' B_i·(A_i x), concatenated — computed as litgpt does, with a grouped conv1d
        when n_head == n_query_groups (parts of equal size), else one conv1d per part."""
        inp, weight = after_a.transpose(-2, -1), self.lora_B.unsqueeze(-1)  # (B, r·N, T), (Σ sizes, r, 1)
        if self.n_head == self.n_query_groups:
            out = F.conv1d(inp, weight, groups=sum(self.enable))
        else:
            parts = zip(inp.chunk(sum(self.enable), dim=1), weight.split(self.qkv_shapes))
            out = torch.cat([F.conv1d(a, b) for a, b in parts], dim=1)
        return out.transpose(-2, -1)

    def delta(self):
        a_parts = self.lora_A.split(self.r, dim=0)
        b_parts = self.lora_B.split(self.qkv_shapes, dim=0)
        packed = torch.cat([b @ a for a, b in zip(a_parts, b_parts)], dim=0)  # (Σ sizes, in)
        return self.zero_pad(packed.transpose(0, 1)).transpose(0, 1) * self.scaling

    def forward(self, x):
        y = self.linear(x)
        if self.r == 0 or self.merged:
            return y
        after_a = self.dropout(x) @ self.lora_A.transpose(0, 1)
        return y + self.zero_pad(self.packed(after_a)) * self.scaling


class RMSNorm(nn.Module):
    def __init__(self, size, eps, unit_offset):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps, self.unit_offset = eps, unit_offset

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(torch.mean(x * x, dim=-1, keepdim=True) + self.eps)
        w = (1 + self.weight) if self.unit_offset else self.weight
        return (x * w.float()).to(dtype)


def make_norm(config, size=None):
    size = size or config.n_embd
    if config.norm_class_name == "RMSNorm":
        return RMSNorm(size, config.norm_eps, "Gemma" in config.name)
    return nn.LayerNorm(size, eps=config.norm_eps)


def lora_linear(config, in_f, out_f, bias, on):
    return LoRALinear(in_f, out_f, bias, config.lora_r if on else 0, config.lora_alpha, config.lora_dropout)


def build_rope_cache(config, seq_len, local=False):
    n = config.rope_n_elem
    base = config.rope_local_base_freq if local else config.rope_base
    theta = 1.0 / (base ** (torch.arange(0, n, 2).float() / n))
    adj = None if local else config.rope_adjustments
    if adj and "low_freq_factor" in adj:
        wavelen = 2 * math.pi / theta
        ratio = adj["original_max_seq_len"] / wavelen
        smooth = ((ratio - adj["low_freq_factor"]) / (adj["high_freq_factor"] - adj["low_freq_factor"])).clamp(0.0, 1.0)
        theta = (1 - smooth) * (theta / adj["factor"]) + smooth * theta
    elif adj and "factor" in adj:
        theta = theta / adj["factor"]
    pos = torch.arange(seq_len).float() / config.rope_condense_ratio
    idx_theta = torch.outer(pos, theta).repeat(1, 2)
    return torch.cos(idx_theta), torch.sin(idx_theta)


def apply_rope(x, cos, sin):
    half = x.size(-1) // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return (x * cos + rotated * sin).to(x.dtype)


def do_softcapping(x, thresh):
    return torch.tanh(x / thresh) * thresh


class CausalSelfAttention(nn.Module):
    def __init__(self, config, block_idx=0):
        super().__init__()
        self.config = config
        self.sliding = config.sliding_window_size is not None and bool(config.sliding_window_indices[block_idx])
        enable = (config.lora_query, config.lora_key, config.lora_value)
        self.qkv = LoRAQKVLinear(config, config.lora_r, config.lora_alpha, config.lora_dropout, enable)
        self.proj = lora_linear(config, config.n_head * config.head_size, config.n_embd, config.bias, config.lora_projection)
        if config.norm_qk:  # litgpt: per head ("default", Qwen3) or over all heads' channels ("olmo2")
            olmo2 = config.norm_qk_type == "olmo2"
            self.norm_q = make_norm(config, config.n_head * config.head_size if olmo2 else config.head_size)
            self.norm_k = make_norm(config, config.n_query_groups * config.head_size if olmo2 else config.head_size)

    def heads(self, x, cos, sin):
        """q, k, v as (B, heads, T, hs): split, q/k-normed and roped as litgpt's CausalSelfAttention.forward."""
        c = self.config
        B, T, _ = x.shape
        hs, n = c.head_size, c.rope_n_elem
        q, k, v = self.qkv(x).split((c.n_head * hs, c.n_query_groups * hs, c.n_query_groups * hs), dim=-1)
        if c.norm_qk and c.norm_qk_type == "olmo2":
            q, k = self.norm_q(q), self.norm_k(k)
        q = q.view(B, T, c.n_head, hs).transpose(1, 2)
        k = k.view(B, T, c.n_query_groups, hs).transpose(1, 2)
        v = v.view(B, T, c.n_query_groups, hs).transpose(1, 2)
        if c.norm_qk and c.norm_qk_type == "default":
            q, k = self.norm_q(q), self.norm_k(k)
        q = torch.cat((apply_rope(q[..., :n], cos, sin), q[..., n:]), dim=-1)
        k = torch.cat((apply_rope(k[..., :n], cos, sin), k[..., n:]), dim=-1)
        return q, k, v

    def attend(self, q, k, v, start=0):
        """Attention of q (queries at positions start…) over k, v (keys at 0…), as litgpt's
        scaled_dot_product_attention with its causal and sliding-window masks. (B, T, n_head·hs)."""
        c = self.config
        B, _, T, hs = q.shape
        if c.n_query_groups != c.n_head:
            k = k.repeat_interleave(c.n_head // c.n_query_groups, dim=1)
            v = v.repeat_interleave(c.n_head // c.n_query_groups, dim=1)
        rows = torch.arange(T).unsqueeze(1) + start
        cols = torch.arange(k.size(2)).unsqueeze(0)
        allowed = cols <= rows
        if self.sliding:
            allowed = allowed & (rows - cols < c.sliding_window_size)
        scale = 1.0 / math.sqrt(c.attention_scores_scalar or hs)
        if c.attention_logit_softcapping is not None:
            scores = do_softcapping(q @ k.mT * scale, c.attention_logit_softcapping)
            scores = scores.masked_fill(~allowed, torch.finfo(q.dtype).min)
            y = F.softmax(scores, dim=-1, dtype=torch.float).to(dtype=q.dtype) @ v
        elif not self.sliding and start == 0 and T == k.size(2):  # litgpt's training path: is_causal, no mask tensor
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, scale=scale, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=0.0, scale=scale)
        return y.transpose(1, 2).reshape(B, T, c.n_head * hs)

    def forward(self, x, cos, sin):
        q, k, v = self.heads(x, cos, sin)
        return self.proj(self.attend(q, k, v))


class MLP(nn.Module):
    def __init__(self, config, intermediate_size=None):
        super().__init__()
        self.config = config
        c, on = config, config.lora_mlp
        size = intermediate_size or c.intermediate_size
        if c.mlp_class_name == "GptNeoxMLP":
            self.fc = lora_linear(c, c.n_embd, size, c.bias, on)
        else:
            self.fc_1 = lora_linear(c, c.n_embd, size, c.bias, on)
            self.fc_2 = lora_linear(c, c.n_embd, size, c.bias, on)
        self.proj = lora_linear(c, size, c.n_embd, c.bias, on)

    def forward(self, x):
        kind, approx = self.config.mlp_class_name, self.config.gelu_approximate
        if kind == "GptNeoxMLP":
            return self.proj(F.gelu(self.fc(x), approximate=approx))
        act = F.silu(self.fc_1(x)) if kind in ("LLaMAMLP", "LLaMAMoE") else F.gelu(self.fc_1(x), approximate=approx)
        return self.proj(act * self.fc_2(x))


class LLaMAMoE(nn.Module):
    """litgpt's LLaMAMoE (model.py; lora.py puts LoRA on the gate and every expert when lora_mlp), its forward as
    litgpt writes it: top-k of the router logits, softmax over those k, the expert loop with masked token sets."""

    def __init__(self, config):
        super().__init__()
        c, on = config, config.lora_mlp
        self.config = config
        self.gate = lora_linear(c, c.n_embd, c.n_expert, False, on)
        self.experts = nn.ModuleList(MLP(config, c.moe_intermediate_size) for _ in range(c.n_expert))

    def forward(self, x):
        B, T, C = x.size()
        x = x.view(-1, C)
        router = self.gate(x)
        probs, indices = torch.topk(router, self.config.n_expert_per_token)
        probs = probs.softmax(dim=1, dtype=torch.float).to(dtype=x.dtype)
        if self.config.routed_scaling_factor != 1.0:
            probs = probs * self.config.routed_scaling_factor
        masks = indices.unsqueeze(-1) == torch.arange(self.config.n_expert, device=x.device)
        masks = masks.permute(2, 0, 1)
        y = torch.zeros_like(x)
        for mask, expert in zip(masks, self.experts):
            token_idx, expert_idx = torch.where(mask)
            y[token_idx] += probs[token_idx, expert_idx, None] * expert(x[token_idx])
        return y.view(B, T, C)


class Block(nn.Module):
    def __init__(self, config, block_idx=0):
        super().__init__()
        self.config = config
        # litgpt: norm_1 / norm_2 = False (OLMo 2) make them nn.Identity.
        self.norm_1 = make_norm(config) if config.norm_1 else nn.Identity()
        self.attn = CausalSelfAttention(config, block_idx)
        self.post_attention_norm = make_norm(config) if config.post_attention_norm else nn.Identity()
        self.norm_2 = None if config.shared_attention_norm else make_norm(config) if config.norm_2 else nn.Identity()
        self.mlp = LLaMAMoE(config) if config.mlp_class_name == "LLaMAMoE" else MLP(config)
        self.post_mlp_norm = make_norm(config) if config.post_mlp_norm else nn.Identity()

    def residual(self, x, x_normed, attention_output):
        """litgpt's Block.forward after the attention: post norms, residuals, the MLP."""
        attention_output = self.post_attention_norm(attention_output)
        if self.config.parallel_residual:
            if not self.config.shared_attention_norm:
                x_normed = self.norm_2(x)
            x = attention_output + x
        else:
            x = attention_output + x
            x_normed = self.norm_2(x)
        return self.post_mlp_norm(self.mlp(x_normed)) + x

    def forward(self, x, cos, sin):
        x_normed = self.norm_1(x)
        return self.residual(x, x_normed, self.attn(x_normed, cos, sin))


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.lm_head = lora_linear(config, config.n_embd, config.padded_vocab_size, config.lm_head_bias, config.lora_head)
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.padded_vocab_size, config.n_embd),
            h=nn.ModuleList(Block(config, i) for i in range(config.n_layer)),
            ln_f=make_norm(config),
        ))
        cos, sin = build_rope_cache(config, config.block_size)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        if config.rope_local_base_freq is not None:
            cos, sin = build_rope_cache(config, config.block_size, local=True)
            self.register_buffer("cos_local", cos, persistent=False)
            self.register_buffer("sin_local", sin, persistent=False)

    def hidden(self, idx):
        T = idx.size(1)
        x = self.transformer.wte(idx)
        if self.config.scale_embeddings:
            x = x * torch.tensor(self.config.n_embd ** 0.5, dtype=x.dtype)
        for i, block in enumerate(self.transformer.h):
            x = block(x, *self.rope(i, 0, T, x.dtype))
        return self.transformer.ln_f(x)

    def rope(self, block_idx, start, T, dtype):
        """Layer block_idx's rope rows for positions start…start+T−1: the local table where rope_indices marks it."""
        local = self.config.rope_indices is not None and self.config.rope_indices[block_idx]
        cos, sin = (self.cos_local, self.sin_local) if local else (self.cos, self.sin)
        return cos[start:start + T].to(dtype), sin[start:start + T].to(dtype)

    def head(self, x):
        logits = self.lm_head(x)
        if self.config.final_logit_softcapping is not None:
            logits = do_softcapping(logits, self.config.final_logit_softcapping)
        return logits

    def forward(self, idx, lm_head_chunk_size=0):
        x = self.hidden(idx)
        if lm_head_chunk_size > 0:
            return [self.head(x_i) for x_i in x.split(lm_head_chunk_size, dim=1)]
        return self.head(x)

    def lora_layers(self):
        return [m for m in self.modules() if isinstance(m, LoRALinear) and m.r > 0]

    def merge(self):
        with torch.no_grad():
            for m in self.lora_layers():
                m.linear.weight += m.delta()
                m.merged = True


def mark_only_lora_as_trainable(model):
    for name, p in model.named_parameters():
        p.requires_grad = "lora_" in name


def chunked_cross_entropy(logits, targets, chunk_size=128, ignore_index=-100):
    """litgpt's chunked_cross_entropy: sum of per-token CE over non-ignored targets / max(1, count)."""
    if isinstance(logits, list):
        logits = [c.reshape(-1, c.size(-1)) for c in logits]
        targets = [t.reshape(-1) for t in targets.split(logits[0].size(0) // targets.size(0) or 1, dim=1)]
        losses = [F.cross_entropy(l, t, ignore_index=ignore_index, reduction="none") for l, t in zip(logits, targets)]
        count = torch.cat(targets).ne(ignore_index).sum()
        return torch.cat(losses).sum() / count.clamp(min=1)
    logits = logits.reshape(-1, logits.size(-1))
    targets = targets.reshape(-1)
    losses = F.cross_entropy(logits, targets, ignore_index=ignore_index, reduction="none")
    return losses.sum() / targets.ne(ignore_index).sum().clamp(min=1)


def lora_model_name(config, plain):
    """A plain GPT key (`transformer.h.0.attn.qkv.weight`) → this LoRA model's key (`….qkv.linear.weight`)."""
    for suffix in (".weight", ".bias"):
        if plain.endswith(suffix):
            module = plain[: -len(suffix)]
            last = module.rsplit(".", 1)[-1]
            if last in ("qkv", "proj", "fc", "fc_1", "fc_2", "gate", "lm_head"):
                return f"{module}.linear{suffix}"
    return plain


def load_plain(model, tensors):
    """Loads {plain name or lora name: numpy/tensor} strictly (buffers excluded)."""
    state = {lora_model_name(model.config, k): torch.as_tensor(v) for k, v in tensors.items()}
    result = model.load_state_dict(state, strict=True)
    return result


def make_model(config_dict, tensors=None, dtype=torch.float32):
    config = Config(**config_dict)
    model = GPT(config)
    if tensors is not None:
        load_plain(model, tensors)
    mark_only_lora_as_trainable(model)
    return model.to(dtype)
