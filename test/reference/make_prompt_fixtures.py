"""Builds test/fixtures/prompts/litgpt_prompts.json: what litgpt's own prompts.py renders, for litlora's prompt tests.

litgpt is not installed in the reference Python, so its prompts.py and config.py are executed as plain modules (their
only litgpt import, `litgpt.config.Config`, is stubbed with the real config.py) from a litgpt checkout or the
bare mirror:

  .venv/bin/python test/reference/make_prompt_fixtures.py /path/to/litgpt           # a checkout (has litgpt/prompts.py)
  .venv/bin/python test/reference/make_prompt_fixtures.py --git-dir /path/to/litgpt.git

Recorded: for every class of prompts.py and every name of `prompt_styles`, `apply` with and without sys_prompt and
input (the list-of-messages form where a class has one), the stop tokens with a stand-in tokenizer (eos_id 2, every
other token's id its index in TOKENS + 1000), and `model_name_to_prompt_style` for every name of litgpt's configs.
"""
import json
import os
import subprocess
import sys
import types

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "prompts")


def read_source(args, path):
    if args[0] == "--git-dir":
        return subprocess.run(["git", "--git-dir", args[1], "show", f"HEAD:{path}"], check=True,
                              capture_output=True, text=True).stdout
    with open(os.path.join(args[0], path), encoding="utf-8") as f:
        return f.read()


def load(args):
    config = types.ModuleType("litgpt.config")
    exec(compile(read_source(args, "litgpt/config.py"), "litgpt/config.py", "exec"), config.__dict__)
    litgpt = types.ModuleType("litgpt")
    litgpt.config = config
    sys.modules["litgpt"] = litgpt
    sys.modules["litgpt.config"] = config
    prompts = types.ModuleType("litgpt.prompts")
    exec(compile(read_source(args, "litgpt/prompts.py"), "litgpt/prompts.py", "exec"), prompts.__dict__)
    return config, prompts


TOKENS = ["<|SYSTEM|>", "<|ASSISTANT|>", "<|USER|>", "User", ":", "<|endoftext|>", "<|eot_id|>",
          "<｜end▁of▁sentence｜>", "Answer"]


class StandInTokenizer:
    eos_id = 2

    def token_to_id(self, token):
        return 1000 + TOKENS.index(token)


PROMPT = "What is 2+2?\nThink first."
CASES = [
    {"prompt": PROMPT},
    {"prompt": PROMPT, "sys_prompt": "You are terse."},
    {"prompt": PROMPT, "sys_prompt": ""},
    {"prompt": "Translate to German", "input": "Hello, world"},
    {"prompt": "Translate to German", "input": "Hello, world", "sys_prompt": "SYS\n"},
    {"prompt": "Translate to German", "input": ""},
]
CONVERSATIONS = [
    [{"role": "user", "content": " Hi there \n"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hello! "}, {"role": "user", "content": "2+2?"}],
    [],
]


def render(style, case):
    kwargs = {k: v for k, v in case.items() if k not in ("prompt", "sys_prompt")}
    return style.apply(case["prompt"], sys_prompt=case.get("sys_prompt"), **kwargs)


def main():
    args = sys.argv[1:]
    if not args or (args[0] == "--git-dir" and len(args) < 2):
        sys.exit(__doc__)
    config, prompts = load(args)
    classes = {name: obj for name, obj in vars(prompts).items()
               if isinstance(obj, type) and issubclass(obj, prompts.PromptStyle) and obj is not prompts.PromptStyle}
    styles = {}
    for name, cls in sorted(classes.items()):
        style = cls()
        entry = {"cases": [dict(case, expected=render(style, case)) for case in CASES]}
        try:
            entry["stop_tokens"] = [list(s) for s in style.stop_tokens(StandInTokenizer())]
        except ValueError as e:  # a token the stand-in lacks
            entry["stop_tokens_error"] = str(e)
        if name in ("Llama3", "R1Base"):
            entry["conversations"] = [{"messages": c, "expected": style.apply(c)} for c in CONVERSATIONS]
            entry["conversations"].append({"messages": CONVERSATIONS[0], "sys_prompt": "Custom.",
                                           "expected": style.apply(CONVERSATIONS[0], sys_prompt="Custom.")})
        styles[name] = entry
    names = sorted({c["name"] for c in config.configs})
    out = {
        "tokens": TOKENS,
        "eos_id": StandInTokenizer.eos_id,
        "styles": styles,
        "prompt_styles": {name: cls.__name__ for name, cls in prompts.prompt_styles.items()},
        "model_names": {name: type(prompts.model_name_to_prompt_style(name)).__name__ for name in names},
    }
    os.makedirs(ROOT, exist_ok=True)
    with open(os.path.join(ROOT, "litgpt_prompts.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{len(styles)} classes, {len(out['prompt_styles'])} names, {len(names)} model names")


if __name__ == "__main__":
    main()
