// Child process for the killed-merge test: `litlora merge_lora <args>`, so that the parent can SIGKILL it
// while its partial output exists.
import { runCli } from '../../ts/cli/main.js';

void runCli(['merge_lora', ...process.argv.slice(2)]).then((code) => process.exit(code));
