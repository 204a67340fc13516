"""The GGUF metadata llama.cpp's convert_hf_to_gguf.py writes for a Hugging Face folder, for litlora's GGUF tests.

convert_hf_to_gguf.py is not part of the `gguf` wheel, so this reproduces, from reading the script (llama.cpp
master of 2026), what its TextModel / LlamaModel / Qwen2Model / GPTNeoXModel write, with the real pieces it
uses: transformers' AutoTokenizer for get_vocab_base (tokens and token types) and gguf-py's SpecialVocab for
merges, special token ids, add_* flags and the chat template. tokenizer.ggml.pre is left out (the script finds
it from a hash that only published tokenizers match) and general.name (the script uses the folder name).

    expected(hf_dir, family, file_type) -> {key: value}     values as GGUFReader's ReaderField.contents() gives
"""
import json
import os

import gguf
from transformers import AutoConfig, AutoTokenizer


def looks_special(t):
    return t in ("<pad>", "<mask>", "<2mass>", "[@BOS@]") or (t.startswith("<|") and t.endswith("|>")) \
        or (t.startswith("<｜") and t.endswith("｜>")) or (t.startswith("<unused") and t.endswith(">"))


def vocab_base(hf_dir, vocab_size):
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    reverse = {i: t for t, i in tokenizer.vocab.items()}
    added = tokenizer.get_added_vocab()
    decoder = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(int(gguf.TokenType.UNUSED))
            continue
        token = reverse[i]
        if token in added:
            if not decoder[i].normalized:
                token = tokenizer.decode(tokenizer.encode(token, add_special_tokens=False))
            if decoder[i].special or looks_special(token):
                types.append(int(gguf.TokenType.CONTROL))
            else:
                token = token.replace("\u2581", " ")
                types.append(int(gguf.TokenType.USER_DEFINED))
        else:
            types.append(int(gguf.TokenType.NORMAL))
        tokens.append(token)
    return tokens, types


def expected(hf_dir, family, file_type):
    # the script's ModelBase.load_hparams: AutoConfig's dict (defaults included), config.json when that fails
    try:
        hp = AutoConfig.from_pretrained(hf_dir).to_dict()
    except Exception:
        hp = json.load(open(os.path.join(hf_dir, "config.json")))
    rope = hp.get("rope_parameters") or hp.get("rope_scaling") or {}
    kv = {"general.type": "model"}
    if family == "gpt_neox":
        arch = "gptneox"
        kv.update({
            "gptneox.context_length": hp["max_position_embeddings"], "gptneox.embedding_length": hp["hidden_size"],
            "gptneox.block_count": hp["num_hidden_layers"], "gptneox.feed_forward_length": hp["intermediate_size"],
            "gptneox.rope.dimension_count": int(hp.get("rotary_pct", rope.get("partial_rotary_factor")) * (hp["hidden_size"] // hp["num_attention_heads"])),
            "gptneox.attention.head_count": hp["num_attention_heads"],
            "gptneox.use_parallel_residual": hp.get("use_parallel_residual", True),
            "gptneox.attention.layer_norm_epsilon": hp["layer_norm_eps"],
        })
    else:
        arch = family
        kv.update({
            f"{arch}.block_count": hp["num_hidden_layers"], f"{arch}.context_length": hp["max_position_embeddings"],
            f"{arch}.embedding_length": hp["hidden_size"], f"{arch}.feed_forward_length": hp["intermediate_size"],
            f"{arch}.attention.head_count": hp["num_attention_heads"],
            f"{arch}.attention.head_count_kv": hp["num_key_value_heads"],
            f"{arch}.rope.freq_base": rope.get("rope_theta", hp.get("rope_theta")),
            f"{arch}.attention.layer_norm_rms_epsilon": hp["rms_norm_eps"],
            "general.file_type": file_type,
        })
        if hp.get("head_dim") is not None:
            kv[f"{arch}.attention.key_length"] = hp["head_dim"]
            kv[f"{arch}.attention.value_length"] = hp["head_dim"]
        if family == "llama":
            kv["llama.vocab_size"] = hp["vocab_size"]
            kv["llama.rope.dimension_count"] = hp.get("head_dim") or hp["hidden_size"] // hp["num_attention_heads"]
    kv["general.architecture"] = arch
    kv["general.quantization_version"] = gguf.GGML_QUANT_VERSION
    tokens, types = vocab_base(hf_dir, hp["vocab_size"])
    kv["tokenizer.ggml.model"] = "gpt2"
    kv["tokenizer.ggml.tokens"] = tokens
    kv["tokenizer.ggml.token_type"] = types
    special = gguf.SpecialVocab(hf_dir, load_merges=True)
    writer_keys = {
        "bos": "bos_token_id", "eos": "eos_token_id", "unk": "unknown_token_id", "sep": "seperator_token_id",
        "pad": "padding_token_id", "mask": "mask_token_id", "eot": "eot_token_id", "eom": "eom_token_id",
    }
    if special.merges:
        kv["tokenizer.ggml.merges"] = list(special.merges)
    for typ, tid in special.special_token_ids.items():
        if typ in writer_keys:
            kv[f"tokenizer.ggml.{writer_keys[typ]}"] = tid
    for typ, value in special.add_special_token.items():
        if typ in ("bos", "eos", "sep"):
            kv[f"tokenizer.ggml.add_{typ}_token"] = value
    if special.chat_template is not None:
        kv["tokenizer.chat_template"] = special.chat_template
    return kv


def read(path):
    """A GGUF file's metadata as {key: value} (GGUF.* header fields left out)."""
    r = gguf.GGUFReader(path)
    out = {}
    for name, field in r.fields.items():
        if name.startswith("GGUF."):
            continue
        v = field.contents()
        out[name] = v
    return out, [(t.name, [int(x) for x in t.shape], t.tensor_type.name) for t in r.tensors]
