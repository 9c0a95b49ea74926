/**
 * Config files for mptun commands: JSON or YAML (by extension: .json is JSON, anything else is
 * read as YAML, of which JSON is a subset). A file is one mapping whose keys are the command's
 * long flag names (`tun`, `vip`, `listen`, `drain-timeout`, ...) with the values the flags take; a
 * repeatable flag takes a list (or one value). Flags given on the command line win over the file.
 *
 * API (used by `mptun server` and `mptun client`):
 * - `loadConfigFile(path, schema)`: reads and type-checks the file against `schema`
 *   (key → kind), returning the values or the first problem as a message that names the fix.
 * - `mergeConfig(fileValues, flags)`: the flags with every key they leave undefined taken from
 *   the file.
 * The command then validates the merged flags exactly as if they had all been given as flags.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';

export type ConfigKind = 'string' | 'number' | 'boolean' | 'string[]' | 'number[]';
export type ConfigSchema = Readonly<Record<string, ConfigKind>>;
export type ConfigValue = string | number | boolean | string[] | number[];
export type ConfigValues = Record<string, ConfigValue>;

const EXAMPLES: Record<ConfigKind, string> = {
  string: '"text"',
  number: '10',
  boolean: 'true or false',
  'string[]': '["a", "b"] (or one "a")',
  'number[]': '[5001, 5002] (or one 5001)',
};

function checkValue(kind: ConfigKind, v: unknown): ConfigValue | undefined {
  switch (kind) {
    case 'string':
      return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined;
    case 'number':
      return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
    case 'boolean':
      return typeof v === 'boolean' ? v : undefined;
    case 'string[]': {
      const list = Array.isArray(v) ? v : [v];
      if (!list.every((x) => typeof x === 'string' || typeof x === 'number')) return undefined;
      return list.map(String);
    }
    case 'number[]': {
      const list = Array.isArray(v) ? v : [v];
      if (!list.every((x) => typeof x === 'number' && Number.isFinite(x))) return undefined;
      return list as number[];
    }
  }
}

/** Reads `path` (JSON or YAML) and checks every key and value against `schema`. */
export function loadConfigFile(
  path: string,
  schema: ConfigSchema,
): { values: ConfigValues } | { error: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return {
      error: `--config ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); give the path of a JSON or YAML file`,
    };
  }
  let doc: unknown;
  try {
    doc = extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    const kind = extname(path).toLowerCase() === '.json' ? 'JSON' : 'YAML';
    return { error: `--config ${path}: not valid ${kind}: ${(err as Error).message.split('\n')[0]}` };
  }
  if (doc === null || doc === undefined) return { values: {} };
  if (typeof doc !== 'object' || Array.isArray(doc))
    return {
      error: `--config ${path}: the file must be one mapping of flag names to values (e.g. tun: ptun0)`,
    };
  const values: ConfigValues = {};
  for (const [key, v] of Object.entries(doc as Record<string, unknown>)) {
    const kind = schema[key];
    if (kind === undefined) {
      const near = Object.keys(schema).find(
        (k) => k.replaceAll('-', '') === key.replaceAll(/[-_]/g, '').toLowerCase(),
      );
      return {
        error: `--config ${path}: unknown key '${key}'${near ? ` (did you mean '${near}'?)` : ''}; the keys are the long flag names: ${Object.keys(schema).join(', ')}`,
      };
    }
    const value = checkValue(kind, v);
    if (value === undefined)
      return {
        error: `--config ${path}: '${key}' must be ${kind.endsWith('[]') ? 'a list' : `a ${kind}`}, e.g. ${key}: ${EXAMPLES[kind]}`,
      };
    values[key] = value;
  }
  return { values };
}

/** The flags, with each key they leave undefined filled from the file (flags win). */
export function mergeConfig<T extends object>(file: ConfigValues, flags: T): T {
  const out: Record<string, unknown> = { ...file };
  for (const [k, v] of Object.entries(flags)) if (v !== undefined) out[k] = v;
  return out as T;
}
