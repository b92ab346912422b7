// theus.js loads theus.wasm (cmd/theus-wasm) and gives its API; load
// Go's wasm_exec.js first. It works in a page and in Node. See
// docs/WASM.md.
//
//   const theus = await Theus.load("theus.wasm");   // a URL, or the module's bytes
//   const ctx = theus.newContext();
//   ctx.register("counter.add", {inputs: ["domain.counter"], outputs: ["domain.counter"]},
//     async (p) => { const n = (p.get("domain.counter") ?? 0) + 1; p.set("domain.counter", n); return n; });
//   await ctx.exec("counter.add");                 // {ok: true, version: 1, attempts: 1, ...}
"use strict";
(function (global) {
  let loads = 0;

  // unwrap throws what a synchronous Go method returned as {e}.
  function unwrap(r) {
    if (r.e !== undefined) throw r.e;
    return r.v;
  }

  // Process is what a process function gets: its call's args, the
  // snapshot's version, the attempt's number (from 1), an AbortSignal
  // that fires when the call gives up on the attempt, and the reads and
  // writes of the Context, checked against the contract.
  class Process {
    #raw;
    constructor(raw) {
      this.#raw = raw;
      this.args = raw.args;
      this.version = raw.version;
      this.attempt = raw.attempt;
      this.signal = raw.signal;
    }
    // get returns the value at path (an object nesting what is below it),
    // or undefined when there is nothing.
    get(path) { return unwrap(this.#raw.get(path)); }
    set(path, value) { unwrap(this.#raw.set(path, value)); }
    append(path, value) { unwrap(this.#raw.append(path, value)); }
    delete(path) { unwrap(this.#raw.delete(path)); }
  }

  // Context is one theus Context: its processes, its calls and its runs.
  class Context {
    #raw;
    constructor(raw) {
      this.#raw = raw;
      this.mode = raw.mode;
    }
    // register adds a process: name, its contract {inputs, outputs,
    // effect} and fn(p), which may be async and returns the result.
    register(name, contract, fn) {
      if (typeof fn !== "function") {
        unwrap(this.#raw.register(name, contract, undefined));
        return;
      }
      unwrap(this.#raw.register(name, contract, (raw) => fn(new Process(raw))));
    }
    // exec runs a process until its delta commits: theusctl exec's reply.
    exec(name, args, options) { return this.#raw.exec(name, args, options); }
    get(path) { return unwrap(this.#raw.get(path)); }
    get version() { return unwrap(this.#raw.version()); }
    snapshot() { return unwrap(this.#raw.snapshot()); }
    signal(path, value) { return this.#raw.signal(path, value); }
    // flux runs a workflow from its YAML text: options {args, id,
    // max_ops, timeout_ms, detach, file}; the run's view.
    flux(source, options) { return this.#raw.flux(source, options); }
    validate(source, file) { return unwrap(this.#raw.validate(source, file)); }
    status(run) { return unwrap(this.#raw.status(run)); }
    cancel(run) { return this.#raw.cancel(run); }
    watch(run, onEvent) { return this.#raw.watch(run, onEvent); }
    close() { return this.#raw.close(); }
  }

  // load instantiates theus.wasm from a URL (or a Response) or its bytes
  // and returns {newContext(options)}.
  async function load(source) {
    const go = new global.Go();
    const name = "__theus" + (++loads) + "_" + Math.random().toString(36).slice(2);
    go.argv = ["theus-wasm", name];
    let instance;
    if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) {
      instance = (await WebAssembly.instantiate(source, go.importObject)).instance;
    } else {
      const response = source instanceof Response ? source : await fetch(source);
      if (!response.ok) throw new Error(`theus: ${response.url}: ${response.status} ${response.statusText}`);
      instance = (await WebAssembly.instantiate(await response.arrayBuffer(), go.importObject)).instance;
    }
    go.run(instance); // runs main until it waits for calls: the API is in place
    const raw = global[name];
    delete global[name];
    if (!raw) throw new Error("theus: the module did not install its API");
    return {
      newContext(options) { return new Context(unwrap(raw.newContext(options))); },
    };
  }

  global.Theus = { load };
})(globalThis);
