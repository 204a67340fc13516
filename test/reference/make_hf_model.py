"""Tiny Hugging Face models made by transformers itself, for litlora's interop tests: real config classes and
file layouts, random weights (every parameter perturbed, so biases and norm scales are not the zeros and ones of
transformers' init and a wrong mapping cannot hide).

    make_hf_model.py FAMILY DIR [--layout single|sharded|bin] [--dtype float32|bfloat16] [--seed N]
        [--shape tiny|pythia-14m] [--vocab-size N]

FAMILY: gpt_neox | llama | qwen2 | qwen3 | gemma2 | gemma3 | mistral | olmo2 | phi3 | mixtral | qwen3_moe (the last two without
`bin`: transformers 5 fuses their experts in state_dict()). The layouts: model.safetensors; model-0000i-of-0000n.safetensors with
model.safetensors.index.json; pytorch_model.bin (torch.save of the state dict, as transformers < 5 wrote it).
"""
import argparse
import os

import torch
from transformers import (GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig, LlamaForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM, Gemma2Config, Gemma2ForCausalLM, Gemma3TextConfig,
                          Gemma3ForCausalLM, MistralConfig, MistralForCausalLM, Olmo2Config,
                          Olmo2ForCausalLM, Phi3Config, Phi3ForCausalLM, MixtralConfig, MixtralForCausalLM,
                          Qwen3MoeConfig, Qwen3MoeForCausalLM)


def make(family: str, shape: str, vocab_size: int = 300):
    if family == "gpt_neox":
        if shape == "pythia-14m":  # EleutherAI/pythia-14m's config.json sizes
            cfg = GPTNeoXConfig(vocab_size=50304, hidden_size=128, num_hidden_layers=6, num_attention_heads=4,
                                intermediate_size=512, max_position_embeddings=512, rotary_pct=0.25,
                                tie_word_embeddings=False)
        else:
            cfg = GPTNeoXConfig(vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=256, max_position_embeddings=128, rotary_pct=0.25,
                                tie_word_embeddings=False)
        return GPTNeoXForCausalLM(cfg)
    if family == "llama":
        cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                          num_key_value_heads=2, intermediate_size=96, max_position_embeddings=256,
                          tie_word_embeddings=True, rms_norm_eps=1e-5, rope_theta=500000.0,
                          rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                        "high_freq_factor": 4.0, "original_max_position_embeddings": 64})
        return LlamaForCausalLM(cfg)
    if family == "qwen2":
        cfg = Qwen2Config(vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                          num_key_value_heads=2, intermediate_size=96, max_position_embeddings=256,
                          tie_word_embeddings=True, rms_norm_eps=1e-6, rope_theta=1000000.0)
        return Qwen2ForCausalLM(cfg)
    if family == "qwen3":  # head_dim ≠ hidden_size / heads, as in Qwen3-0.6B; q_norm / k_norm per head
        cfg = Qwen3Config(vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                          num_key_value_heads=2, head_dim=32, intermediate_size=96, max_position_embeddings=256,
                          tie_word_embeddings=True, rms_norm_eps=1e-6, rope_theta=1000000.0)
        return Qwen3ForCausalLM(cfg)
    if family == "gemma2":  # caps small enough to bite at this scale; a 4-token window in layers 0 and 2
        cfg = Gemma2Config(vocab_size=vocab_size, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                           num_key_value_heads=2, head_dim=32, intermediate_size=96, max_position_embeddings=256,
                           query_pre_attn_scalar=24, sliding_window=4, attn_logit_softcapping=2.0,
                           final_logit_softcapping=3.0, tie_word_embeddings=True, rms_norm_eps=1e-6)
        return Gemma2ForCausalLM(cfg)
    if family == "gemma3":  # a 4-token window in layers 0 and 2, which rotate by the local base; linear scaling globally
        cfg = Gemma3TextConfig(vocab_size=300, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                               num_key_value_heads=2, head_dim=32, intermediate_size=96, max_position_embeddings=256,
                               query_pre_attn_scalar=24, sliding_window=4, tie_word_embeddings=True, rms_norm_eps=1e-6,
                               layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                               rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
                                                "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}})
        return Gemma3ForCausalLM(cfg)
    if family == "mistral":  # a 4-token window in every layer
        cfg = MistralConfig(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=2, intermediate_size=96, max_position_embeddings=256, sliding_window=4,
                            tie_word_embeddings=False, rms_norm_eps=1e-5, rope_theta=1000000.0)
        return MistralForCausalLM(cfg)
    if family == "olmo2":  # GQA, so that q_norm and k_norm differ in size
        cfg = Olmo2Config(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                          intermediate_size=96, max_position_embeddings=256, tie_word_embeddings=False, rms_norm_eps=1e-6,
                          rope_theta=500000.0, eos_token_id=2)
        return Olmo2ForCausalLM(cfg)
    if family == "phi3":  # partial rotary (as Phi-4-mini), GQA, a 4-token window in every layer
        cfg = Phi3Config(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         intermediate_size=96, max_position_embeddings=256, original_max_position_embeddings=256,
                         sliding_window=4, tie_word_embeddings=False, rms_norm_eps=1e-5, pad_token_id=None, eos_token_id=2,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.75})
        return Phi3ForCausalLM(cfg)
    if family == "mixtral":  # 4 experts, top-2, each intermediate_size wide
        cfg = MixtralConfig(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                            num_key_value_heads=2, intermediate_size=48, num_local_experts=4, num_experts_per_tok=2,
                            max_position_embeddings=256, tie_word_embeddings=True, rms_norm_eps=1e-5,
                            rope_theta=1000000.0, sliding_window=None)
        return MixtralForCausalLM(cfg)
    if family == "qwen3_moe":  # q/k norms, head_dim ≠ hidden / heads, 4 experts of moe_intermediate_size, top-3
        cfg = Qwen3MoeConfig(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=2, head_dim=32, intermediate_size=96, moe_intermediate_size=40,
                             num_experts=4, num_experts_per_tok=3, norm_topk_prob=True, max_position_embeddings=256,
                             tie_word_embeddings=True, rms_norm_eps=1e-6, rope_theta=1000000.0)
        return Qwen3MoeForCausalLM(cfg)
    raise SystemExit(f"unknown family {family}")


