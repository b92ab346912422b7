// theus.js loads theus.wasm (cmd/theus-wasm) and gives its API; load
// Go's wasm_exec.js first. It works in a page and in Node. See
// docs/WASM.md.
//
//   const theus = await Theus.load("theus.wasm");   // a URL, or the module's bytes
//   const ctx = theus.newContext();
//   ctx.register("counter.add", {inputs: ["domain.counter"], outputs: ["domain.counter"]},
//     async (p) => { const n = (p.get("domain.counter") ?? 0) + 1; p.set("domain.counter", n); return n; });
//   await ctx.exec("counter.add");                 // {ok: true, version: 1, attempts: 1, ...}
//
// Values cross into the module as JSON text: this file encodes and
// decodes them, and turns the module's answers into objects, exceptions
// and promises.
"use strict";
(function (global) {
  let loads = 0;

  // unwrap throws the TheusError a synchronous method returned.
  function unwrap(r) {
    if (r instanceof Error) throw r;
    return r;
  }

  // A typed array is stored by value, as an array of its numbers.
  function typedArrays(_, v) {
    return ArrayBuffer.isView(v) && !(v instanceof DataView) ? Array.from(v) : v;
  }

  // encode is v as JSON text (undefined for undefined), or what
  // JSON.stringify threw (a cycle, a BigInt), which the module reports.
  function encode(v) {
    try {
      return JSON.stringify(v, typedArrays);
    } catch (e) {
      return e instanceof Error ? e : new Error(String(e));
    }
  }

  function decode(s) {
    return s === undefined ? undefined : JSON.parse(s);
  }

  // Process is what a process function gets: its call's args, the
  // snapshot's version, the attempt's number (from 1), an AbortSignal
  // aborted when the call gives up on the attempt, and the reads and
  // writes of the Context, checked against the contract. It is dead once
  // the attempt ends.
  class Process {
    #raw;
    #h;
    #signal;
    constructor(raw, h, args, version, attempt) {
      this.#raw = raw;
      this.#h = h;
      this.args = decode(args);
      this.version = version;
      this.attempt = attempt;
    }
    get signal() { return this.#signal ??= unwrap(this.#raw.psignal(this.#h)); }
    // get returns a copy of the value at path (an object nesting what is
    // below it), or undefined when there is nothing.
    get(path) { return decode(unwrap(this.#raw.pget(this.#h, path))); }
    set(path, value) { unwrap(this.#raw.pset(this.#h, path, encode(value))); }
    append(path, value) { unwrap(this.#raw.pappend(this.#h, path, encode(value))); }
    delete(path) { unwrap(this.#raw.pdelete(this.#h, path)); }
  }

  // wrap is how the module calls fn for one attempt: the result as JSON
  // text, or true for a promise, whose outcome goes to settle.
  function wrap(raw, fn) {
    return (h, args, version, attempt) => {
      const r = fn(new Process(raw, h, args, version, attempt));
      if (r === null || (typeof r !== "object" && typeof r !== "function") || typeof r.then !== "function") {
        return JSON.stringify(r, typedArrays);
      }
      Promise.resolve(r).then(
        (v) => raw.settle(h, true, encode(v)),
        (e) => raw.settle(h, false, e),
      );
      return true;
    };
  }

  function promise(start) {
    return new Promise((resolve, reject) => start((s) => resolve(decode(s)), reject));
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
      unwrap(this.#raw.register(name, encode(contract), typeof fn === "function" ? wrap(this.#raw, fn) : undefined));
    }
    // exec runs a process until its delta commits: theusctl exec's reply.
    exec(name, args, options) {
      return promise((ok, fail) => this.#raw.exec(name, encode(args), encode(options), ok, fail));
    }
    get(path) { return decode(unwrap(this.#raw.get(path))); }
    get version() { return unwrap(this.#raw.version()); }
    snapshot() { return decode(unwrap(this.#raw.snapshot())); }
    signal(path, value) { return new Promise((ok, fail) => this.#raw.signal(path, encode(value), ok, fail)); }
    // flux runs a workflow from its YAML text: options {args, id,
    // max_ops, timeout_ms, detach, file}; the run's view.
    flux(source, options) { return promise((ok, fail) => this.#raw.flux(source, encode(options), ok, fail)); }
    validate(source, file) { return decode(unwrap(this.#raw.validate(source, file))); }
    status(run) { return decode(unwrap(this.#raw.status(run))); }
    cancel(run) { return promise((ok, fail) => this.#raw.cancel(run, ok, fail)); }
    watch(run, onEvent) {
      return new Promise((ok, fail) => this.#raw.watch(run, (s) => onEvent && onEvent(decode(s)), ok, fail));
    }
    close() { return new Promise((ok, fail) => this.#raw.close(ok, fail)); }
  }

  // load instantiates theus.wasm from a URL (or a Response) or its bytes
  // and returns {newContext(options)}.
  async function load(source) {
    const go = new global.Go();
    const name = "__theus" + (++loads) + "_" + Math.random().toString(36).slice(2);
    go.argv = ["theus-wasm", name];
    let bytes = source;
    if (!(source instanceof ArrayBuffer || ArrayBuffer.isView(source))) {
      const response = source instanceof Response ? source : await fetch(source);
      if (!response.ok) throw new Error(`theus: ${response.url}: ${response.status} ${response.statusText}`);
      bytes = await response.arrayBuffer();
    }
    const { instance } = await WebAssembly.instantiate(bytes, go.importObject);
    go.run(instance); // runs main until it waits for calls: the API is in place
    const raw = global[name];
    delete global[name];
    if (!raw) throw new Error("theus: the module did not install its API");
    return {
      newContext(options) { return new Context(unwrap(raw.newContext(encode(options)))); },
    };
  }

  global.Theus = { load };
})(globalThis);
