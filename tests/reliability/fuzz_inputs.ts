/**
 * Input generation for the CLI fuzzer (fuzz_test.ts): a seeded PRNG, pools of odd strings,
 * numbers and ids, generators for enqueue (JSON argument, JSON Lines on stdin or in a file,
 * the `--` form), config and read commands, text, token and byte-level mutations (invalid
 * UTF-8), fields megabytes long, and a sanitizer that keeps every input inside its sandbox.
 *
 * @module
 */

import { CONFIG_KEYS } from "../../src/config.ts";
import { MAX_COMMAND_LENGTH } from "../../src/job.ts";

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export class Rng {
  #a: number;
  constructor(seed: number) {
    this.#a = seed >>> 0;
  }
  next(): number {
    this.#a = (this.#a + 0x6d2b79f5) >>> 0;
    let t = this.#a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
}

const ODD_PIECES = [
  ...[" ", "  ", "\t", "\n", "\r\n", '"', "'", "`", "\\", "\\n", "$(id)", "${HOME}", ";", "|"],
  ...["&&", "%s%n", "../..", "/", "-", "--", "-1", "=", ",", "é", "中文", "🚀", "💩💩💩"],
  // bidi override, zero-width space, BOM, controls, NUL, lone surrogates, a non-character
  ...["\u202e", "\u200b", "\ufeff", "\u0001", "\u007f", "\u0000", "\ud800", "\udc00", "\uffff"],
  ...["null", "true", "{}", "[]", "0"],
];
const ID_CHARS = "abcXYZ019._:@-";

function oddString(r: Rng, maxPieces = 6): string {
  let s = "";
  const n = r.int(maxPieces + 1);
  for (let i = 0; i < n; i++) {
    s += r.chance(0.5) ? r.pick(ODD_PIECES) : r.pick(["a", "job", "x1", "Q", "7", "sleep 1"]);
  }
  return s;
}

function oddId(r: Rng): string {
  switch (r.int(6)) {
    case 0: { // valid-looking
      let s = r.pick(["a", "Z", "0"]);
      const n = r.int(20);
      for (let i = 0; i < n; i++) s += ID_CHARS[r.int(ID_CHARS.length)];
      return s;
    }
    case 1:
      return "a".repeat(r.pick([127, 128, 129, 1000]));
    case 2:
      return r.pick(["-x", ".a", "_a", "a b", "a/b", "a\nb", "ä", "a\u0000", "", " a", "a "]);
    case 3:
      return `fz-${r.int(1000)}`;
    default:
      return oddString(r);
  }
}

const NUMBERS = [
  ...[0, -0, 1, -1, 3, 1.5, 999, 1000, 1001, -1_000_000, 1_000_001, 2 ** 31, 2 ** 53],
  ...[2 ** 53 + 2, 1e-7, 3.2e7, 3.2e9, 3.3e9, 1e308, -1e308],
];

function randomJson(r: Rng, depth = 0): unknown {
  switch (r.int(depth > 2 ? 4 : 6)) {
    case 0:
      return r.pick(NUMBERS);
    case 1:
      return oddString(r);
    case 2:
      return r.pick([null, true, false]);
    case 3:
      return r.next() * 10 ** r.int(12) * (r.chance(0.3) ? -1 : 1);
    case 4:
      return Array.from({ length: r.int(3) }, () => randomJson(r, depth + 1));
    default:
      return Object.fromEntries(
        Array.from({ length: r.int(3) }, () => [oddString(r, 2), randomJson(r, depth + 1)]),
      );
  }
}

const FIELDS = "id command max_retries priority run_at delay_s timeout_s queue cwd".split(" ");

/** A job object: mostly plausible, some fields wrong in type or range. */
function jobObject(r: Rng): Record<string, unknown> {
  const job: Record<string, unknown> = {};
  if (r.chance(0.9)) {
    job.command = r.chance(0.8) ? r.pick(["true", "echo hi", "sleep 1"]) : oddString(r);
  }
  for (const field of FIELDS) {
    if (field === "command" || !r.chance(0.25)) continue;
    if (r.chance(0.35)) {
      job[field] = randomJson(r);
      continue;
    }
    switch (field) {
      case "id":
        job.id = oddId(r);
        break;
      case "max_retries":
        job.max_retries = r.pick([0, 1, 3, 1000, 1001, -1, 2.5]);
        break;
      case "priority":
        job.priority = r.pick([0, 5, -5, 1_000_000, 1_000_001, 1.5]);
        break;
      case "run_at":
        job.run_at = r.pick([
          "2026-01-31T12:00:00Z",
          "2026-01-31T12:00:00+02:00",
          "2026-01-31T12:00:00",
          "2026-02-30T12:00:00Z",
          "2026-01-31T25:00:00Z",
          "yesterday",
          "9999-12-31T23:59:59.999999999Z",
          "0000-01-01T00:00Z",
        ]);
        break;
      case "delay_s":
        job.delay_s = r.pick([0, 1, 0.5, -1, 3.2e9, 3.3e9, 1e308]);
        break;
      case "timeout_s":
        job.timeout_s = r.pick([null, 1, 0.001, 0, -1, 3.2e7, 3.3e7]);
        break;
      case "queue":
        job.queue = r.pick(["default", "mail", "a".repeat(64), "a".repeat(65), "-q", "q q", ""]);
        break;
      case "cwd":
        job.cwd = r.pick([null, "/tmp", "", "/nonexistent/dir", "rel/dir", "/tmp\u0000x"]);
        break;
    }
  }
  if (r.chance(0.05)) job[r.pick(["name", "ID", "commands", "state", "__proto__"])] = 1;
  return job;
}

/** Text-level mutations of a JSON or JSON Lines document. */
function mutateText(r: Rng, text: string): string {
  const rounds = 1 + r.int(3);
  for (let i = 0; i < rounds && text.length; i++) {
    const at = r.int(text.length + 1);
    switch (r.int(9)) {
      case 0: // delete a range
        text = text.slice(0, at) + text.slice(at + 1 + r.int(8));
        break;
      case 1: // insert a structural or odd piece
        text = text.slice(0, at) +
          r.pick(['"', "{", "}", "[", "]", ",", ":", "\\", "\\u", "\\ud800", "\n", ...ODD_PIECES]) +
          text.slice(at);
        break;
      case 2: // duplicate a range
        text = text.slice(0, at) + text.slice(at, at + r.int(30)) + text.slice(at);
        break;
      case 3: // truncate
        text = text.slice(0, at);
        break;
      case 4: // duplicate key
        text = text.replace(/^\{/, `{"id":${JSON.stringify(oddId(r))},`);
        break;
      case 5: // CRLF line ends
        text = text.replaceAll("\n", "\r\n");
        break;
      case 6: // a leading BOM or whitespace
        text = r.pick(["\ufeff", " ", "\t", "\n\n"]) + text;
        break;
      case 7: // swap a number for an odd literal
        text = text.replace(
          /-?\d+(\.\d+)?/,
          r.pick(["NaN", "Infinity", "-0", "1e999", "0x10", "01", "1.", ".5", "1e-999"]),
        );
        break;
      default: // change one character
        text = text.slice(0, at) + String.fromCharCode(r.int(0x80)) + text.slice(at + 1);
    }
  }
  return text;
}

/** Bytes with invalid UTF-8 put in: lone continuation, overlong, surrogates, truncation. */
function corruptUtf8(r: Rng, bytes: Uint8Array): Uint8Array {
  const bad = r.pick([
    [0xff],
    [0xfe],
    [0x80],
    [0xc0, 0x80],
    [0xc3],
    [0xe2, 0x82],
    [0xed, 0xa0, 0x80],
    [0xf4, 0x90, 0x80, 0x80],
    [0xf0, 0x9f, 0x98],
  ]);
  const at = r.int(bytes.length + 1);
  const out = new Uint8Array(bytes.length + bad.length);
  out.set(bytes.subarray(0, at));
  out.set(bad, at);
  out.set(bytes.subarray(at), at + bad.length);
  return out;
}

/** One generated input. `@FILE@` in args stands for the path `file` is written to. */
export interface Case {
  kind: string;
  args: string[];
  stdin?: Uint8Array;
  file?: Uint8Array;
}

const enc = new TextEncoder();
const CONFIG_KEY_NAMES = Object.keys(CONFIG_KEYS);

function jsonLines(r: Rng): string {
  const n = r.chance(0.1) ? r.int(200) : 1 + r.int(5);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    lines.push(r.chance(0.1) ? "" : JSON.stringify(jobObject(r)));
  }
  return lines.join("\n") + (r.chance(0.8) ? "\n" : "");
}

function enqueueCase(r: Rng): Case {
  const form = r.int(10);
  if (form < 3) { // one JSON job (or an array) as the argument
    const value = r.chance(0.15)
      ? Array.from({ length: r.int(4) }, () => jobObject(r))
      : r.chance(0.05)
      ? randomJson(r)
      : jobObject(r);
    let text = JSON.stringify(value) ?? "null";
    if (r.chance(0.4)) text = mutateText(r, text);
    return { kind: "enqueue-arg", args: ["enqueue", text, ...(r.chance(0.1) ? ["--json"] : [])] };
  }
  let text = jsonLines(r);
  if (r.chance(0.4)) text = mutateText(r, text);
  let bytes: Uint8Array = enc.encode(text);
  if (r.chance(0.15)) bytes = corruptUtf8(r, bytes);
  if (form < 6) {
    return {
      kind: "enqueue-stdin",
      args: ["enqueue", r.pick(["-", "-", "--file=-"])],
      stdin: bytes,
    };
  }
  if (form < 8) return { kind: "enqueue-file", args: ["enqueue", "--file", "@FILE@"], file: bytes };
  // the `--` form with flags
  const args = ["enqueue"];
  const flags = ["id", "priority", "max-retries", "delay", "run-at", "timeout", "queue", "cwd"];
  for (let i = r.int(4); i > 0; i--) {
    const flag = r.chance(0.9) ? r.pick(flags) : r.pick(["bogus", "json", "file", "Priority"]);
    const value = r.pick([
      oddId(r),
      oddString(r, 2),
      String(r.pick(NUMBERS)),
      r.pick([
        "1e3",
        "0x10",
        " 5 ",
        "",
        "Infinity",
        "-Infinity",
        "NaN",
        "5s",
        "2026-01-31T12:00:00Z",
      ]),
    ]);
    if (r.chance(0.5)) args.push(`--${flag}=${value}`);
    else args.push(`--${flag}`, value);
  }
  if (r.chance(0.9)) args.push("--");
  for (let i = r.int(4); i > 0; i--) {
    args.push(r.chance(0.6) ? r.pick(["echo", "hi", "true"]) : oddString(r, 3));
  }
  return { kind: "enqueue-dash", args };
}

function configCase(r: Rng): Case {
  const key = r.chance(0.8) ? r.pick(CONFIG_KEY_NAMES) : r.pick([
    "retries",
    "Max-Retries",
    "max_retries",
    "",
    " lease",
    "__proto__",
    "constructor",
    oddString(r, 2),
  ]);
  const value = r.pick([
    String(r.pick(NUMBERS)),
    r.pick(["none", "None", "", " ", "3 ", " 3", "0x3", "3e2", "1e309", "-1", "NaN", "１"]),
    r.pick(["10M", "512K", "1G", "2g", "1.5M", "10MB", "10MiB", "1T", "9999999999999G"]),
    r.pick(["0.5", "1.0", "1.5", ".5", "5.", "+3", "0.01", "0.009", "3600", "3601"]),
    oddString(r, 3),
  ]);
  switch (r.int(5)) {
    case 0:
      return {
        kind: "config-get",
        args: ["config", "get", key, ...(r.chance(0.3) ? ["--json"] : [])],
      };
    case 1:
      return {
        kind: "config-list",
        args: ["config", "list", ...(r.chance(0.5) ? ["--json"] : [oddString(r, 1)])],
      };
    default: {
      const args = ["config", "set", key, value];
      if (r.chance(0.1)) args.push(oddString(r, 1));
      if (r.chance(0.05)) args.splice(2, 1);
      return { kind: "config-set", args };
    }
  }
}

function readCase(r: Rng): Case {
  const id = r.chance(0.3) ? r.pick(["keep-1", "keep-2", "dead-1", "dead-2"]) : oddId(r);
  const num = () => r.pick(["0", "1", "-1", "50", "1e3", "abc", "", " 2", "99999999999999999999"]);
  const states = () =>
    r.pick(["pending", "dead", "completed,dead", "running", "", ",", "PENDING", oddString(r, 1)]);
  switch (r.int(9)) {
    case 0:
      return {
        kind: "list",
        args: ["list", "--state", states(), "--limit", num(), ...(r.chance(0.5) ? ["--json"] : [])],
      };
    case 1:
      return { kind: "list", args: ["list", "--queue", oddString(r, 2), "--offset", num()] };
    case 2:
      return { kind: "show", args: ["show", id, ...(r.chance(0.5) ? ["--json"] : [])] };
    case 3:
      return { kind: "logs", args: ["logs", id, ...(r.chance(0.5) ? ["--attempt", num()] : [])] };
    case 4:
      return {
        kind: "dlq",
        args: ["dlq", r.pick(["list", "retry"]), ...(r.chance(0.5) ? [id] : ["--all"])],
      };
    case 5:
      return {
        kind: "prune",
        args: [
          "prune",
          "--older-than",
          r.pick(["7d", "90s", "0s", "1y", "-1d", "d", "1.5h", oddString(r, 1)]),
          "--state",
          states(),
          "--batch",
          num(),
        ],
      };
    case 6:
      return {
        kind: "status",
        args: ["status", ...(r.chance(0.5) ? ["--json"] : [oddString(r, 1)])],
      };
    case 7:
      return {
        kind: "worker",
        args: ["worker", r.pick(["list", "stop"]), ...(r.chance(0.5) ? [id] : ["--json"])],
      };
    default:
      return {
        kind: "command",
        args: [oddString(r, 2), ...(r.chance(0.5) ? [oddString(r, 2)] : [])],
      };
  }
}

const DICTIONARY = [
  ..."enqueue config list show logs dlq status prune worker --json --help -h --debug".split(" "),
  ..."-- - --file --id --priority --state --limit --all --attempt -a -c = --= --- -xyz {".split(
    " ",
  ),
  '{"command":"true"}',
];

/** Token-level mutations of a generated argument list. */
function mutateArgs(r: Rng, c: Case): Case {
  const args = [...c.args];
  for (let i = 1 + r.int(3); i > 0; i--) {
    const at = r.int(args.length + 1);
    switch (r.int(5)) {
      case 0:
        args.splice(at, 1);
        break;
      case 1:
        args.splice(at, 0, r.pick(DICTIONARY));
        break;
      case 2:
        args.splice(at, 0, args[at] ?? "x");
        break;
      case 3:
        if (args.length > 1) {
          const b = r.int(args.length);
          [args[at % args.length], args[b]] = [args[b], args[at % args.length]];
        }
        break;
      default:
        args[at % Math.max(1, args.length)] = oddString(r, 3);
    }
  }
  return { ...c, kind: `${c.kind}~mut`, args };
}

/** Fields megabytes long, and a large batch that fails on its last line. */
function hugeCase(r: Rng): Case {
  switch (r.int(5)) {
    case 0: {
      const length = r.pick([MAX_COMMAND_LENGTH - 1, MAX_COMMAND_LENGTH, MAX_COMMAND_LENGTH + 1]);
      const text = JSON.stringify({ command: "x".repeat(length) });
      return { kind: "huge-command-arg", args: ["enqueue", text] };
    }
    case 1: {
      const text = JSON.stringify({ command: "é".repeat(3 << 20) }) + "\n";
      return { kind: "huge-command-stdin", args: ["enqueue", "-"], stdin: enc.encode(text) };
    }
    case 2: {
      const text = JSON.stringify({ id: "i".repeat(2 << 20), command: "true" });
      return {
        kind: "huge-id-file",
        args: ["enqueue", "--file", "@FILE@"],
        file: enc.encode(text),
      };
    }
    case 3: {
      const lines = Array.from({ length: 20_000 }, (_, i) => `{"command":"echo ${i}"}`);
      lines.push(r.pick(['{"command":""}', "{bad", '{"command":"x","id":"keep-1"}']));
      return {
        kind: "huge-batch-bad-last",
        args: ["enqueue", "-"],
        stdin: enc.encode(lines.join("\n")),
      };
    }
    default:
      return { kind: "huge-config-value", args: ["config", "set", "lease", "9".repeat(1 << 20)] };
  }
}

/** Arguments that would leave the sandbox or never return are replaced. */
function sanitize(c: Case): Case {
  // `--debug` asks for the stack trace this test forbids.
  const args = c.args.map((a) =>
    /^--(home|db)(=|$)/.test(a) ? "--bogus" : a === "--debug" ? "--json" : a
  );
  // `worker start` runs until stopped, `logs --follow` until the job ends, `--wait` until
  // workers are gone: none of them is about input handling.
  const i = args.indexOf("worker");
  if (i !== -1 && args.includes("start")) args[args.indexOf("start")] = "list";
  if (i !== -1) {
    for (let j = 0; j < args.length; j++) {
      if (/^(-w|--wait)(=|$)/.test(args[j])) args[j] = "--json";
    }
  }
  if (args.includes("logs")) {
    for (let j = 0; j < args.length; j++) {
      if (/^(-f|--follow)(=|$)/.test(args[j])) args[j] = "--help";
    }
  }
  // `--file` names only the case's own file, "-" or a missing one, never /dev/zero & co.
  for (let j = 0; j < args.length; j++) {
    const m = /^(--file=|-f)(.+)$/.exec(args[j]);
    if (m && m[2] !== "@FILE@" && m[2] !== "-") args[j] = `${m[1]}@MISSING@`;
    if ((args[j] === "--file" || args[j] === "-f") && j + 1 < args.length) {
      const v = args[j + 1];
      if (v !== "@FILE@" && v !== "-" && !v.startsWith("-")) args[j + 1] = "@MISSING@";
    }
  }
  return { ...c, args };
}

/** The `index`-th input: every 1000th a huge one, 15% mutated at the token level. */
export function generate(r: Rng, index: number): Case {
  if (index % 1000 === 999) return hugeCase(r);
  const base = [enqueueCase, enqueueCase, enqueueCase, configCase, readCase][r.int(5)](r);
  return sanitize(r.chance(0.15) ? mutateArgs(r, base) : base);
}
