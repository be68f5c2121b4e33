/**
 * Summarises a V8 `.cpuprofile` (from `deno run --cpu-prof --cpu-prof-dir=DIR …`): self
 * time by function and by file, the largest first.
 *
 *   deno run -A bench/diagnose/profile_top.ts DIR/CPU.*.cpuprofile [top=25]
 *
 * @module
 */

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const [path, topText] = Deno.args;
const top = Number(topText ?? 25);
const profile = JSON.parse(Deno.readTextFileSync(path)) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const selfUs = new Map<number, number>();
profile.samples.forEach((id, i) => {
  selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
});
const byFunction = new Map<string, number>();
const byFile = new Map<string, number>();
for (const [id, us] of selfUs) {
  const f = byId.get(id)!.callFrame;
  const file = f.url.replace(/^file:\/\/.*?\/(src|bench|cli\.ts)/, "$1") || "(native)";
  const name = `${f.functionName || "(anonymous)"}  ${file}:${f.lineNumber + 1}`;
  byFunction.set(name, (byFunction.get(name) ?? 0) + us);
  byFile.set(file, (byFile.get(file) ?? 0) + us);
}
const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
const print = (title: string, m: Map<string, number>) => {
  console.log(`${title} (total ${(total / 1000).toFixed(1)} ms sampled)`);
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(
      `  ${(us / 1000).toFixed(1).padStart(8)} ms ${
        (us / total * 100).toFixed(1).padStart(5)
      } %  ${k}`,
    );
  }
};
print("self time by function", byFunction);
print("self time by file", byFile);
