"use strict";
// Interactive driver for the official socket.io-client, used by fastsio's interop tests.
//
//   node driver.js <server url> [<json: default client options>]
//
// Commands arrive on stdin, one JSON object per line; everything the clients observe leaves on
// stdout, one JSON object per line. Every command may carry a "seq"; a command with a seq is
// answered with {"ev": "done", "seq": ...} once it has been carried out (synchronously), or with
// {"ev": "error", "seq": ..., "message": ...} if it failed.
//
// Commands ("name" picks a client; every client gets its own Manager unless "manager" is given):
//   {"op": "connect", "name": "a", "nsp": "/admin", "opts": {...}, "manager": "b",
//    "burst": {"event": "n", "count": 200, "spreadMs": 100}}
//        opts go to io(); extra: "slowUpgradeMs": N delays the WebSocket probe by N ms.
//        "manager": open the namespace on client b's connection (multiplexing);
//        "burst": emit `count` numbered events from the first "connect" on, over `spreadMs`
//        (with "binaryEvery": k, every k-th event also carries Buffer [i % 256, 0xff]; with
//        "pad": s, every event also carries the string s).
//   {"op": "emit", "name": "a", "event": "ev", "args": [...], "ack": true, "timeout": 200}
//        -> {"ev": "ack", "seq", "name", "args"} or {"ev": "ack_error", "seq", "name", "message"}
//   {"op": "ack_policy", "name": "a", "event": "ev", "reply": [...]}    answer the server's acks
//        for "ev" with `reply`; {"echo": true} answers with the event's own args; no policy: never
//   {"op": "info", "name": "a"}        -> {"ev": "info", "seq", "connected", "id", "transport", ...}
//   {"op": "disconnect", "name": "a"}  socket.disconnect()
//   {"op": "connect_again", "name": "a", "auth": {...}}  socket.connect() (with new auth if given)
//   {"op": "close_engine", "name": "a"}  close the Engine.IO connection under the socket
//   {"op": "exit"}
//
// Observations: connect, connect_error, disconnect, event (with the transport it came over),
// open / upgrade / engine_close / ping / reconnect_attempt / reconnect / reconnect_failed.
//
// Binary values cross the JSON boundary as {"$buffer": base64} (Node Buffer) and
// {"$arraybuffer": base64} (ArrayBuffer), both ways.

const readline = require("readline");
const { io } = require("socket.io-client");

// engine.io-client exactly as socket.io-client resolves it (not a dependency of our own)
const eio = require(require.resolve("engine.io-client", { paths: [require.resolve("socket.io-client")] }));

const url = process.argv[2];
const defaults = JSON.parse(process.argv[3] || "{}");
const clients = new Map();

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function enc(v) {
  if (Buffer.isBuffer(v)) return { $buffer: v.toString("base64") };
  if (v instanceof ArrayBuffer) return { $arraybuffer: Buffer.from(v).toString("base64") };
  if (ArrayBuffer.isView(v)) {
    return {
      $typedarray: v.constructor.name,
      data: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64"),
    };
  }
  if (Array.isArray(v)) return v.map(enc);
  if (v === undefined) return { $undefined: true };
  if (v !== null && typeof v === "object") {
    const o = {};
    for (const k of Object.keys(v)) o[k] = enc(v[k]);
    return o;
  }
  return v;
}

function dec(v) {
  if (Array.isArray(v)) return v.map(dec);
  if (v !== null && typeof v === "object") {
    if (typeof v.$buffer === "string") return Buffer.from(v.$buffer, "base64");
    if (typeof v.$arraybuffer === "string") {
      const b = Buffer.from(v.$arraybuffer, "base64");
      return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
    }
    const o = {};
    for (const k of Object.keys(v)) o[k] = dec(v[k]);
    return o;
  }
  return v;
}

function transportOf(socket) {
  const engine = socket.io.engine;
  return engine && engine.transport ? engine.transport.name : null;
}

function simple(v) {
  return typeof v === "string" || typeof v === "number" ? v : undefined;
}

function watchManager(name, manager) {
  manager.on("open", () => {
    const engine = manager.engine;
    out({ ev: "open", name, transport: engine.transport.name, sid: engine.id });
    engine.on("upgrade", (transport) => out({ ev: "upgrade", name, transport: transport.name }));
    engine.on("close", (reason, description) =>
      out({ ev: "engine_close", name, reason, description: simple(description && description.message) }),
    );
  });
  manager.on("ping", () => out({ ev: "ping", name }));
  manager.on("reconnect_attempt", (attempt) => out({ ev: "reconnect_attempt", name, attempt }));
  manager.on("reconnect", (attempt) => out({ ev: "reconnect", name, attempt }));
  manager.on("reconnect_failed", () => out({ ev: "reconnect_failed", name }));
}

// A WebSocket transport that waits `delayMs` before opening: the upgrade probe then starts late,
// so that a client connected over polling deterministically has messages in flight on both
// transports while it upgrades.
function slowWebSocket(delayMs) {
  return class SlowWebSocket extends eio.transports.websocket {
    doOpen() {
      setTimeout(() => {
        if (this.readyState === "opening") super.doOpen();
      }, delayMs);
    }
  };
}

