/**
 * Configuration: a declared schema with defaults, one validator, and atomic persistence
 * in `config.json` inside the data directory.
 *
 * @module
 */

import { joinPath as join } from "./paths.ts";
import { ConfigError, OperationalError } from "./errors.ts";

/** Resolved configuration. Times are seconds, sizes bytes. */
export interface Config {
  /** Retries after the first attempt. @default 3 */
  maxRetries: number;
  /** Retry n waits `backoffBase ^ n` seconds. @default 2 */
  backoffBase: number;
  /** Cap on one retry delay, seconds. @default 3600 */
  backoffMaxS: number;
  /** Random fraction added to or taken from each delay, 0..1. @default 0 */
  backoffJitter: number;
  /** Default per-attempt time limit, seconds; null for none. @default null */
  jobTimeoutS: number | null;
  /** Longest a worker sleeps between checks when nothing wakes it, seconds. @default 1 */
  pollIntervalS: number;
  /** How long a claim lasts without a heartbeat, seconds. @default 30 */
  leaseS: number;
  /** On `worker stop`, how long running jobs may finish before they are killed. @default 30 */
  shutdownGraceS: number;
  /** Between SIGTERM and SIGKILL when a job's process group is killed. @default 5 */
  killGraceS: number;
  /** Bytes of output kept per attempt. @default 10485760 */
  outputLimitBytes: number;
}

type Kind = "int" | "number" | "seconds" | "seconds-or-none" | "fraction" | "bytes";

interface KeySpec {
  field: keyof Config;
  kind: Kind;
  min: number;
  max: number;
  describe: string;
}

/** The config keys as the command line names them. */
export const CONFIG_KEYS = {
  "max-retries": {
    field: "maxRetries",
    kind: "int",
    min: 0,
    max: 1000,
    describe: "retries after the first attempt",
  },
  "backoff-base": {
    field: "backoffBase",
    kind: "number",
    min: 1,
    max: 1000,
    describe: "retry n waits base^n seconds",
  },
  "backoff-max": {
    field: "backoffMaxS",
    kind: "seconds",
    min: 0,
    max: 31_536_000,
    describe: "cap on one retry delay (s)",
  },
  "backoff-jitter": {
    field: "backoffJitter",
    kind: "fraction",
    min: 0,
    max: 1,
    describe: "random fraction of each delay (0..1)",
  },
  "job-timeout": {
    field: "jobTimeoutS",
    kind: "seconds-or-none",
    min: 0.001,
    max: 31_536_000,
    describe: "default per-attempt limit (s) or none",
  },
  "poll-interval": {
    field: "pollIntervalS",
    kind: "seconds",
    min: 0.01,
    max: 3600,
    describe: "longest idle sleep of a worker (s)",
  },
  "lease": {
    field: "leaseS",
    kind: "seconds",
    min: 1,
    max: 3600,
    describe: "claim lifetime without a heartbeat (s)",
  },
  "shutdown-grace": {
    field: "shutdownGraceS",
    kind: "seconds",
    min: 0,
    max: 86_400,
    describe: "time running jobs get on stop (s)",
  },
  "kill-grace": {
    field: "killGraceS",
    kind: "seconds",
    min: 0,
    max: 3600,
    describe: "SIGTERM to SIGKILL delay (s)",
  },
  "output-limit": {
    field: "outputLimitBytes",
    kind: "bytes",
    min: 0,
    max: 2 ** 40,
    describe: "bytes of output kept per attempt",
  },
} as const satisfies Record<string, KeySpec>;

/** A config key as the command line names it. */
export type ConfigKey = keyof typeof CONFIG_KEYS;

/** The defaults every key falls back to. */
export const DEFAULT_CONFIG: Readonly<Config> = Object.freeze({
  maxRetries: 3,
  backoffBase: 2,
  backoffMaxS: 3600,
  backoffJitter: 0,
  jobTimeoutS: null,
  pollIntervalS: 1,
  leaseS: 30,
  shutdownGraceS: 30,
  killGraceS: 5,
  outputLimitBytes: 10 * 1024 * 1024,
});

const KEY_LIST = Object.keys(CONFIG_KEYS).join(", ");

/** Whether `key` is a config key. */
export function isConfigKey(key: string): key is ConfigKey {
  return Object.hasOwn(CONFIG_KEYS, key);
}

function requireKey(key: string): ConfigKey {
  if (!isConfigKey(key)) {
    throw new ConfigError(`cannot set ${JSON.stringify(key)}: unknown key (valid: ${KEY_LIST})`);
  }
  return key;
}

