// One exec of a JavaScript process that reads and writes one path, from
// JavaScript, through theus.js: the cost a page pays per call.
//   node bench.js theus.wasm wasm_exec.js theus.js [seconds]
// Prints Go benchmark lines (scripts/bench-wasm.sh reads them).
"use strict";
const [wasmPath, wasmExec, theusJS, seconds = "1"] = process.argv.slice(2);
globalThis.require = require;
globalThis.fs = require("fs");
globalThis.path = require("path");
globalThis.crypto ??= require("crypto");
require(path.resolve(wasmExec));
require(path.resolve(theusJS));

const counter = { inputs: ["domain.counter"], outputs: ["domain.counter"] };

async function bench(name, fn) {
  const ctx = (await theus).newContext();
  ctx.register("counter.add", counter, fn);
  for (let i = 0; i < 1000; i++) await ctx.exec("counter.add"); // warm up
  const budget = Number(seconds) * 1e3;
  let n = 0;
  const start = performance.now();
  while (performance.now() - start < budget) {
    for (let i = 0; i < 100; i++) await ctx.exec("counter.add");
    n += 100;
  }
  const ns = ((performance.now() - start) * 1e6) / n;
  console.log(`BenchmarkJSExec/${name}\t${n}\t${ns.toFixed(0)} ns/op`);
  await ctx.close();
}

const theus = Theus.load(fs.readFileSync(wasmPath));
(async () => {
  await bench("process=sync", (p) => {
    const n = (p.get("domain.counter") ?? 0) + 1;
    p.set("domain.counter", n);
    return n;
  });
  await bench("process=async", async (p) => {
    const n = (p.get("domain.counter") ?? 0) + 1;
    await null;
    p.set("domain.counter", n);
    return n;
  });
  process.exit(0);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
