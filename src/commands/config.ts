/**
 * `queuectl config get|set|list`: the settings in `<home>/config.json`. They live in the
 * data directory, not in the store, so these commands never open the database (a bad or
 * unreachable `--db` does not stop anyone from reading or fixing the config).
 *
 * @module
 */

import { ConfigError, UsageError } from "../errors.ts";
import {
  CONFIG_KEYS,
  type ConfigKey,
  DEFAULT_CONFIG,
  formatConfigValue,
  isConfigKey,
  readOverrides,
  resolveConfig,
  setConfigValue,
} from "../config.ts";
import { ensureHome, resolveHome } from "../home.ts";
import { colorInputs, paint, shouldColor } from "../output/format.ts";
import { renderTable } from "../output/table.ts";
import { type Context, parse, printJson } from "./args.ts";

const KEYS = Object.keys(CONFIG_KEYS) as ConfigKey[];

const HELP = `Usage:
  queuectl config get KEY [--json]
  queuectl config set KEY VALUE
  queuectl config list [--json]

Keys: ${KEYS.join(", ")}.
Times are seconds, sizes bytes (set accepts K, M, G suffixes); job-timeout takes "none".
get prints the value (--json: the JSON value, null for none). set prints "KEY = VALUE".
list prints every key with its value, default, source (config.json or default) and meaning
(--json: {"key": value, ...}, null for none).
Running workers pick up changes without a restart.
`;

const OPTIONS = { json: { type: "boolean" } } as const;

const USAGES: Record<string, string> = {
  get: "config get KEY",
  set: "config set KEY VALUE",
  list: "config list",
};

/** Runs `config`. Synchronous inside (config.json is small); a throw rejects the promise. */
export function configCommand(args: string[], ctx: Context): Promise<number> {
  return new Promise((resolve) => resolve(run(args, ctx)));
}

function run(args: string[], ctx: Context): number {
  const [sub, ...rest] = args;
  const { values, positionals } = parse(`run config ${sub ?? ""}`.trim(), rest, OPTIONS);
  if (values.help || sub === undefined || sub === "--help" || sub === "-h") {
    ctx.stdout(HELP);
    return sub === undefined ? 2 : 0;
  }
  if (!Object.hasOwn(USAGES, sub)) {
    throw new UsageError(`cannot run config ${sub}: unknown subcommand (valid: get, set, list)`);
  }
  if (positionals.length !== USAGES[sub].split(" ").length - 2) {
    throw new UsageError(`cannot ${sub} config: expected ${USAGES[sub]}`);
  }
  const home = resolveHome(values.home ?? ctx.home);
  ensureHome(home);
  const overrides = readOverrides(home);
  const config = resolveConfig(overrides);
  if (sub === "get") {
    const key = requireKey("get", positionals[0]);
    if (values.json) printJson(ctx, config[CONFIG_KEYS[key].field]);
    else ctx.stdout(formatConfigValue(key, config) + "\n");
  } else if (sub === "set") {
    const key = requireKey("set", positionals[0]);
    setConfigValue(home, key, positionals[1]);
    ctx.stdout(`${key} = ${formatConfigValue(key, resolveConfig(readOverrides(home)))}\n`);
  } else if (values.json) {
    printJson(ctx, Object.fromEntries(KEYS.map((k) => [k, config[CONFIG_KEYS[k].field]])));
  } else {
    const color = shouldColor(colorInputs());
    const rows = KEYS.map((k) => {
      const value = formatConfigValue(k, config);
      const set = Object.hasOwn(overrides, k);
      return [
        k,
        paint(value, set ? "bold" : null, color),
        formatConfigValue(k, DEFAULT_CONFIG),
        set ? "config.json" : "default",
        CONFIG_KEYS[k].describe,
      ];
    });
    const headers = ["KEY", "VALUE", "DEFAULT", "SOURCE", "DESCRIPTION"];
    ctx.stdout(renderTable(headers, rows, { color }));
  }
  return 0;
}

function requireKey(verb: string, key: string): ConfigKey {
  if (!isConfigKey(key)) {
    throw new ConfigError(
      `cannot ${verb} ${JSON.stringify(key)}: unknown key (valid: ${KEYS.join(", ")})`,
    );
  }
  return key;
}
