"""Builds the tokenizer fixtures in test/fixtures/tokenizers/ and their ground truth.

No real tokenizer.json is shipped by any package installed here, so three realistic ones are trained with the Rust
`tokenizers` library (pip package `tokenizers`, 0.23) on a small fixed corpus, each wired like a real model family:

  neox/    GPT-NeoX / Pythia: NFC, ByteLevel pre-tokenizer (GPT-2 regex), ByteLevel decoder, <|endoftext|>,
           non-special whitespace added tokens; tokenizer_config without add_bos_token (use_bos False).
  llama2/  Llama 2 / TinyLlama: BPE with byte_fallback and <0xNN> tokens, Prepend+Replace normalizer, no
           pre-tokenizer, Replace/ByteFallback/Fuse/Strip decoder, TemplateProcessing "<s> $A";
           tokenizer_config add_bos_token true, LlamaTokenizer.
  llama3/  Llama 3: Split with Llama 3's regex + ByteLevel(use_regex False), TemplateProcessing
           "<|begin_of_text|> $A", <|eot_id|>; tokenizer_config without add_bos_token.
  bytes/   a byte-level tokenizer like `litlora init` writes: 256 byte tokens (GPT-2 byte alphabet, no merges)
           plus <|bos|>, <|eos|>, <|pad|>.

For each, expected.json records, for a list of strings, the ids of `Tokenizer.encode(s).ids` and the text of
`decode(ids)` (skip_special_tokens=True), as the Rust library computes them. Rerun with the project venv after
`pip install tokenizers`:  .venv/bin/python test/reference/make_tokenizer_fixtures.py
"""
import json
import os
import pydoc
import sys

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "tokenizers")

STRINGS = [
    "Hello world",
    "Hello, world! How are you today?",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\n\nand\r\nCRLF",
    "multiple     spaces    inside",
    "Numbers: 12345 3.14159 -42 1e10 2024-06-01",
    "Ünïcödé àccents: café, naïve, Zürich, Ærøskøbing",
    "中文字符和日本語のテキスト",
    "Emoji: 😀🚀👍🏽 and family 👨‍👩‍👧‍👦 flags 🇩🇪",
    "Code: def f(x):\n    return x ** 2  # square",
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nReverse: abc\n\n### Response:\n",
    "It's we're they've I'm you'll he'd IT'S",
    "",
    " ",
    "a",
    "<|endoftext|> inside text <|endoftext|>",
    "<s> and </s> markers",
    "<|begin_of_text|>x<|eot_id|>",
    "Ω≈ç√∫˜µ≤≥÷ ¡™£¢∞§¶•ªº–≠",
    "zero\u200bwidth and nbsp\u00a0here",
]


def corpus():
    import this  # noqa: F401  (the Zen of Python, printed on import; its text is rot13 in this.s)
    import codecs
    lines = [codecs.decode(sys.modules["this"].s, "rot13")]
    for name in ["json", "os", "re", "collections", "functools", "itertools", "pathlib", "argparse", "logging",
                 "unittest", "string", "textwrap", "datetime", "random", "statistics", "typing", "dataclasses"]:
        module = __import__(name)
        lines.append(pydoc.render_doc(module, renderer=pydoc.plaintext))
    extra = [
        "Below is an instruction that describes a task. Write a response that appropriately completes the request.",
        "### Instruction:\n### Input:\n### Response:\n",
        "Reverse: abc -> cba. Uppercase: dog -> DOG. Next letter after c -> d.",
        "café naïve Zürich München Ærøskøbing São Paulo Kraków",
        "中文 日本語 한국어 русский язык ελληνικά العربية",
        "😀 🚀 👍 🎉 ❤️ 🇩🇪",
    ]
    return [l for text in lines + extra * 20 for l in text.splitlines() if l.strip()]


def write(name, tok, config, extra_files=None):
    d = os.path.join(ROOT, name)
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
        f.write("\n")
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))  # what litgpt would load
    cases = []
    for s in STRINGS:
        ids = tok.encode(s).ids
        cases.append({
            "text": s,
            "ids": ids,
            "decoded": tok.decode(ids),
            "decoded_with_special": tok.decode(ids, skip_special_tokens=False),
        })
    expected = {
        "tokenizers_version": __import__("tokenizers").__version__,
        "vocab_size": tok.get_vocab_size(with_added_tokens=False),
        "vocab_size_with_added": tok.get_vocab_size(with_added_tokens=True),
        "cases": cases,
    }
    with open(os.path.join(d, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(name, "vocab", expected["vocab_size"], "bytes", os.path.getsize(os.path.join(d, "tokenizer.json")))


def neox(lines):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=2000, special_tokens=["<|endoftext|>", "<|padding|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(lines, trainer)
    tok.add_tokens(["    ", "  "])  # GPT-NeoX adds runs of spaces as non-special tokens
    write("neox", tok, {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
                        "tokenizer_class": "GPTNeoXTokenizer", "add_prefix_space": False})


def llama2(lines):
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    trainer = trainers.BpeTrainer(vocab_size=1500, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    tok.train_from_iterator(lines, trainer)
    # Rebuild the vocabulary as Llama's: specials, the 256 byte-fallback tokens, then the learned ones.
    data = json.loads(tok.to_str())
    learned = sorted(data["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {}
    for t in ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]:
        vocab[t] = len(vocab)
    for t, _ in learned:
        if t not in vocab:
            vocab[t] = len(vocab)
    data["model"]["vocab"] = vocab
    data["pre_tokenizer"] = None  # Llama's tokenizer.json has none: the normalizer does the ▁ work
    for added in data["added_tokens"]:
        added["id"] = vocab[added["content"]]
    tok = Tokenizer.from_str(json.dumps(data))
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    write("llama2", tok, {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
                          "unk_token": "<unk>", "tokenizer_class": "LlamaTokenizer", "legacy": False})


LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                  r"\s*[\r\n]+|\s+(?!\S)|\s+")


def llama3(lines):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    trainer = trainers.BpeTrainer(vocab_size=2500, special_tokens=[], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines, trainer)
    tok.add_special_tokens(specials)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                      special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    write("llama3", tok, {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
                          "tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": True})


def byte_level():
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    # GPT-2's byte order: the byte b maps to bytes_to_unicode()[b]; ids 0..255 follow byte values.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    byte_to_char = dict(zip(bs, (chr(c) for c in cs)))
    assert set(byte_to_char.values()) == set(alphabet)
    vocab = {byte_to_char[b]: b for b in range(256)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|bos|>", "<|eos|>", "<|pad|>"])
    write("bytes", tok, {"bos_token": "<|bos|>", "eos_token": "<|eos|>", "pad_token": "<|pad|>",
                         "add_bos_token": True, "tokenizer_class": "PreTrainedTokenizerFast"})


if __name__ == "__main__":
    lines = corpus()
    neox(lines)
    llama2(lines)
    llama3(lines)
    byte_level()
