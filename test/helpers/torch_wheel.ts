// The torch wheel of the local pip wheel store (this machine has no internet): a zip holding libtorch under
// torch/, which tests serve or point LITLORA_LIBTORCH_URL at in place of PyTorch's download site.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';

const WHEELS = '/opt/wheels';

export function localTorchWheel(): string {
  const name = existsSync(WHEELS) ? readdirSync(WHEELS).find((n) => /^torch-2\.13\.0\+cpu-cp\d+-cp\d+-manylinux[\w.]*_x86_64\.whl$/.test(n)) : undefined;
  assert.ok(name, `no torch-2.13.0+cpu wheel in ${WHEELS} to serve`);
  return join(WHEELS, name!);
}
