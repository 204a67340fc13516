// The factory behind `--data NAME --data.key value` and hyperparameters.yaml's `data:`. The interface every
// module implements is in ./data_module.ts; implementations: JSON and Alpaca (./instruction.ts), TextFiles
// (./text_files.ts).
//
// Two doors: createDataModule is typed per module (a misspelt name or argument is a compile error), for code
// that names its module; dataModuleFromArgs takes a name and arguments known only at run time (the CLI's
// strings, YAML) and checks them there. Both check every argument at run time.
import { fail } from '../errors.js';
import type { DataModuleArgs } from './args.js';
import { AlpacaData, ChatData, JSONData, type AlpacaArgs, type JSONArgs } from './instruction.js';
import type { DataModule } from './data_module.js';
import { Alpaca2kData, AlpacaGPT4Data, DeitaData, LIMAData, LongFormData, type ConversationDataArgs } from './litgpt_datasets.js';
import { TextFilesData, type TextFilesArgs } from './text_files.js';

export type { DataModule, DataModuleName, SetupOptions } from './data_module.js';
export type { DataModuleArgs } from './args.js';
export type { AlpacaArgs, JSONArgs } from './instruction.js';
export type { TextFilesArgs } from './text_files.js';

/** The modules by name, as `--data NAME` takes them. */
export const DATA_MODULE_NAMES = ['JSON', 'Chat', 'Alpaca', 'AlpacaGPT4', 'Alpaca2k', 'LIMA', 'Deita', 'LongForm', 'TextFiles'] as const;

/** Each module's arguments, by litgpt's class name (short or full). */
export interface DataModuleArgsByName {
  JSON: JSONArgs;
  'litgpt.data.JSON': JSONArgs;
  Chat: JSONArgs;
  'litlora.data.Chat': JSONArgs;
  Alpaca: AlpacaArgs;
  'litgpt.data.Alpaca': AlpacaArgs;
  TextFiles: TextFilesArgs;
  'litgpt.data.TextFiles': TextFilesArgs;
}

/** The module class each name makes. */
export interface DataModuleByName {
  JSON: JSONData;
  'litgpt.data.JSON': JSONData;
  Chat: ChatData;
  'litlora.data.Chat': ChatData;
  Alpaca: AlpacaData;
  'litgpt.data.Alpaca': AlpacaData;
  TextFiles: TextFilesData;
  'litgpt.data.TextFiles': TextFilesData;
}

/**
 * A data module by litgpt's class name with its typed arguments, e.g. `createDataModule('JSON', { json_path })`.
 * Values are still checked at run time (ERR_CONFIG naming the `--data.<key>`).
 */
export function createDataModule<N extends keyof DataModuleArgsByName>(name: N, args: DataModuleArgsByName[N]): DataModuleByName[N] {
  return dataModuleFromArgs(name, args as DataModuleArgs) as DataModuleByName[N];
}

/**
 * A data module from a name and arguments known only at run time (`--data NAME --data.key value`: strings are
 * parsed); an unknown name or argument is ERR_CONFIG naming the flag.
 */
export function dataModuleFromArgs(name: string, args: DataModuleArgs = {}): DataModule {
  switch (name) {
    case 'JSON':
    case 'litgpt.data.JSON':
      return new JSONData(args as unknown as JSONArgs);
    case 'Chat':
    case 'litlora.data.Chat':
      return new ChatData(args as unknown as JSONArgs);
    case 'Alpaca':
    case 'litgpt.data.Alpaca':
      return new AlpacaData(args as unknown as AlpacaArgs);
    case 'AlpacaGPT4':
    case 'litgpt.data.AlpacaGPT4':
      return new AlpacaGPT4Data(args as unknown as AlpacaArgs);
    case 'Alpaca2k':
    case 'litgpt.data.Alpaca2k':
      return new Alpaca2kData(args as unknown as AlpacaArgs);
    case 'LIMA':
    case 'litgpt.data.LIMA':
      return new LIMAData(args as unknown as ConversationDataArgs);
    case 'Deita':
    case 'litgpt.data.Deita':
      return new DeitaData(args as unknown as ConversationDataArgs);
    case 'LongForm':
    case 'litgpt.data.LongForm':
      return new LongFormData(args as unknown as ConversationDataArgs);
    case 'TextFiles':
    case 'litgpt.data.TextFiles':
      return new TextFilesData(args as unknown as TextFilesArgs);
    default:
      fail('ERR_CONFIG', `--data: unknown data module '${name}'; expected one of ${DATA_MODULE_NAMES.join(', ')}`);
  }
}

/** Builds a module from hyperparameters.yaml's `data: {class_path, init_args}`. */
export function dataModuleFromHyperparameters(data: { class_path: string; init_args?: DataModuleArgs }): DataModule {
  return dataModuleFromArgs(data.class_path, data.init_args ?? {});
}
