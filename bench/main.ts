/**
 * queuectl's benchmark suite (issue 4). Runs the scenarios, prints a table of figures, each
 * with its baseline measured in the same invocation and the issue's target, and writes
 * `bench/results/latest.json`, `latest.md` and SVG plots.
 *
 * ```sh
 * deno run -A bench/main.ts             # full: medians of 3 runs, the issue's sizes
 * deno run -A bench/main.ts --quick     # CI: each scenario once at a small size, ~20 s
 * deno run -A bench/main.ts --only e2e,latency --runs 5
 * deno run -A bench/main.ts --install-peers   # install the plainjob peer (npm), as CI does
 * deno run -A bench/main.ts --quick --out /tmp/r   # results there instead of bench/results/
 * ```
 *
 * Quick mode writes `results/quick.*` instead of `latest.*` (git-ignored) and never judges
 * timings: it fails only if a scenario fails to run (a job lost, a command erroring) or the
 * run takes more than {@linkcode QUICK_LIMIT_MS} (five minutes). `--out DIR` writes the
 * results and plots to DIR instead of `bench/results/` (the smoke test's temp dir). A peer that is not installed (tsp and nq from apt,
 * plainjob from npm) is skipped, never failed, and listed as skipped in the output and the
 * results. `--only` replaces those scenarios' figures in `latest.*` and keeps the others
 * (each scenario's date and load average are recorded), so one scenario can be re-measured
 * after a change.
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import { bulk } from "./bulk.ts";
import { e2e } from "./e2e.ts";
import { availablePeers } from "./e2e_peers.ts";
import { history } from "./history.ts";
import { latency } from "./latency.ts";
import {
  BENCH,
  type Context,
  type Figure,
  fmt,
  killLive,
  loadAverage,
  QUICK_LIMIT_MS,
  ROOT,
  spread,
} from "./lib.ts";
import { memory } from "./memory.ts";
import { ensurePlainjob, overhead } from "./overhead.ts";
import { writePlots } from "./plots.ts";
import { startup } from "./startup.ts";

const SCENARIOS: [string, (ctx: Context) => Promise<Figure[]>][] = [
  ["e2e", e2e],
  ["overhead", overhead],
  ["bulk", bulk],
  ["startup", startup],
  ["latency", latency],
  ["history", history],
  ["memory", memory],
];

interface Args {
  quick: boolean;
  only: string[] | null;
  runs: number | null;
  keep: boolean;
  installPeers: boolean;
  out: string | null;
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    quick: false,
    only: null,
    runs: null,
    keep: false,
    installPeers: false,
    out: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = () => inline ?? argv[++i];
    if (flag === "--quick") args.quick = true;
    else if (flag === "--keep") args.keep = true;
    else if (flag === "--install-peers") args.installPeers = true;
    else if (flag === "--only") args.only = value().split(",");
    else if (flag === "--runs") args.runs = Number(value());
    else if (flag === "--out") args.out = value();
    else {
      console.error(
        `bench: unknown option ${flag} (valid: --quick, --only A,B, --runs N, --keep, --install-peers, --out DIR)`,
      );
      Deno.exit(2);
    }
  }
  const names = SCENARIOS.map(([n]) => n);
  for (const name of args.only ?? []) {
    if (!names.includes(name)) {
      console.error(`bench: unknown scenario ${name} (valid: ${names.join(", ")})`);
      Deno.exit(2);
    }
  }
  return args;
}

const args = parseArgs(Deno.args);
const started = performance.now();
const ctx: Context = {
  quick: args.quick,
  runs: args.runs ?? (args.quick ? 1 : 3),
  tmp: await Deno.makeTempDir({ prefix: "queuectl-bench-" }),
  log: (message) => {
    const t = ((performance.now() - started) / 1000).toFixed(1).padStart(6);
    console.error(`[${t}s] ${message}`);
  },
  shared: new Map(),
  peer: (name, skipped) => {
    if (skipped !== null && peers.get(name) !== `skipped: ${skipped}`) {
      ctx.log(`${name} peer SKIPPED: ${skipped}`);
    }
    peers.set(name, skipped === null ? "ran" : `skipped: ${skipped}`);
  },
};
/** Each peer's status: "ran" or "skipped: why". */
const peers = new Map<string, string>();

