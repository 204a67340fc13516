// The tools a native build of litlora needs (cmake, a C++20 compiler, make or ninja), found on PATH the way
// cmake-js and CMake find them, with their versions. setup checks them before it downloads or builds anything,
// so that a missing tool is one coded error naming the package to install, not a raw ENOENT halfway through;
// `litlora doctor` prints them.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { SetupError } from './setup-error.mjs';

// The oldest versions that build litlora: CMakeLists.txt's cmake_minimum_required, and compilers with the C++20
// that libtorch 2.13's headers and litlora's sources use.
export const MINIMUM = { cmake: '3.18', gcc: '10', clang: '14', 'Apple clang': '14' };

const INSTALL = {
  cmake: 'Debian/Ubuntu: `sudo apt-get install cmake`; Fedora: `sudo dnf install cmake`; macOS: `brew install cmake`',
  compiler: 'Debian/Ubuntu: `sudo apt-get install g++`; Fedora: `sudo dnf install gcc-c++`; macOS: `xcode-select --install`',
  make: 'Debian/Ubuntu: `sudo apt-get install make` (or ninja-build); Fedora: `sudo dnf install make`; macOS: `xcode-select --install`',
};

/** The full path of executable `name` on `path` (a PATH string), or null. */
export function which(name, path = process.env.PATH ?? '') {
  if (isAbsolute(name)) return isExecutable(name) ? name : null;
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return null;
}

function isExecutable(file) {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function firstLine(file, args, env) {
  const r = spawnSync(file, args, { encoding: 'utf8', env, timeout: 20_000 });
  return r.status === 0 ? (r.stdout || r.stderr || '').split('\n')[0].trim() : null;
}

// "cmake version 3.25.1", "c++ (Debian 12.2.0-14) 12.2.0", "Apple clang version 15.0.0 (clang-1500.1.0.403)".
function versionIn(line) {
  const afterWord = /version\s+(\d+(?:\.\d+)+)/.exec(line);
  if (afterWord) return afterWord[1];
  const all = [...line.matchAll(/\b(\d+\.\d+(?:\.\d+)?)\b/g)];
  return all.length ? all[all.length - 1][1] : null;
}

/** a < b for dotted versions. */
export function olderThan(a, b) {
  const x = a.split('.').map(Number), y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) < (y[i] ?? 0);
  }
  return false;
}

/**
 * What is on PATH: { cmake, compiler, make } — each { path, version, … } or null when absent. The compiler is
 * $CXX, else the first of c++, g++, clang++ (CMake's order).
 */
export function findToolchain(env = process.env) {
  const path = env.PATH ?? '';
  const cmakePath = which('cmake', path);
  const cmakeLine = cmakePath ? firstLine(cmakePath, ['--version'], env) : null;
  const cmake = cmakePath ? { path: cmakePath, version: cmakeLine ? versionIn(cmakeLine) : null } : null;

  let compiler = null;
  // CXX may name a launcher first (`ccache g++`): the compiler is the word after it.
  const cxxWords = env.CXX ? env.CXX.trim().split(/\s+/) : [];
  const cxx = cxxWords.find((w) => !/^(s?ccache|distcc)$/.test(w.split('/').pop() ?? '')) ?? null;
  for (const name of cxx ? [cxx] : ['c++', 'g++', 'clang++']) {
    const file = which(name, path);
    if (!file) continue;
    const line = firstLine(file, ['--version'], env) ?? '';
    const kind = /Apple clang/i.test(line) ? 'Apple clang' : /clang/i.test(line) ? 'clang' : 'gcc';
    compiler = { path: file, kind, version: versionIn(line), line };
    break;
  }
  const ninja = which('ninja', path);
  const makePath = ninja ?? which('make', path);
  const make = makePath ? { path: makePath, name: ninja ? 'ninja' : 'make' } : null;
  return { cmake, compiler, make };
}

/** What the toolchain lacks, one sentence each (empty when everything is there). */
export function toolchainProblems(tools = findToolchain(), env = process.env) {
  const problems = [];
  if (!tools.cmake) problems.push(`cmake (${MINIMUM.cmake} or newer) is not on PATH. Install it: ${INSTALL.cmake}`);
  else if (tools.cmake.version && olderThan(tools.cmake.version, MINIMUM.cmake)) {
    problems.push(`cmake ${tools.cmake.version} (${tools.cmake.path}) is too old: litlora needs ${MINIMUM.cmake} or newer. ` +
      `Install a newer one: ${INSTALL.cmake}, or \`pip install cmake\``);
  }
  if (!tools.compiler) {
    problems.push(`no C++ compiler is on PATH (looked for ${env.CXX ? `CXX=${env.CXX}` : 'c++, g++, clang++'}). ` +
      `Install one: ${INSTALL.compiler}`);
  } else {
    const { kind, version, path } = tools.compiler;
    const minimum = MINIMUM[kind];
    if (!version) problems.push(`the C++ compiler ${path} did not say its version (\`${path} --version\`)`);
    else if (olderThan(version, minimum)) {
      problems.push(`the C++ compiler ${path} is ${kind} ${version}, too old for C++20: litlora needs ${kind} ${minimum} or ` +
        `newer. Install a newer one (${INSTALL.compiler}) and put it first on PATH, or set CXX to it`);
    }
  }
  if (!tools.make) problems.push(`neither make nor ninja is on PATH. Install one: ${INSTALL.make}`);
  return problems;
}

/** Throws ERR_TOOLCHAIN naming everything a native build lacks; returns the toolchain when it is complete. */
export function checkToolchain(env = process.env) {
  const tools = findToolchain(env);
  const problems = toolchainProblems(tools, env);
  if (problems.length) {
    throw new SetupError('ERR_TOOLCHAIN', `building litlora's native addon needs tools this machine lacks:\n` +
      problems.map((p) => `  - ${p}`).join('\n') +
      '\nInstall them and run `npx litlora build` again. (With a prebuild for this platform, no build is needed: see ' +
      '`npx litlora doctor`.)');
  }
  return tools;
}
