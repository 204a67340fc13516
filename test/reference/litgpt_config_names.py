"""Writes test/fixtures/litgpt/config_names.json: every entry of litgpt's `name_to_config` (litgpt/config.py) as
litgpt lists it (name, hf_config and the fields that differ from Config's defaults), so that the tests can check
litlora's named configs against litgpt's without reading outside the repository.

    litgpt_config_names.py CONFIG_PY OUT_JSON [--source TEXT]

CONFIG_PY: litgpt's litgpt/config.py (self-contained: it imports only yaml and typing_extensions), e.g. from a
checkout or `git show <commit>:litgpt/config.py > config.py`. --source says where it came from (kept in the file).
"""
import argparse
import json
import types


def main():
    p = argparse.ArgumentParser()
    p.add_argument("config_py")
    p.add_argument("out")
    p.add_argument("--source", default="")
    a = p.parse_args()
    module = types.ModuleType("litgpt_config")
    with open(a.config_py) as f:
        exec(compile(f.read(), a.config_py, "exec"), module.__dict__)
    entries = list(module.name_to_config.values())
    with open(a.out, "w") as f:
        json.dump({"source": a.source, "configs": entries}, f, indent=0, sort_keys=False)
        f.write("\n")


if __name__ == "__main__":
    main()
