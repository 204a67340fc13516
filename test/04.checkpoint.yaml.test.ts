// The YAML writer against real PyYAML: litgpt writes model_config.yaml with `yaml.dump`, so ours must be
// byte-identical for the same dict.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseArgs, type CommandSpec } from '../ts/cli/args.js';
import { configToYaml, readConfig } from '../ts/model/config.js';
import { configFromName } from '../ts/model/configs.js';
import { loadPromptStyle } from '../ts/data/prompts.js';
import { readHyperparameters } from '../ts/io/hyperparameters.js';
import { dumpYaml, parseYaml, pyFloat } from '../ts/io/yaml.js';
import { assertCode } from './helpers/assert.js';
import { runPython } from './helpers/python.js';
import { tempFolders } from './helpers/temp.js';

const temp = tempFolders();
test.after(() => temp.removeAll());

const EXAMPLES = join(import.meta.dirname, 'fixtures', 'litgpt');

test('pyFloat matches Python repr + PyYAML represent_float', () => {
  const cases: [number, string][] = [
    [1e-5, '1.0e-05'], [1e-6, '1.0e-06'], [0.25, '0.25'], [1, '1.0'], [32, '32.0'], [3e-4, '0.0003'], [6e-5, '6.0e-05'],
    [1e16, '1.0e+16'], [1e15, '1000000000000000.0'], [0.1 + 0.2, '0.30000000000000004'], [-2.5, '-2.5'],
    [1.5e-7, '1.5e-07'], [0, '0.0'], [-0, '-0.0'], [Infinity, '.inf'], [-Infinity, '-.inf'], [NaN, '.nan'], [1e300, '1.0e+300'],
  ];
  for (const [x, want] of cases) assert.is(pyFloat(x), want, String(x));
});

test('random structures: dumpYaml equals PyYAML yaml.dump byte for byte (300 cases)', () => {
  // Python makes random dicts (awkward strings, floats, ints, nesting, long lines) and dumps them; the JSON
  // carries which leaves are floats so that integer-valued floats (1.0) keep their type.
  const { stdout } = runPython(`
import json, random, yaml
random.seed(7)
alphabet = list("abcxyz019 -_:#.,'\\"?![]{}&*|>%@\`~\\n\\t\\\\/") + ['é', '\\u2028', '\\x07', '😀', '\\x85', '\\xa0']
words = ['true','null','yes','No','on','1.0','12','0x1f','1e5','2024-01-01','~','','-','- a','a #b','a# b','---','...','=','<<','.inf','1_000','07','+1','x'*90,' lead','trail ','a  b']
def rstr():
    r = random.random()
    if r < 0.3: return random.choice(words)
    if r < 0.5: return ' '.join(random.choice(['word','pythia','checkpoints/EleutherAI/pythia-14m','x'*random.randint(1,30)]) for _ in range(random.randint(1,25)))
    return ''.join(random.choice(alphabet) for _ in range(random.randint(0, 40)))
def rkey(): return random.choice(['a','b','name','n_embd','key with space','zz','Ab','_x']) + str(random.randint(0,9))
def rval(d):
    r = random.random()
    if d < 3 and r < 0.15: return {rkey(): rval(d+1) for _ in range(random.randint(0,4))}
    if d < 3 and r < 0.25: return [rval(d+1) for _ in range(random.randint(0,3))]
    if r < 0.35: return random.choice([None, True, False])
    if r < 0.45: return random.randint(-10**6, 10**6)
    if r < 0.55: return random.choice([1.0, 0.25, 1e-5, 3e-4, 1e16, -0.0, 32.0, float(random.randint(0,100)), random.random()*10**random.randint(-8,20)])
    return rstr()
cases = []
while len(cases) < 300:
    v = {rkey(): rval(0) for _ in range(random.randint(1,6))}
    floats, ints = [], []
    def walk(x, path):
        if isinstance(x, float): floats.append('.'.join(path))
        elif isinstance(x, int) and not isinstance(x, bool): ints.append('.'.join(path))
        elif isinstance(x, dict): [walk(y, path+[k]) for k, y in x.items()]
        elif isinstance(x, list): [walk(y, path+['*']) for y in x]
    walk(v, [])
    if set(floats) & set(ints): continue  # one path, both kinds: not expressible per path
    cases.append({'value': v, 'floats': floats, 'yaml': yaml.dump(v)})
print(json.dumps(cases))
`);
  const cases = JSON.parse(stdout) as { value: any; floats: string[]; yaml: string }[];
  assert.is(cases.length, 300);
  for (const c of cases) {
    const floats = new Set(c.floats);
    assert.fixture(dumpYaml(c.value, { isFloat: (p) => floats.has(p.join('.')) }), c.yaml);
  }
});

