// The JavaScript API, tested in Node against the real module:
//   node api_test.js theus.wasm wasm_exec.js theus.js
// Each test prints "ok NAME" or "FAIL NAME: why"; the exit status is 1
// if any failed. Run by TestAPIUnderNode (main_test.go).
"use strict";
const [wasmPath, wasmExec, theusJS] = process.argv.slice(2);
globalThis.require = require;
globalThis.fs = require("fs");
globalThis.path = require("path");
globalThis.crypto ??= require("crypto");
require(path.resolve(wasmExec));
require(path.resolve(theusJS));

const tests = [];
function test(name, fn) { tests.push({ name, fn }); }
function check(cond, what) { if (!cond) throw new Error(what); }
function eq(got, want, what) {
  const g = JSON.stringify(got), w = JSON.stringify(want);
  if (g !== w) throw new Error(`${what}: got ${g}, want ${w}`);
}
async function rejects(promise, code, what) {
  try {
    await promise;
  } catch (e) {
    check(e.name === "TheusError", `${what}: ${e} is not a TheusError`);
    eq(e.code, code, `${what}: code (${e.message})`);
    return e;
  }
  throw new Error(`${what}: no error, want ${code}`);
}
function throws(fn, code, what) {
  try {
    fn();
  } catch (e) {
    check(e.name === "TheusError", `${what}: ${e} is not a TheusError`);
    eq(e.code, code, `${what}: code (${e.message})`);
    return e;
  }
  throw new Error(`${what}: no error, want ${code}`);
}
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

const counter = { inputs: ["domain.counter"], outputs: ["domain.counter"] };
// add is counter.add; between(p) runs (and is awaited) between its read
// and its write.
function add(between) {
  return async (p) => {
    const n = p.get("domain.counter") ?? 0;
    if (between) await between(p);
    const next = n + ((p.args && p.args.by) ?? 1);
    p.set("domain.counter", next);
    return next;
  };
}

let theus;

test("an exec replies as theusctl exec", async () => {
  const ctx = theus.newContext();
  ctx.register("counter.add", counter, add());
  const rep = await ctx.exec("counter.add", { by: 3 });
  eq(rep, { ok: true, version: 1, attempts: 1, conflicts: 0, vip: false, result: 3, mode: "smart" }, "reply");
  const again = await ctx.exec("counter.add", undefined, { id: "op-1" });
  eq(again.op_id, "op-1", "op id");
  const dup = await ctx.exec("counter.add", null, { id: "op-1" });
  check(dup.duplicate && dup.version === again.version && dup.result === 4, `duplicate ${JSON.stringify(dup)}`);
  await rejects(ctx.exec("counter.add", { by: 2 }, { id: "op-1" }), "op_id_conflict", "the id with other args");
  eq(ctx.get("domain.counter"), 4, "counter");
  eq(ctx.version, 2, "version");
});

test("two async processes interleave across an await: one conflicts and runs again", async () => {
  const ctx = theus.newContext();
  let release;
  const gate = new Promise((resolve) => { release = resolve; });
  ctx.register("counter.add", counter, add(async (p) => {
    if (p.args && p.args.slow && p.attempt === 1) await gate;
  }));
  const slow = ctx.exec("counter.add", { slow: true });
  await tick(); // the slow one has read 0 and waits
  const fast = await ctx.exec("counter.add");
  release();
  const s = await slow;
  eq([fast.version, fast.attempts], [1, 1], "the fast call");
  eq([s.version, s.attempts, s.conflicts, s.result], [2, 2, 1, 2], "the slow call");
  eq(ctx.get("domain.counter"), 2, "counter");
});

test("many interleaved calls lose no increment", async () => {
  const ctx = theus.newContext();
  ctx.register("counter.add", counter, add(() => tick()));
  const reps = await Promise.all(Array.from({ length: 40 }, () => ctx.exec("counter.add")));
  eq(ctx.get("domain.counter"), 40, "counter");
  check(reps.some((r) => r.conflicts > 0), "no call conflicted: the calls did not interleave");
});

test("a call that keeps losing takes a VIP ticket", async () => {
  const ctx = theus.newContext();
  ctx.register("counter.add", counter, add());
  ctx.register("loser", counter, add(async (p) => {
    if (p.attempt <= 3) await ctx.exec("counter.add");
  }));
  const rep = await ctx.exec("loser");
  eq([rep.vip, rep.conflicts, rep.attempts], [true, 3, 4], "reply");
  eq(ctx.get("domain.counter"), 4, "counter");
});

test("the contract is checked, templates bound from args", async () => {
  const ctx = theus.newContext();
  ctx.register("transfer", { inputs: ["domain.accounts.{from}", "domain.accounts.{to}"], outputs: ["domain.accounts.{from}", "domain.accounts.{to}"] }, (p) => {
    const { from, to, amount } = p.args;
    const a = p.get(`domain.accounts.${from}`) ?? 100;
    if (a < amount) throw Object.assign(new Error(`${from} holds ${a}`), { code: "insufficient_funds" });
    p.set(`domain.accounts.${from}`, a - amount);
    p.set(`domain.accounts.${to}`, (p.get(`domain.accounts.${to}`) ?? 0) + amount);
    if (p.args.sneak) {
      try { p.set("domain.accounts.carol", 1); } catch (e) { /* ignored: the call fails anyway */ }
    }
    return { from: a - amount };
  });
  eq((await ctx.exec("transfer", { from: "alice", to: "bob", amount: 30 })).result, { from: 70 }, "result");
  await rejects(ctx.exec("transfer", { from: "alice", to: "bob", amount: 1000 }), "insufficient_funds", "the process's own code");
  const e = await rejects(ctx.exec("transfer", { from: "alice", to: "bob", amount: 1, sneak: true }), "contract_violation", "an ignored violation");
  eq(e.path, "domain.accounts.carol", "path");
  eq(e.reply.ok, false, "reply.ok");
  await rejects(ctx.exec("transfer", { from: "alice" }), "bad_args", "a missing template arg");
  await rejects(ctx.exec("nope"), "unknown_process", "an unknown process");
  eq(ctx.get("domain.accounts"), { alice: 70, bob: 30 }, "accounts");
  throws(() => ctx.register("bad", { inputs: ["domain.internal_x"] }, () => {}), "bad_request", "a PRIVATE input");
  throws(() => ctx.register("bad", { input: ["domain.x"] }, () => {}), "bad_request", "a typo in the contract");
  throws(() => ctx.get("domain.nothing"), "not_found", "get of nothing");
  throws(() => ctx.get("domain..x"), "bad_request", "get of a bad path");
});

