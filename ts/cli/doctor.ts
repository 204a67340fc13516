// `litlora doctor`: what this machine has for litlora (Node, the build tools, libtorch and where it came from,
// the libtorch cache, CUDA, whether the native addon loads) and, for what is missing, what to install. It uses
// the same probes as setup (scripts/toolchain.mjs, scripts/libtorch-fetch.mjs), so what it reports is what a
// build would find. Exit status 0 when the addon loads (a prebuild needs no build tools), 1 otherwise.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { packageRoot } from '../addon_loader.js';

import type { CommandSpec } from './args.js';

interface Tool { path: string; version: string | null; kind?: string; name?: string }
interface Toolchain { cmake: Tool | null; compiler: Tool | null; make: Tool | null }
interface ToolchainModule {
  findToolchain(env?: NodeJS.ProcessEnv): Toolchain;
  toolchainProblems(tools: Toolchain, env?: NodeJS.ProcessEnv): string[];
}
interface FetchModule {
  LIBTORCH_VERSION: string;
  cacheRoot(env?: NodeJS.ProcessEnv): string;
  chooseVariant(env?: NodeJS.ProcessEnv): { variant: string; why: string };
  defaultAddress(version: string, variant: string, env?: NodeJS.ProcessEnv): string;
}

export const command: CommandSpec = {
  name: 'doctor',
  summary: 'Show what litlora found here (Node, build tools, libtorch, CUDA, the addon) and what is missing',
  description: `
Prints Node's version, the C++ compiler, cmake and make/ninja (with their versions), the libtorch the
addon was built against and where it came from (LIBTORCH, a Python PyTorch, or the download cache),
the libtorches in the cache (~/.cache/litlora, or LITLORA_CACHE), the CUDA build a download would fetch
and why, and whether the native addon loads. Then what is missing, with what to install. Exits 1 when
the addon does not load.`,
  flags: [],
  async run(_args, io) {
    const script = (name: string) => pathToFileURL(join(packageRoot, 'scripts', name)).href;
    const toolchain = await import(script('toolchain.mjs')) as ToolchainModule;
    const fetch = await import(script('libtorch-fetch.mjs')) as FetchModule;
    const missing: string[] = [];
    const lines: [string, string][] = [];
    const row = (what: string, text: string) => lines.push([what, text]);

    row('node', `${process.version} (${process.platform}-${process.arch}, ${process.execPath})`);
    const tools = toolchain.findToolchain(process.env);
    row('compiler', tools.compiler ? `${tools.compiler.kind} ${tools.compiler.version ?? '(version unknown)'} (${tools.compiler.path})` : 'missing');
    row('cmake', tools.cmake ? `${tools.cmake.version ?? '(version unknown)'} (${tools.cmake.path})` : 'missing');
    row('make', tools.make ? `${tools.make.name} (${tools.make.path})` : 'missing');
    const toolProblems = toolchain.toolchainProblems(tools, process.env);

    const envFile = join(packageRoot, 'build', 'litlora-env.json');
    if (existsSync(envFile)) {
      const env = JSON.parse(readFileSync(envFile, 'utf8')) as { version: string; torchSource: string; cmake: string };
      const from = env.torchSource === 'LIBTORCH' ? `LIBTORCH (${env.cmake.replace(/\/share\/cmake$/, '')})`
        : env.torchSource.startsWith('cache ') ? `the download cache (${env.torchSource.slice(6)})` : `the Python PyTorch of ${env.torchSource}`;
      row('libtorch', `${env.version} from ${from} (the local build)`);
    } else {
      row('libtorch', 'no local build' + (process.env.LIBTORCH ? `; LIBTORCH=${process.env.LIBTORCH}` : ''));
    }
    const cache = join(fetch.cacheRoot(process.env), 'libtorch');
    const cached = existsSync(cache) ? readdirSync(cache).filter((n) => !n.startsWith('.')).sort() : [];
    row('cache', `${cache}: ${cached.length ? cached.join(', ') : 'empty'}`);
    try {
      const { variant, why } = fetch.chooseVariant(process.env);
      row('CUDA', `${variant === 'cpu' ? 'none' : variant} (${why}); a download fetches libtorch ${fetch.LIBTORCH_VERSION}-${variant} ` +
        `from ${fetch.defaultAddress(fetch.LIBTORCH_VERSION, variant, process.env)}`);
    } catch (e) {
      row('CUDA', `unusable setting: ${(e as Error).message}`);
      missing.push((e as Error).message);
    }

    let loaded = false;
    try {
      const { buildInfo } = await import('../binding.js');
      const info = buildInfo();
      loaded = true;
      row('addon', `loads: ${info.addon} (Torch ${info.torchVersion}, ${info.cuda ? `CUDA, ${info.cudaDeviceCount} device(s)` : 'CPU'})`);
      row('MKL', info.mklVendorCheck.answersIntel
        ? 'its kernels chosen by CPU features (the addon answers MKL\'s vendor check; LITLORA_MKL_VENDOR_CHECK=1 keeps MKL\'s answer)'
        : 'its own vendor check (LITLORA_MKL_VENDOR_CHECK=1, or no AVX2/FMA)');
    } catch (e) {
      row('addon', 'does not load');
      missing.push(`the native addon: ${(e as Error).message.split('\n').slice(0, 6).join('\n    ')}`);
    }
    if (toolProblems.length) {
      missing.push(...toolProblems.map((p) => loaded ? `${p} (needed only to build from source: \`npx litlora build\`)` : p));
    }

    const width = Math.max(...lines.map(([w]) => w.length)) + 2;
    io.out(`litlora doctor\n${lines.map(([w, t]) => `  ${w.padEnd(width)}${t}`).join('\n')}\n`);
    io.out(missing.length ? `Missing:\n${missing.map((m) => `  - ${m}`).join('\n')}\n` : 'Nothing is missing.\n');
    return loaded ? 0 : 1;
  },
};