if (args.installPeers) {
  await Deno.remove(ctx.tmp, { recursive: true });
  await ensurePlainjob(ctx, true);
  availablePeers(ctx);
  for (const [name, status] of peers) {
    console.log(`${name}: ${status === "ran" ? "ready" : status}`);
  }
  Deno.exit([...peers.values()].every((s) => s === "ran") ? 0 : 1);
}

/** Takes down what the harness started (workers, xargs, tsp and nq clients) and its scratch. */
function abort(code: number): never {
  killLive();
  try {
    Deno.removeSync(ctx.tmp, { recursive: true });
  } catch { /* gone */ }
  Deno.exit(code);
}
if (args.quick) {
  // A smoke run that hangs must not hang CI: give up, and say so, after five minutes.
  Deno.unrefTimer(setTimeout(() => {
    console.error(`bench: the quick run took more than ${QUICK_LIMIT_MS / 1000} s; stopping`);
    abort(1);
  }, QUICK_LIMIT_MS));
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => abort(130));
}

let figures: Figure[] = [];
interface Timing {
  scenario: string;
  date: string;
  commit: string;
  runs: number;
  seconds: number;
  loadBefore: number;
  loadAfter: number;
}
let timings: Timing[] = [];
const failures: string[] = [];
try {
  for (const [name, scenario] of SCENARIOS) {
    if (args.only && !args.only.includes(name)) continue;
    const loadBefore = loadAverage();
    const t0 = performance.now();
    ctx.log(`${name}: start (load average ${loadBefore})`);
    try {
      figures.push(...await scenario(ctx));
    } catch (e) {
      failures.push(`${name}: ${(e as Error).stack ?? e}`);
      ctx.log(`${name}: FAILED: ${(e as Error).message}`);
    }
    const seconds = (performance.now() - t0) / 1000;
    timings.push({
      scenario: name,
      date: new Date().toISOString(),
      commit: (await git()).label,
      runs: ctx.runs,
      seconds,
      loadBefore,
      loadAfter: loadAverage(),
    });
    ctx.log(`${name}: ${seconds.toFixed(1)} s`);
  }
} finally {
  if (!args.keep) await Deno.remove(ctx.tmp, { recursive: true }).catch(() => {});
  else ctx.log(`kept ${ctx.tmp}`);
}

