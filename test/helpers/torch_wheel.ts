// A torch wheel for the install tests to serve (or point LITLORA_LIBTORCH_URL at) in place of PyTorch's download
// site, which tests never reach: made from the reference Python's installed torch (the one setup installs into
// the project's .venv), holding what a real wheel holds under torch/ — lib/, include/, share/ and version.py — as a
// stored (uncompressed) zip. Made once per build folder, under build/test-torch-wheel/, and reused.
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { packageRoot } from '../../ts/addon_loader.js';
import { runPython } from './python.js';

const DIR = join(packageRoot, 'build', 'test-torch-wheel');

export function localTorchWheel(): string {
  const existing = existsSync(DIR) ? readdirSync(DIR).find((n) => n.endsWith('.whl')) : undefined;
  if (existing) return join(DIR, existing);
  mkdirSync(DIR, { recursive: true });
  const r = runPython(`
import os, platform, torch, zipfile
root = os.path.dirname(torch.__file__)
py = f"cp{sys.version_info.major}{sys.version_info.minor}"
name = f"torch-{torch.__version__}-{py}-{py}-manylinux_2_28_{platform.machine()}.whl"
target = os.path.join(${JSON.stringify(DIR)}, name)
partial = target + ".partial"
with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as z:
    z.write(os.path.join(root, "version.py"), "torch/version.py")
    for sub in ("lib", "include", "share"):
        for folder, _, files in os.walk(os.path.join(root, sub)):
            for f in sorted(files):
                path = os.path.join(folder, f)
                z.write(path, "torch/" + os.path.relpath(path, root))
os.replace(partial, target)
print(target)`);
  const wheel = r.stdout.trim().split('\n').pop()!;
  assert.ok(/torch-2\.13\.0\+cpu-cp\d+-cp\d+-manylinux_2_28_\w+\.whl$/.test(wheel), `the reference Python's torch is not 2.13.0+cpu: ${wheel}`);
  return wheel;
}
