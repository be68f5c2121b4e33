/**
 * A strict command-line parser with the behaviour of `node:util` parseArgs as queuectl uses
 * it (long and short options, `--name=value`, `--` ends options, unknown options refused).
 * Why not parseArgs itself: importing `node:util` costs about 12 ms of start-up on every
 * one-shot command (docs/performance.md), and this is all of it queuectl needs.
 *
 * @module
 */

/** How one option is written. */
export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
}

/** Parsed option values, typed from the spec. */
export type Values<O extends Record<string, OptionSpec>> = {
  [K in keyof O]?: O[K]["type"] extends "string" ? string : boolean;
};

/** Parses `args`. @throws {Error} with parseArgs-like messages; callers add context. */
export function parseArgv<O extends Record<string, OptionSpec>>(
  args: string[],
  { options, allowPositionals }: { options: O; allowPositionals: boolean },
): { values: Values<O>; positionals: string[] } {
  const values: Record<string, string | boolean> = {};
  const positionals: string[] = [];
  const byShort = new Map<string, string>();
  for (const [name, spec] of Object.entries(options)) if (spec.short) byShort.set(spec.short, name);
  const take = (name: string, inline: string | undefined, i: number): number => {
    const spec = options[name];
    if (spec.type === "boolean") {
      if (inline !== undefined) throw new Error(`Option '--${name}' does not take an argument`);
      values[name] = true;
      return i;
    }
    if (inline !== undefined) {
      values[name] = inline;
      return i;
    }
    const next = args[i + 1];
    if (next === undefined || (next.startsWith("-") && next !== "-" && !/^-\d/.test(next))) {
      throw new Error(`Option '--${name} <value>' argument missing`);
    }
    values[name] = next;
    return i + 1;
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      if (!Object.hasOwn(options, name)) throw new Error(`Unknown option '--${name}'`);
      i = take(name, eq === -1 ? undefined : arg.slice(eq + 1), i);
    } else if (arg.startsWith("-") && arg.length > 1 && !/^-\d/.test(arg)) {
      const name = byShort.get(arg[1]);
      if (name === undefined) throw new Error(`Unknown option '-${arg[1]}'`);
      if (arg.length > 2) {
        if (options[name].type === "boolean") throw new Error(`Unknown option '${arg}'`);
        i = take(name, arg.slice(2), i);
      } else {
        i = take(name, undefined, i);
      }
    } else {
      if (!allowPositionals) throw new Error(`Unexpected argument '${arg}'`);
      positionals.push(arg);
    }
  }
  return { values: values as Values<O>, positionals };
}