const EXPECTED: Record<Kind, string> = {
  int: "an integer",
  number: "a number",
  seconds: "a number of seconds",
  "seconds-or-none": `a number of seconds or "none"`,
  fraction: "a fraction",
  bytes: "a size in bytes (suffix K, M or G allowed)",
};

/**
 * Parses a value given for `key` (a command-line string or a JSON value from config.json).
 *
 * @throws {ConfigError} e.g. `cannot set "max-retries": expected an integer from 0 to 1000, got "banana"`
 */
export function parseConfigValue(key: string, raw: unknown): number | null {
  const k = requireKey(key);
  const spec: KeySpec = CONFIG_KEYS[k];
  const fail = (): never => {
    throw new ConfigError(
      `cannot set ${JSON.stringify(k)}: expected ${
        EXPECTED[spec.kind]
      } from ${spec.min} to ${spec.max}, got ${JSON.stringify(raw)}`,
    );
  };
  if (spec.kind === "seconds-or-none" && (raw === null || raw === "none")) return null;
  let value: number;
  if (typeof raw === "number") {
    value = raw;
  } else if (typeof raw === "string") {
    const text = raw.trim();
    const m = spec.kind === "bytes" ? /^(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?$/i.exec(text) : null;
    if (m) {
      const unit = (m[2] ?? "b")[0].toLowerCase();
      value = Number(m[1]) * ({ b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[unit] ?? NaN);
      value = Math.floor(value);
    } else if (/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(text)) {
      value = Number(text);
    } else {
      return fail();
    }
  } else {
    return fail();
  }
  if (!Number.isFinite(value) || value < spec.min || value > spec.max) fail();
  if ((spec.kind === "int" || spec.kind === "bytes") && !Number.isInteger(value)) fail();
  return value;
}

/** A value as `config get` prints it. */
export function formatConfigValue(key: ConfigKey, config: Config): string {
  const v = config[CONFIG_KEYS[key].field];
  return v === null ? "none" : String(v);
}

/** The config file's path inside a data directory. */
export function configPath(home: string): string {
  return join(home, "config.json");
}

/** Only the keys set in config.json, validated. */
export type ConfigOverrides = Partial<Record<ConfigKey, number | null>>;

/** Reads config.json (missing is empty). @throws {OperationalError} when it is not valid. */
export function readOverrides(home: string): ConfigOverrides {
  let text: string;
  try {
    text = Deno.readTextFileSync(configPath(home));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return {};
    throw new OperationalError(`cannot read config: ${(e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new OperationalError(`cannot read config: ${configPath(home)} is not valid JSON`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new OperationalError(`cannot read config: ${configPath(home)} is not a JSON object`);
  }
  const out: ConfigOverrides = {};
  for (const [key, raw] of Object.entries(parsed)) {
    try {
      out[requireKey(key)] = parseConfigValue(key, raw);
    } catch (e) {
      throw new OperationalError(
        `cannot read config: ${configPath(home)}: ${(e as Error).message}`,
      );
    }
  }
  return out;
}

/** Defaults with overrides applied. */
export function resolveConfig(overrides: ConfigOverrides): Config {
  const config: Config = { ...DEFAULT_CONFIG };
  for (const [key, value] of Object.entries(overrides)) {
    // deno-lint-ignore no-explicit-any
    (config as any)[CONFIG_KEYS[key as ConfigKey].field] = value;
  }
  return config;
}

/** The resolved configuration of a data directory. */
export function loadConfig(home: string): Config {
  return resolveConfig(readOverrides(home));
}

/**
 * Validates and stores one key. The file is replaced atomically (write a private temp
 * file, fsync, rename) so a reader never sees half a file and a crash keeps the old one.
 */
export function setConfigValue(home: string, key: string, raw: string): number | null {
  const value = parseConfigValue(key, raw);
  const overrides = readOverrides(home);
  overrides[key as ConfigKey] = value;
  const path = configPath(home);
  const tmp = `${path}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    const file = Deno.openSync(tmp, { write: true, createNew: true, mode: 0o600 });
    try {
      const bytes = new TextEncoder().encode(JSON.stringify(overrides, null, 2) + "\n");
      for (let n = 0; n < bytes.length;) n += file.writeSync(bytes.subarray(n));
      file.syncSync();
    } finally {
      file.close();
    }
    Deno.renameSync(tmp, path);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch { /* already gone */ }
    throw new OperationalError(`cannot set ${JSON.stringify(key)}: ${(e as Error).message}`);
  }
  return value;
}
