"""Builds test/fixtures/tokenizers/spm/: a SentencePiece-only tokenizer (tokenizer.model, no tokenizer.json) and the
ids the real SentencePiece library gives, for litlora's tokenizer.model → tokenizer.json conversion.

The project's reference Python has no `sentencepiece` (nor `protobuf`, which transformers' slow tokenizers need), so
this runs with a Python that has it, e.g. Debian's: `apt-get install python3-sentencepiece`, then
  /usr/bin/python3 test/reference/make_sentencepiece_fixture.py

The model is trained like Llama's: BPE, byte_fallback, digits split, identity normalization, no whitespace
collapsing, a dummy prefix, <unk>/<s>/</s> at ids 0/1/2, plus one user-defined symbol. expected.json records, for
each string, SentencePieceProcessor.encode(s) (what litgpt's Tokenizer calls for a tokenizer.model) and decode(ids).
"""
import codecs
import io
import json
import os
import pydoc
import sys

import sentencepiece as spm

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "tokenizers", "spm")

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
    "a",
    " ",
    "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n What is 2+2? [/INST] ",
    "user-defined <|tool|> symbol",
]


def corpus():
    import this  # noqa: F401  (the Zen of Python; its text is rot13 in this.s)
    lines = [codecs.decode(sys.modules["this"].s, "rot13")]
    for name in ["json", "os", "re", "collections", "functools", "itertools", "pathlib", "argparse", "logging",
                 "unittest", "string", "textwrap", "datetime", "random", "statistics", "typing", "dataclasses"]:
        lines.append(pydoc.render_doc(__import__(name), renderer=pydoc.plaintext))
    return "\n".join(lines).splitlines()


def main():
    os.makedirs(ROOT, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([line for line in corpus() if line.strip()]), model_writer=model,
        model_type="bpe", vocab_size=800, character_coverage=0.9995, byte_fallback=True, split_digits=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, user_defined_symbols=["<|tool|>"], allow_whitespace_only_pieces=True,
        minloglevel=2,
    )
    with open(os.path.join(ROOT, "tokenizer.model"), "wb") as f:
        f.write(model.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    cases = []
    for s in STRINGS:
        ids = sp.encode(s)
        cases.append({"text": s, "ids": ids, "decoded": sp.decode(ids)})
    with open(os.path.join(ROOT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump({"bos_id": sp.bos_id(), "eos_id": sp.eos_id(), "unk_id": sp.unk_id(), "vocab_size": sp.get_piece_size(),
                   "cases": cases}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    config = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
              "legacy": True, "tokenizer_class": "LlamaTokenizer"}
    with open(os.path.join(ROOT, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=1)
        f.write("\n")
    print(f"{sp.get_piece_size()} pieces, {len(cases)} cases")


if __name__ == "__main__":
    main()