test("a call that gives up aborts the process's signal; its late writes fail", async () => {
  const ctx = theus.newContext();
  let kept, aborted = false;
  ctx.register("hang", counter, (p) => {
    kept = p;
    p.signal.addEventListener("abort", () => { aborted = true; });
    return new Promise(() => {});
  });
  await rejects(ctx.exec("hang", null, { timeout_ms: 30 }), "timeout", "a hung process");
  check(aborted, "the signal was not aborted");
  throws(() => kept.set("domain.counter", 1), "process_failed", "a write after the attempt");
  await rejects(ctx.exec("hang", null, { timeout_ms: -1 }), "bad_request", "a negative timeout");
  await rejects(ctx.exec("hang", null, { timeout: 5 }), "bad_request", "an unknown option");
});

test("a typed array is stored by value; a value JSON cannot carry fails the call", async () => {
  const ctx = theus.newContext();
  ctx.register("put", { outputs: ["domain.w"] }, (p) => {
    p.set("domain.w", p.args.cyclic ? (() => { const o = {}; o.o = o; return o; })() : new Float32Array([1, 2.5]));
  });
  await ctx.exec("put", {});
  eq(ctx.get("domain.w"), [1, 2.5], "value");
  await rejects(ctx.exec("put", { cyclic: true }), "process_failed", "a cyclic value");
  ctx.register("heavy", { outputs: ["domain.heavy_w"] }, (p) => p.set("domain.heavy_w", [1]));
  await rejects(ctx.exec("heavy"), "bad_tensor", "a HEAVY path");
});

test("a Flux workflow runs over JavaScript processes, with conditions and max_ops", async () => {
  const ctx = theus.newContext();
  ctx.register("counter.add", counter, add(() => tick()));
  const wf = `
steps:
  - counter.add
  - flux: while
    condition: domain.counter < args.goal
    do:
      - process: counter.add
        args: {by: "\${ args.step }"}
`;
  const v = await ctx.flux(wf, { args: { goal: 7, step: 2 } });
  eq([v.status, v.steps.length, v.ops], ["complete", 4, 8], "run");
  eq(ctx.get("domain.counter"), 7, "counter");
  const capped = await ctx.flux(wf, { args: { goal: 100, step: 1 }, max_ops: 5 });
  eq([capped.status, capped.code], ["failed", "flux_max_ops"], "capped run");
  const problems = ctx.validate("steps: [nope]\n");
  check(problems.length === 1 && problems[0].includes("nope"), `problems ${problems}`);
  await rejects(ctx.flux("steps: [nope]\n"), "bad_request", "a workflow that does not load");
  eq(ctx.status(v.run).status, "complete", "status");
});

test("a run waits for a signal and reports its events", async () => {
  const ctx = theus.newContext();
  ctx.register("counter.add", counter, add());
  const started = await ctx.flux("steps:\n  - flux: wait\n    signal: domain.sig_go\n  - counter.add\n", { id: "w1", detach: true });
  eq(started.status, "running", "detached");
  const events = [];
  const watching = ctx.watch("w1", (ev) => events.push(ev.event));
  await ctx.signal("domain.sig_go", { by: "user" });
  await watching;
  eq(events[events.length - 1], "end", "the last event");
  eq(ctx.status("w1").status, "complete", "status");
  await rejects(ctx.signal("domain.go", 1), "bad_request", "a signal outside the SIGNAL zone");
});

test("a snapshot starts another context where this one was", async () => {
  const ctx = theus.newContext({ mode: "strict" });
  eq(ctx.mode, "strict", "mode");
  ctx.register("counter.add", counter, add());
  await ctx.exec("counter.add", null, { id: "op-1" });
  const snap = JSON.parse(JSON.stringify(ctx.snapshot()));
  await ctx.close();
  await rejects(ctx.exec("counter.add"), "shutting_down", "a closed context");
  const ctx2 = theus.newContext({ restore: snap });
  ctx2.register("counter.add", counter, add());
  eq((await ctx2.exec("counter.add", null, { id: "op-1" })).duplicate, true, "op-1 again");
  eq((await ctx2.exec("counter.add")).result, 2, "the next add");
  throws(() => theus.newContext({ mode: "fast" }), "bad_request", "an unknown mode");
  throws(() => theus.newContext({ restore: { version: 1, entries: [{ path: "domain.x", version: 9, value: 1 }] } }), "bad_request", "an inconsistent snapshot");
});

(async () => {
  theus = await Theus.load(fs.readFileSync(wasmPath));
  let failed = 0;
  for (const t of tests) {
    try {
      await t.fn();
      console.log(`ok ${t.name}`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${t.name}: ${e && e.stack || e}`);
    }
  }
  console.log(`${tests.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})().catch((e) => {
  console.log(`FAIL loading: ${e && e.stack || e}`);
  process.exit(1);
});
