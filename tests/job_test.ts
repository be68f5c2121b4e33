import assert from "node:assert/strict";
import { UsageError } from "../src/errors.ts";
import { isJobState, JOB_STATES, newJobId, parseIsoTime, parseNewJob } from "../src/job.ts";

const NOW = Date.UTC(2026, 10, 28, 12, 0, 0);
const parse = (input: unknown) => parseNewJob(input, { now: NOW, defaultCwd: "/here" });

Deno.test("parseNewJob: the canonical job and its defaults", () => {
  const job = parse({ id: "job1", command: "sleep 2" });
  assert.deepEqual(job, {
    id: "job1",
    command: "sleep 2",
    max_retries: null,
    priority: 0,
    run_at_ms: null,
    timeout_s: undefined,
    queue: "default",
    cwd: "/here",
  });
});

Deno.test("parseNewJob: every optional field", () => {
  const job = parse({
    command: "x",
    max_retries: 5,
    priority: -3,
    delay_s: 1.5,
    timeout_s: 10,
    queue: "emails",
    cwd: null,
  });
  assert.equal(job.max_retries, 5);
  assert.equal(job.priority, -3);
  assert.equal(job.run_at_ms, NOW + 1500);
  assert.equal(job.timeout_s, 10);
  assert.equal(job.queue, "emails");
  assert.equal(job.cwd, null);
  assert.equal(
    parse({ command: "x", run_at: "2026-12-01T00:00:00Z" }).run_at_ms,
    Date.UTC(2026, 11, 1),
  );
  assert.equal(parse({ command: "x", timeout_s: null }).timeout_s, null);
});

Deno.test("parseNewJob: bad input is refused with the field named", () => {
  const cases: Array<[unknown, RegExp]> = [
    [null, /must be a JSON object/],
    [[1], /must be a JSON object/],
    ["sleep 1", /must be a JSON object/],
    [{}, /"command" must be a non-empty string/],
    [{ command: "" }, /"command" must be a non-empty string/],
    [{ command: "   " }, /"command" must be a non-empty string/],
    [{ command: 42 }, /"command" must be a non-empty string/],
    [{ command: "a\0b" }, /NUL/],
    [{ command: "x", id: "" }, /"id" must be/],
    [{ command: "x", id: "a/b" }, /"id" must be/],
    [{ command: "x", id: 7 }, /"id" must be/],
    [{ command: "x", id: "x".repeat(129) }, /"id" must be/],
    [{ command: "x", max_retries: -1 }, /"max_retries" must be an integer/],
    [{ command: "x", max_retries: 1.5 }, /"max_retries" must be an integer/],
    [{ command: "x", max_retries: "3" }, /"max_retries" must be an integer/],
    [{ command: "x", priority: "high" }, /"priority" must be an integer/],
    [{ command: "x", run_at: "tomorrow" }, /"run_at" must be an ISO-8601/],
    [{ command: "x", run_at: "2026-01-01T00:00:00" }, /"run_at" must be an ISO-8601/],
    [{ command: "x", run_at: "2026-01-01T00:00:00Z", delay_s: 1 }, /not both/],
    [{ command: "x", delay_s: -1 }, /"delay_s"/],
    [{ command: "x", timeout_s: 0 }, /"timeout_s"/],
    [{ command: "x", timeout_s: "10" }, /"timeout_s"/],
    [{ command: "x", queue: "" }, /"queue" must be/],
    [{ command: "x", queue: "a b" }, /"queue" must be/],
    [{ command: "x", cwd: 3 }, /"cwd" must be/],
    [{ command: "x", colour: "red" }, /unknown field "colour" \(valid: id, command/],
  ];
  for (const [input, message] of cases) {
    assert.throws(
      () => parse(input),
      (e: Error) => e instanceof UsageError && message.test(e.message),
      JSON.stringify(input),
    );
  }
});

Deno.test("job states: closed list, guard", () => {
  assert.deepEqual([...JOB_STATES], [
    "pending",
    "processing",
    "completed",
    "failed",
    "dead",
    "cancelled",
  ]);
  assert.ok(isJobState("dead"));
  assert.ok(!isJobState("running"));
});

Deno.test("newJobId: short, URL-safe, sortable, unique within a burst", () => {
  const ids = Array.from({ length: 10_000 }, () => newJobId(NOW));
  assert.equal(new Set(ids).size, ids.length);
  for (const id of ids.slice(0, 100)) assert.match(id, /^[0-9a-z]{16}$/);
  assert.deepEqual([...ids].sort(), ids, "a burst keeps its order");
  assert.ok(newJobId(NOW + 1000) > ids[ids.length - 1], "later ids sort later");
});

Deno.test("parseIsoTime: needs a zone", () => {
  assert.equal(parseIsoTime("2026-01-01T00:00:00Z"), Date.UTC(2026, 0, 1));
  assert.equal(parseIsoTime("2026-01-01T01:00:00+01:00"), Date.UTC(2026, 0, 1));
  assert.ok(Number.isNaN(parseIsoTime("2026-01-01")));
});