function startBurst(socket, burst) {
  const { event, count, spreadMs = 0, binaryEvery = 0, pad } = burst;
  const emit = (i) => {
    const args = [i];
    if (binaryEvery && i % binaryEvery === 0) args.push(Buffer.from([i % 256, 0xff]));
    if (pad !== undefined) args.push(pad);
    socket.emit(event, ...args);
  };
  // One chained timer emitting in order: separate setTimeout()s of different delays do not
  // reliably fire in the order of their deadlines (Node runs a list of equal delays together).
  const started = Date.now();
  let i = 0;
  const step = () => {
    const due = spreadMs ? Math.floor(((Date.now() - started) * count) / spreadMs) + 1 : count;
    while (i < count && i < due) emit(i++);
    if (i < count) setTimeout(step, 1);
  };
  step();
}

function connect(cmd) {
  const name = cmd.name;
  if (clients.has(name)) throw new Error(`client ${name} exists`);
  const nsp = cmd.nsp || "/";
  const opts = Object.assign(
    { forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 200, timeout: 5000 },
    defaults,
    cmd.opts || {},
  );
  if (opts.slowUpgradeMs) {
    opts.transports = [eio.transports.polling, slowWebSocket(opts.slowUpgradeMs)];
    delete opts.slowUpgradeMs;
  }
  let socket;
  if (cmd.manager) {
    const other = clients.get(cmd.manager);
    if (!other) throw new Error(`no client ${cmd.manager}`);
    socket = other.socket.io.socket(nsp, { auth: opts.auth });
  } else {
    socket = io(url + nsp, opts);
    watchManager(name, socket.io);
  }
  const state = { socket, acks: new Map(), connects: 0 };
  clients.set(name, state);

  socket.on("connect", () => {
    state.connects += 1;
    out({ ev: "connect", name, id: socket.id, transport: transportOf(socket), recovered: socket.recovered });
    if (cmd.burst && state.connects === 1) startBurst(socket, cmd.burst);
  });
  socket.on("connect_error", (err) => {
    out({
      ev: "connect_error",
      name,
      message: err.message,
      data: err.data === undefined ? null : enc(err.data),
      type: simple(err.type),
      description: simple(err.description),
      active: socket.active,
    });
  });
  socket.on("disconnect", (reason, details) => {
    out({
      ev: "disconnect",
      name,
      reason,
      active: socket.active,
      description: simple(details && details.description && details.description.message),
    });
  });
  socket.onAny((event, ...args) => {
    let ack = null;
    if (args.length && typeof args[args.length - 1] === "function") ack = args.pop();
    out({ ev: "event", name, event, args: enc(args), transport: transportOf(socket), ack: !!ack });
    const policy = state.acks.get(event);
    if (ack && policy) {
      const reply = policy.echo ? args : dec(policy.reply || []);
      if (policy.delayMs) setTimeout(() => ack(...reply), policy.delayMs);
      else ack(...reply);
    }
  });
}

function emit(cmd) {
  const { socket } = get(cmd.name);
  const args = dec(cmd.args || []);
  if (!cmd.ack) {
    socket.emit(cmd.event, ...args);
    return;
  }
  const withTimeout = cmd.timeout !== undefined && cmd.timeout !== null;
  const target = withTimeout ? socket.timeout(cmd.timeout) : socket;
  target.emit(cmd.event, ...args, (...res) => {
    if (withTimeout) {
      const err = res.shift();
      if (err) {
        out({ ev: "ack_error", seq: cmd.seq, name: cmd.name, message: err.message });
        return;
      }
    }
    out({ ev: "ack", seq: cmd.seq, name: cmd.name, args: enc(res) });
  });
}

function get(name) {
  const state = clients.get(name);
  if (!state) throw new Error(`no client ${name}`);
  return state;
}

function handle(cmd) {
  switch (cmd.op) {
    case "connect":
      connect(cmd);
      break;
    case "emit":
      emit(cmd);
      break;
    case "ack_policy":
      get(cmd.name).acks.set(cmd.event, { echo: !!cmd.echo, reply: cmd.reply, delayMs: cmd.delayMs });
      break;
    case "info": {
      const { socket } = get(cmd.name);
      const engine = socket.io.engine;
      out({
        ev: "info",
        seq: cmd.seq,
        name: cmd.name,
        connected: socket.connected,
        active: socket.active,
        id: socket.id === undefined ? null : socket.id,
        transport: transportOf(socket),
        engineState: engine ? engine.readyState : null,
        sid: engine ? engine.id : null,
      });
      break;
    }
    case "disconnect":
      get(cmd.name).socket.disconnect();
      break;
    case "connect_again": {
      const { socket } = get(cmd.name);
      if (cmd.auth !== undefined) socket.auth = dec(cmd.auth);
      socket.connect();
      break;
    }
    case "close_engine":
      get(cmd.name).socket.io.engine.close();
      break;
    case "exit":
      for (const { socket } of clients.values()) socket.disconnect();
      process.exit(0);
      break;
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
}

process.on("uncaughtException", (err) => {
  out({ ev: "fatal", message: String((err && err.stack) || err) });
  process.exit(1);
});

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
    handle(cmd);
    if (cmd.seq !== undefined) out({ ev: "done", seq: cmd.seq, op: cmd.op });
  } catch (err) {
    out({ ev: "error", seq: cmd && cmd.seq, message: String(err && err.message) });
  }
});
// The test went away (or closed our stdin on purpose): do not linger.
rl.on("close", () => process.exit(0));
out({ ev: "ready", pid: process.pid, version: require("socket.io-client/package.json").version });
