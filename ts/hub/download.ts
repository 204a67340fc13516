// download(repoId): litgpt's `download` — a model's config, tokenizer and weights from the Hugging Face Hub
// into checkpoints/ORG/NAME, then (unless told not to) converted into litgpt's layout (lit_model.pth,
// model_config.yaml). Files already there with the hub's size and hash are kept; others are fetched through
// hidden partial files that resume after an interruption (./partial_file.ts). Nothing is written under a file's
// final name before its bytes are complete and verified, so a failed run leaves the folder usable for a rerun.
import { existsSync } from 'node:fs';
import { rmdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fail } from '../errors.js';
import { MODEL_FILE } from '../io/checkpoint.js';
import { makeFolder } from '../io/fs_errors.js';
import { CONVERT_DTYPES, convertToLitgpt, type ConvertProgress } from '../interop/convert_to_litgpt.js';
import { configFromName } from '../model/configs.js';
import type { Dtype } from '../tensor.js';
import { checkRepoId, hubEndpoint, hubToken, listRepoFiles, type HubTarget } from './client.js';
import { selectFiles } from './files.js';
import { alreadyComplete, fetchToFile } from './partial_file.js';

export interface DownloadOptions {
  /** The folder the model's folder goes under, as ORG/NAME (default 'checkpoints'; relative to `cwd`). */
  checkpointDir?: string;
  /** A Hugging Face access token for gated or private repos (default: env HF_TOKEN). */
  accessToken?: string | null;
  /** Fetch only the tokenizer and config files, no weights (and convert nothing). */
  tokenizerOnly?: boolean;
  /** Convert the downloaded weights into litgpt's lit_model.pth + model_config.yaml (default true). */
  convertCheckpoint?: boolean;
  /** The dtype of the converted weights (default: as downloaded). */
  dtype?: Dtype | null;
  /** The litgpt config name for the converted model, for repos whose name is not one (default: from the repo). */
  modelName?: string | null;
  /** A branch, tag or commit of the repo (default 'main'). */
  revision?: string;
  /** The folder relative paths start from (default process.cwd()). */
  cwd?: string;
  /** The hub's address (default: env HF_ENDPOINT, else https://huggingface.co). */
  endpoint?: string;
  /** Called as bytes arrive (and once per file as it starts, is found complete, or ends). */
  onProgress?: (progress: DownloadProgress) => void;
  /** Called as the conversion writes tensors (convertToLitgpt's onProgress). */
  onConvertProgress?: (progress: ConvertProgress) => void;
}

export interface DownloadProgress {
  /** The file's path in the repo. */
  file: string;
  /**
   * 'start': about to fetch; 'data': bytes arrived; 'skip': already complete on disk; 'done': verified, in place;
   * 'convert': all files are in place and the conversion to lit_model.pth begins (`file` is 'lit_model.pth').
   */
  event: 'start' | 'data' | 'skip' | 'done' | 'convert';
  fileBytes: number;
  fileSize: number;
  /** All selected files together: the bytes on disk so far, and the total. */
  bytes: number;
  totalBytes: number;
}

export interface DownloadResult {
  /** The model's folder: checkpointDir/ORG/NAME. */
  folder: string;
  /** The repo files the download took (paths in the repo, which are also names in `folder`). */
  files: string[];
  /** Of `files`, those fetched by this run (the others were complete already). */
  fetched: string[];
  weightFormat: 'safetensors' | 'bin' | null;
  /**
   * litgpt's lit_model.pth: 'converted' by this run, 'kept' (converted before from the same files), or null (not
   * asked for: convertCheckpoint false, or a tokenizer-only download).
   */
  converted: 'converted' | 'kept' | null;
}

/** Downloads a model repo from the Hugging Face Hub into checkpointDir/ORG/NAME (see the module comment). */
export async function download(repoId: string, options: DownloadOptions = {}): Promise<DownloadResult> {
  checkRepoId(repoId);
  const { endpoint, fromEnv } = hubEndpoint(options.endpoint);
  const revision = options.revision || 'main';
  const accessToken = hubToken(options.accessToken);
  const target: HubTarget = { endpoint, endpointFromEnv: fromEnv, repoId, revision, ...(accessToken ? { accessToken } : {}) };
  const tokenizerOnly = options.tokenizerOnly ?? false;
  // What the conversion will need is checked before any byte is fetched, not after gigabytes.
  if (options.dtype && !CONVERT_DTYPES.includes(options.dtype)) {
    fail('ERR_ARG', `dtype must be one of ${CONVERT_DTYPES.join(', ')} (or left out: as downloaded), got '${String(options.dtype)}'.`);
  }
  if (options.modelName) configFromName(options.modelName);

  const selection = selectFiles(await listRepoFiles(target), tokenizerOnly, target);
  const files = [...selection.tokenizer, ...selection.weights];
  const folder = resolve(options.cwd ?? process.cwd(), options.checkpointDir ?? 'checkpoints', repoId);
  const created = await makeFolder(folder, 'the checkpoint folder');

  const totalBytes = files.reduce((n, f) => n + f.size, 0);
  const report = options.onProgress ?? (() => {});
  let before = 0; // bytes of the files already handled
  const fetched: string[] = [];
  try {
    for (const file of files) {
      const dest = resolve(folder, file.path);
      const progress = (event: DownloadProgress['event'], fileBytes: number) =>
        report({ file: file.path, event, fileBytes, fileSize: file.size, bytes: before + fileBytes, totalBytes });
      if (await alreadyComplete(dest, file)) {
        progress('skip', file.size);
      } else {
        progress('start', 0);
        await fetchToFile(target, file, dest, (done) => progress('data', done));
        fetched.push(file.path);
        progress('done', file.size);
      }
      before += file.size;
    }
  } catch (e) {
    // A run refused before its first byte (a gated repo's files) leaves no empty folders behind; files and
    // partial files stay, for a rerun to keep or resume.
    if (created) await removeEmptyFolders(folder, created);
    throw e;
  }

  let converted: DownloadResult['converted'] = null;
  if ((options.convertCheckpoint ?? true) && !tokenizerOnly) {
    // A lit_model.pth converted from these very files is kept: a rerun that fetched no weights and no config, and
    // asks for no particular dtype or config, changes nothing. Otherwise it is redone (and replaced atomically).
    const stale = fetched.some((f) => f === 'config.json' || selection.weights.some((w) => w.path === f)) ||
      !!options.dtype || !!options.modelName;
    if (existsSync(join(folder, MODEL_FILE)) && !stale) {
      converted = 'kept';
    } else {
      report({ file: MODEL_FILE, event: 'convert', fileBytes: 0, fileSize: 0, bytes: totalBytes, totalBytes });
      await convertToLitgpt(folder, {
        modelName: options.modelName ?? null, dtype: options.dtype ?? null, force: true,
        ...(options.onConvertProgress ? { onProgress: options.onConvertProgress } : {}),
      });
      converted = 'converted';
    }
  }
  return { folder, files: files.map((f) => f.path), fetched, weightFormat: selection.weightFormat, converted };
}

/** Removes `folder` and its parents up to `top` while they are empty. */
async function removeEmptyFolders(folder: string, top: string): Promise<void> {
  for (let dir = folder; ; dir = dirname(dir)) {
    try { await rmdir(dir); } catch { return; } // not empty (or gone): the folders above it stay too
    if (dir === top || dirname(dir) === dir) return;
  }
}
