// The factory behind `--data NAME --data.key value` and hyperparameters.yaml's `data:`. The interface every
// module implements is in ./data_module.ts; implementations: JSON and Alpaca (./instruction.ts), TextFiles
// (./text_files.ts).
import { fail } from '../errors.js';
import type { DataModuleArgs } from './args.js';
import { AlpacaData, JSONData } from './instruction.js';
import type { DataModule } from './data_module.js';
import { TextFilesData } from './text_files.js';

export type { DataModule, DataModuleName, SetupOptions } from './data_module.js';
export type { DataModuleArgs } from './args.js';

/** Creates a data module by litgpt's class name; unknown names or arguments are ERR_CONFIG naming the flag. */
export function createDataModule(name: string, args: DataModuleArgs = {}): DataModule {
  switch (name) {
    case 'JSON':
    case 'litgpt.data.JSON':
      return new JSONData(args);
    case 'Alpaca':
    case 'litgpt.data.Alpaca':
      return new AlpacaData(args);
    case 'TextFiles':
    case 'litgpt.data.TextFiles':
      return new TextFilesData(args);
    default:
      fail('ERR_CONFIG', `--data: unknown data module '${name}'; expected one of JSON, Alpaca, TextFiles`);
  }
}

/** Builds a module from hyperparameters.yaml's `data: {class_path, init_args}`. */
export function dataModuleFromHyperparameters(data: { class_path: string; init_args?: DataModuleArgs }): DataModule {
  return createDataModule(data.class_path, data.init_args ?? {});
}
