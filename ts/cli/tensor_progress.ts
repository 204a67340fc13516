// A progress bar over the tensors a conversion writes, on a terminal only (pipes and CI get the summary lines).
import cliProgress from 'cli-progress';
import type { ConvertProgress } from '../interop/convert_to_litgpt.js';

/** An onProgress handler drawing a bar on stderr when it is a terminal; call stop() when done. */
export function tensorProgress(label: string, stream: NodeJS.WriteStream = process.stderr):
  { onProgress?: (e: ConvertProgress) => void; stop: () => void } {
  if (!stream.isTTY) return { stop: () => {} };
  const bar = new cliProgress.SingleBar({
    stream, format: `${label} |{bar}| {value}/{total} tensors | ETA {eta_formatted}`, hideCursor: true, clearOnComplete: true, fps: 5,
  }, cliProgress.Presets.shades_classic);
  let started = false;
  return {
    onProgress: (e) => {
      if (e.phase !== 'weights' || e.total === undefined) return;
      if (!started) {
        bar.start(e.total, e.tensors ?? 0);
        started = true;
      } else {
        bar.update(e.tensors ?? 0);
      }
    },
    stop: () => { if (started) bar.stop(); },
  };
}