def save(family: str, dir: str, layout: str = "single", dtype: str = "float32", seed: int = 0, shape: str = "tiny",
         vocab_size: int = 300):
    torch.manual_seed(seed)
    model = make(family, shape, vocab_size)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                param.copy_(1 + 0.1 * torch.randn_like(param))
            else:
                param.copy_(0.1 * torch.randn_like(param))
    model = model.to(getattr(torch, dtype))
    if layout == "bin":
        os.makedirs(dir, exist_ok=True)
        model.config.save_pretrained(dir)
        model.generation_config.save_pretrained(dir)
        sd = {k: v for k, v in model.state_dict().items()
              if not (model.config.tie_word_embeddings and k == "lm_head.weight")}
        torch.save(sd, os.path.join(dir, "pytorch_model.bin"))
    else:
        total = sum(p.numel() * p.element_size() for p in model.parameters())
        shard = f"{max(1, total // 3 // 1000)}KB" if layout == "sharded" else "50GB"
        model.save_pretrained(dir, max_shard_size=shard)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("family")
    p.add_argument("dir")
    p.add_argument("--layout", default="single", choices=["single", "sharded", "bin"])
    p.add_argument("--dtype", default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shape", default="tiny")
    p.add_argument("--vocab-size", type=int, default=300)
    a = p.parse_args()
    save(a.family, a.dir, a.layout, a.dtype, a.seed, a.shape, a.vocab_size)


if __name__ == "__main__":
    main()