const totalSeconds = (performance.now() - started) / 1000;
const prefix = args.quick ? "quick" : "latest";
const dir = args.out ?? `${BENCH}results`;
Deno.mkdirSync(dir, { recursive: true });
if (args.only && !args.quick) {
  // A partial run replaces its scenarios' figures in the full results and keeps the rest.
  try {
    const previous = JSON.parse(Deno.readTextFileSync(`${dir}/latest.json`)) as {
      figures: Figure[];
      timings: Timing[];
      peers?: Record<string, string>;
    };
    for (const [name, status] of Object.entries(previous.peers ?? {})) {
      if (!peers.has(name)) peers.set(name, status);
    }
    const failed = new Set(failures.map((f) => f.split(":")[0]));
    const ran = new Set(timings.map((t) => t.scenario).filter((n) => !failed.has(n)));
    figures = [
      ...previous.figures.filter((f) => !ran.has(f.id.split(".")[0])),
      ...figures,
    ];
    timings = [
      ...previous.timings.filter((t) => !ran.has(t.scenario)),
      ...timings.filter((t) => ran.has(t.scenario)),
    ];
    const order = SCENARIOS.map(([n]) => n);
    const rank = (name: string) => order.indexOf(name);
    figures.sort((a, b) => rank(a.id.split(".")[0]) - rank(b.id.split(".")[0]));
    timings.sort((a, b) => rank(a.scenario) - rank(b.scenario));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}
const report = {
  date: new Date().toISOString(),
  mode: args.quick ? "quick" : "full",
  runs: ctx.runs,
  totalSeconds,
  git: await git(),
  machine: await machine(),
  timings,
  /** Each peer: "ran", or "skipped: why" (a skipped peer has no figures, and no verdict). */
  peers: Object.fromEntries(peers),
  figures,
  failures,
};
const table = markdownTable(figures);
console.log(table);
console.log(peerLine(report.peers));
Deno.writeTextFileSync(`${dir}/${prefix}.json`, JSON.stringify(report, null, 2) + "\n");
Deno.writeTextFileSync(`${dir}/${prefix}.md`, resultsMarkdown(report, table));
writePlots(dir, args.quick ? "quick-" : "", ctx.shared);
ctx.log(`done in ${totalSeconds.toFixed(1)} s; results in ${dir}`);
if (failures.length) {
  console.error(`\n${failures.length} scenario(s) failed:\n${failures.join("\n\n")}`);
  Deno.exit(1);
}

/** One line naming every peer as ran or SKIPPED, with the reason. */
function peerLine(peers: Record<string, string>): string {
  const entries = Object.entries(peers);
  if (entries.length === 0) return "Peers: none in the scenarios run.";
  return `Peers: ${
    entries.map(([name, status]) =>
      status === "ran" ? `${name} ran` : `${name} SKIPPED (${status.replace(/^skipped: /, "")})`
    ).join("; ")
  }.`;
}

function markdownTable(figures: Figure[]): string {
  const rows = [
    "| # | figure | value | baseline | ratio | target | met | spread |",
    "|---|---|---:|---|---:|---|---|---:|",
  ];
  for (const f of figures) {
    const met = f.target?.met === true ? "met" : f.target?.met === false ? "**missed**" : "";
    rows.push(
      `| ${f.scenario.split(" ")[0]} | ${f.label} | ${fmt(f.value)} ${f.unit} | ${
        f.baseline ? `${fmt(f.baseline.value)} ${f.unit} (${f.baseline.label})` : ""
      } | ${f.ratio === undefined ? "" : `${f.ratio.toFixed(2)}×`} | ${f.target?.text ?? ""} | ${
        args.quick ? "" : met
      } | ${f.runs.length > 1 ? `${(spread(f.runs) * 100).toFixed(0)} %` : ""} |`,
    );
  }
  return rows.join("\n") + "\n";
}

function resultsMarkdown(r: typeof report, table: string): string {
  const m = r.machine;
  return `# queuectl benchmark results (${r.mode})

${r.date}, ${r.git.commit}${r.git.dirty ? " + uncommitted changes" : ""}; ${m.cpu}, ${m.nproc} CPUs,
${m.ramGb} GB RAM, Linux ${m.kernel}, Deno ${m.deno}, SQLite ${m.sqlite}. Median of ${r.runs} run(s);
spread is (max − min) / median over runs. Total ${r.totalSeconds.toFixed(0)} s.
${
    args.quick
      ? "\nQuick mode: small sizes, one run; the figures are not comparable with the full run.\n"
      : ""
  }
${table}
${peerLine(r.peers)}

${r.figures.filter((f) => f.note).map((f) => `- \`${f.id}\`: ${f.note}`).join("\n")}

Load average (1 min) before → after each scenario, on a machine shared with other test runs:
${
    r.timings.map((t) =>
      `${t.scenario} ${t.loadBefore} → ${t.loadAfter} (${t.seconds.toFixed(0)} s)`
    ).join("; ")
  }.
`;
}

/** The commit measured, and whether src/ or cli.ts had uncommitted changes. */
async function git(): Promise<{ commit: string; dirty: boolean; label: string }> {
  const out = async (args: string[]) =>
    new TextDecoder().decode(
      (await new Deno.Command("git", { args, cwd: ROOT, stderr: "null" }).output()).stdout,
    ).trim();
  const commit = await out(["rev-parse", "--short", "HEAD"]);
  const dirty = (await out(["status", "--porcelain", "--", "src", "cli.ts"])) !== "";
  return { commit, dirty, label: dirty ? `${commit}+dirty` : commit };
}

async function machine() {
  const cpuinfo = Deno.readTextFileSync("/proc/cpuinfo");
  const mem = Deno.readTextFileSync("/proc/meminfo").match(/MemTotal:\s+(\d+)/);
  const db = new DatabaseSync(":memory:");
  const sqlite = (db.prepare("SELECT sqlite_version() AS v").get() as { v: string }).v;
  db.close();
  const version = async (cmd: string, args: string[]) => {
    try {
      const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
      const text = new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr);
      return text.trim().split("\n")[0];
    } catch {
      return null;
    }
  };
  return {
    nproc: navigator.hardwareConcurrency,
    cpu: cpuinfo.match(/model name\s*:\s*(.*)/)?.[1] ?? "unknown",
    ramGb: mem ? Math.round(Number(mem[1]) / 1024 / 1024) : null,
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    sqlite,
    node: await version("node", ["--version"]),
    tsp: await version("tsp", ["-V"]),
    hyperfine: await version("hyperfine", ["--version"]),
    xargs: await version("xargs", ["--version"]),
  };
}