test('model_config.yaml of named configs is byte-identical to files litgpt 0.5.13 wrote', async () => {
  for (const name of ['pythia-14m', 'tiny-llama-1.1b', 'Llama-3.2-1B']) {
    const file = `${EXAMPLES}/model_config.${name}.yaml`;
    const expected = readFileSync(file, 'utf8');
    assert.fixture(configToYaml(configFromName(name)), expected, `${name} from the named table`);
    assert.fixture(configToYaml(await readConfig(file)), expected, `${name} read and written again`);
  }
});

test('parseYaml reads YAML 1.1 like safe_load and remembers float literals', () => {
  const p = parseYaml('a: 1.0\nb: [1.0, 2]\nc:\n  d: 2.0e-05\n  e: 3\nf: yes\ng:\nh: ~\n');
  assert.equal(p.value, { a: 1, b: [1, 2], c: { d: 2e-5, e: 3 }, f: true, g: null, h: null });
  assert.equal(Object.fromEntries(p.numberKinds), { a: 'float', 'b.*': 'float', 'c.d': 'float', 'c.e': 'int' });
});

test('dumpYaml layout: nested mappings, indentless lists, empty collections, quoting', () => {
  assert.fixture(dumpYaml({ b: 'x', a: { z: [1, 'two', { k: null }], y: {}, w: [] }, c: 'true', d: '', e: "it's", f: 'a: b' }),
    "a:\n  w: []\n  y: {}\n  z:\n  - 1\n  - two\n  - k: null\nb: x\nc: 'true'\nd: ''\ne: it's\nf: 'a: b'\n");
  assert.fixture(dumpYaml({ z: 1, a: 2 }, { sortKeys: false }), 'z: 1\na: 2\n');
});

/** "Billion laughs": `levels` anchors, each a list of nine aliases of the one before: 9^levels values from 1 KB. */
function aliasBomb(levels = 10): string {
  let text = 'a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n';
  for (let i = 1; i < levels; i++) text += `a${i}: &a${i} [${new Array(9).fill(`*a${i - 1}`).join(', ')}]\n`;
  return text;
}

test('a YAML alias bomb fails with ERR_CONFIG naming the file, wherever litlora reads YAML', async () => {
  const bomb = /would expand to [\d.]+e\+9 values \(at most 100,000\); this looks like an alias bomb/;
  await assertCode(() => parseYaml(aliasBomb(), 'bomb.yaml'), 'ERR_CONFIG', new RegExp(`^bomb\\.yaml: its aliases \\(\\*name\\) ${bomb.source}`));
  const dir = temp.make('yaml-bomb');
  for (const name of ['model_config.yaml', 'hyperparameters.yaml', 'prompt_style.yaml', 'run.yaml']) writeFileSync(join(dir, name), aliasBomb());
  await assertCode(() => readConfig(join(dir, 'model_config.yaml')), 'ERR_CONFIG', new RegExp(`^${join(dir, 'model_config.yaml')}: .*${bomb.source}`));
  await assertCode(() => readHyperparameters(join(dir, 'hyperparameters.yaml')), 'ERR_CONFIG', new RegExp(`^${join(dir, 'hyperparameters.yaml')}: .*${bomb.source}`));
  await assertCode(() => loadPromptStyle(dir), 'ERR_CONFIG', new RegExp(`^${join(dir, 'prompt_style.yaml')}: .*${bomb.source}`));
  const spec: CommandSpec = { name: 'x', summary: '', flags: [{ name: 'a0', type: 'string', help: '' }], run: async () => 0 };
  await assertCode(() => parseArgs(spec, ['--config', 'run.yaml'], dir), 'ERR_CONFIG', new RegExp(`^--config run\\.yaml: ${join(dir, 'run.yaml')}: .*${bomb.source}`));
});

test('aliases that expand to too much text, and an alias inside its own anchor, are ERR_CONFIG; plain aliases read', async () => {
  const long = `a: &a "${'x'.repeat(1 << 20)}"\nb: [${new Array(20).fill('*a').join(', ')}]\n`;
  await assertCode(() => parseYaml(long, 'long.yaml'), 'ERR_CONFIG', /^long\.yaml: its aliases \(\*name\) would expand to 2\.10e\+7 characters \(at most 16,777,216\)/);
  await assertCode(() => parseYaml('a: &a [1, *a]\n', 'loop.yaml'), 'ERR_CONFIG', /^loop\.yaml: the alias \*a is inside the node it refers to/);
  await assertCode(() => parseYaml('a: *nowhere\n', 'dangling.yaml'), 'ERR_CONFIG', /^dangling\.yaml cannot be read as YAML: Unresolved alias/);
  // PyYAML writes an anchor and an alias when one object appears twice; such files read as before.
  assert.equal(parseYaml('betas: &id001\n- 0.9\n- 0.95\nagain: *id001\nbase: &m {k: 1}\nderived: {<<: *m, extra: 2}\n').value,
    { betas: [0.9, 0.95], again: [0.9, 0.95], base: { k: 1 }, derived: { k: 1, extra: 2 } });
  assert.equal(parseYaml(aliasBomb(5)).value !== null, true); // 9^5 = 59,049 values: under the cap
});

test.run();
