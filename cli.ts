#!/usr/bin/env -S deno run --v8-flags=--max-semi-space-size=1 --allow-read --allow-write --allow-env --allow-sys=hostname,osRelease --allow-run
/**
 * The queuectl command line. This is the one place that maps errors to exit codes and
 * calls `Deno.exit`. Subcommands load lazily so a one-shot command pays only for itself.
 *
 * @module
 */

import { exitCodeFor } from "./src/errors.ts";
import type { Context } from "./src/commands/args.ts";
import { VERSION } from "./src/version.ts";

type Command = (args: string[], ctx: Context) => Promise<number | void>;

const COMMANDS: Record<string, () => Promise<Command>> = {
  enqueue: async () => (await import("./src/commands/enqueue.ts")).enqueueCommand,
  worker: async () => (await import("./src/commands/worker.ts")).workerCommand,
  status: async () => (await import("./src/commands/status.ts")).statusCommand,
  list: async () => (await import("./src/commands/list.ts")).listCommand,
  show: async () => (await import("./src/commands/show.ts")).showCommand,
  logs: async () => (await import("./src/commands/logs.ts")).logsCommand,
  dlq: async () => (await import("./src/commands/dlq.ts")).dlqCommand,
  config: async () => (await import("./src/commands/config.ts")).configCommand,
  prune: async () => (await import("./src/commands/prune.ts")).pruneCommand,
};

const USAGE = `queuectl ${VERSION}: a background job queue for shell commands

Usage: queuectl [--home DIR] [--db URL] [--debug] <command> [options]

Commands:
  enqueue JSON | --file F | - | [flags] -- CMD ARGS...   add jobs
  worker start [--count N] [--queue Q] [--detach]         run jobs
  worker stop [--wait] | worker list                      control workers
  status                                                  counts and workers
  list [--state S] [--queue Q] [--limit N]                list jobs
  show ID                                                 a job and its attempts
  logs ID [--attempt N] [--follow]                        a job's output
  dlq list | dlq retry ID... | dlq retry --all            the dead-letter queue
  config get KEY | config set KEY VALUE | config list     settings
  prune --older-than AGE [--state S]                      delete old finished jobs

Every read command takes --json. Run 'queuectl <command> --help' for its options.
Data directory: --home, else $QUEUECTL_HOME, else $XDG_DATA_HOME/queuectl.
`;

/** The standard streams {@linkcode main} uses; each defaults to the process's own. */
export interface CliIo {
  /** Receives what goes to stdout. @default writes to `Deno.stdout` */
  stdout?: (text: string) => void;
  /** Receives what goes to stderr. @default writes to `Deno.stderr` */
  stderr?: (text: string) => void;
  /** All of stdin (read only by commands that take `-`). @default reads `Deno.stdin` to its end */
  stdin?: () => Promise<Uint8Array>;
}

/**
 * Runs the CLI with `args`; returns the exit code. `io` replaces the standard streams, so
 * tests (e.g. the fuzzer) can run thousands of commands in one process.
 */
export async function main(args: string[], io: CliIo = {}): Promise<number> {
  const stderr = io.stderr ?? ((text: string) => writeAll(Deno.stderr, text));
  const stdout = io.stdout ?? ((text: string) => writeAll(Deno.stdout, text));
  let saidWhy = false;
  // Text can hold lone surrogates (e.g. V8's JSON.parse message quotes half of an emoji);
  // UTF-8 output turns them into U+FFFD, so say exactly that to every writer.
  const ctx: Context = {
    stdout: (text) => stdout(text.toWellFormed()),
    stderr: (text) => {
      saidWhy = true;
      stderr(text.toWellFormed());
    },
    stdin: io.stdin ?? readStdin,
  };
  const debug = args.includes("--debug");
  // Global options may stand before the command: `queuectl --home DIR status`.
  args = [...args];
  while (args.length && /^--(home|db|debug)(=|$)/.test(args[0])) {
    const [flag, inline] = args.shift()!.split(/=(.*)/s, 2);
    if (flag === "--debug") continue;
    const value = inline ?? args.shift();
    if (value === undefined) {
      ctx.stderr(`queuectl: cannot parse options: ${flag} needs a value\n`);
      return 2;
    }
    if (flag === "--home") ctx.home = value;
    else ctx.db = value;
  }
  const name = args[0];
  try {
    if (name === undefined || name === "help" || name === "--help" || name === "-h") {
      ctx.stdout(USAGE);
      if (name !== undefined) return 0;
      ctx.stderr("queuectl: cannot run: no command given (see the usage above)\n");
      return 2;
    }
    if (name === "--version" || name === "version") {
      ctx.stdout(`queuectl ${VERSION}\n`);
      return 0;
    }
    const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
    if (!load) {
      ctx.stderr(
        `queuectl: cannot run ${JSON.stringify(name)}: unknown command (valid: ${
          Object.keys(COMMANDS).join(", ")
        })\n`,
      );
      return 2;
    }
    const command = await load();
    const code = (await command(args.slice(1), ctx)) ?? 0;
    // Bad usage always says why in one line, also where a command only printed its usage
    // (`queuectl config` with no subcommand).
    if (code === 2 && !saidWhy) {
      ctx.stderr(`queuectl: cannot run ${name}: incomplete command (see the usage above)\n`);
    }
    return code;
  } catch (e) {
    if (debug) ctx.stderr(`${(e as Error)?.stack ?? e}\n`);
    ctx.stderr(`queuectl: ${oneLine(e)}\n`);
    return exitCodeFor(e);
  }
}

function oneLine(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  const line = message.split("\n")[0].trim();
  return /^cannot /.test(line) ? line : `cannot continue: ${line}`;
}

function writeAll(stream: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = new TextEncoder().encode(text);
  try {
    for (let n = 0; n < bytes.length;) n += stream.writeSync(bytes.subarray(n));
  } catch (e) {
    // A closed pipe (e.g. `queuectl list | head`) is not an error worth a trace.
    if (!(e instanceof Deno.errors.BrokenPipe)) throw e;
  }
}

async function readStdin(): Promise<Uint8Array> {
  return new Uint8Array(await new Response(Deno.stdin.readable).arrayBuffer());
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
