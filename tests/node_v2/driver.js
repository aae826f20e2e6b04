"use strict";
// Interactive driver for several socket.io-client versions at once, for fastsio's Socket.IO v2
// (Engine.IO v3) and msgpack interop tests.
//
//   node driver.js <server url> [<json: default client options>]
//
// Same line protocol as tests/node/driver.js: commands in on stdin, one JSON object per line;
// observations out on stdout, one JSON object per line; a command with a "seq" is answered with
// {"ev": "done", "seq"} (or {"ev": "error", "seq", "message"}) once carried out.
//
// Client versions (package.json aliases): "sio2" = socket.io-client 2.0.4, "sio2-last" = 2.5.0,
// "sio4" = 4.8.x. A connect command picks one with "client" (default: the "client" of the default
// options, else "sio4"); "parser": "msgpack" gives it socket.io-msgpack-parser (3.x for v4 clients,
// 2.2.1 for v2 clients).
//
// Commands:
//   {"op": "connect", "name": "a", "nsp": "/admin", "client": "sio2", "parser": "msgpack",
//    "opts": {...}, "manager": "b"}      opts go to io(); "manager": reuse client b's Manager
//   {"op": "emit", "name": "a", "event": "ev", "args": [...], "ack": true, "timeout": 200}
//        -> {"ev": "ack", "seq", "name", "args"} or {"ev": "ack_error", "seq", "name", "message"}
//   {"op": "ack_policy", "name": "a", "event": "ev", "reply": [...]} / {"echo": true}
//   {"op": "info", "name": "a"}   -> {"ev": "info", "seq", "connected", "id", "transport", "sid"}
//   {"op": "disconnect", "name": "a"}
//   {"op": "exit"}
//
// Observations: connect, connect_error, server_error (v2: the server's CONNECT_ERROR data),
// disconnect,
// event (with the transport it came over), open, upgrade, engine_close, ping / pong (v2: the
// client's heartbeat), reconnect_attempt, reconnect.
//
// Binary values cross the JSON boundary as {"$buffer": base64} and {"$arraybuffer": base64}.

const readline = require("readline");

const CLIENTS = {
  sio2: () => require("sio2"),
  "sio2-last": () => require("sio2-last"),
  sio4: () => require("sio4").io,
};

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
  if (v instanceof Date) return { $date: v.getTime() };
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
    if (v.$undefined === true) return undefined;
    if (typeof v.$date === "number") return new Date(v.$date);
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
  const watchEngine = () => {
    const engine = manager.engine;
    if (!engine || engine.__watched) return;
    engine.__watched = true;
    out({ ev: "open", name, transport: engine.transport && engine.transport.name, sid: engine.id });
    engine.on("upgrade", (transport) => out({ ev: "upgrade", name, transport: transport.name }));
    engine.on("close", (reason, description) =>
      out({ ev: "engine_close", name, reason, description: simple(description && description.message) }),
    );
    engine.on("ping", () => out({ ev: "ping", name }));
    engine.on("pong", () => out({ ev: "pong", name }));
  };
  manager.on("open", watchEngine);
  manager.on("reconnect_attempt", (attempt) => out({ ev: "reconnect_attempt", name, attempt }));
  manager.on("reconnect", (attempt) => out({ ev: "reconnect", name, attempt }));
}

// Incoming events: v4 has onAny; v2 has not, so its Socket#onevent is wrapped.
function onIncoming(socket, handler) {
  if (typeof socket.onAny === "function") {
    socket.onAny(handler);
    return;
  }
  socket.onevent = function (packet) {
    const args = (packet.data || []).slice();
    if (packet.id != null) args.push(this.ack(packet.id));
    handler(...args);
  };
}

function connect(cmd) {
  const name = cmd.name;
  if (clients.has(name)) throw new Error(`client ${name} exists`);
  const version = cmd.client || defaults.client || "sio4";
  const nsp = cmd.nsp || "/";
  const base = Object.assign({}, defaults);
  delete base.client;
  delete base.parser;
  const opts = Object.assign(
    { forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 200, timeout: 5000 },
    base,
    cmd.opts || {},
  );
  const parser = cmd.parser || defaults.parser;
  if (parser === "msgpack") {
    // socket.io-msgpack-parser 3.x speaks Socket.IO v5; 2.x is the line for socket.io-client 2.x
    opts.parser = require(version === "sio4" ? "socket.io-msgpack-parser" : "msgpack-parser-2");
  }
  let socket;
  if (cmd.manager) {
    const other = clients.get(cmd.manager);
    if (!other) throw new Error(`no client ${cmd.manager}`);
    socket = other.socket.io.socket(nsp, opts);
  } else {
    socket = CLIENTS[version]()(url + nsp, opts);
    watchManager(name, socket.io);
  }
  const state = { socket, acks: new Map(), v4: version === "sio4" };
  clients.set(name, state);

  socket.on("connect", () => {
    out({ ev: "connect", name, id: socket.id, transport: transportOf(socket) });
  });
  socket.on("connect_error", (err) => {
    out({
      ev: "connect_error",
      name,
      message: err && err.message,
      data: err && err.data !== undefined ? enc(err.data) : null,
      description: simple(err && err.description),
    });
  });
  if (!state.v4) {
    // v2: a CONNECT_ERROR from the server arrives as an "error" event with its plain data
    socket.on("error", (data) => out({ ev: "server_error", name, data: enc(data) }));
  }
  socket.on("disconnect", (reason) => out({ ev: "disconnect", name, reason }));
  onIncoming(socket, (event, ...args) => {
    let ack = null;
    if (args.length && typeof args[args.length - 1] === "function") ack = args.pop();
    out({ ev: "event", name, event, args: enc(args), transport: transportOf(socket), ack: !!ack });
    const policy = state.acks.get(event);
    if (ack && policy) ack(...(policy.echo ? args : dec(policy.reply || [])));
  });
}

function emit(cmd) {
  const { socket } = get(cmd.name);
  const args = dec(cmd.args || []);
  if (!cmd.ack) {
    socket.emit(cmd.event, ...args);
    return;
  }
  let timer = null;
  let answered = false;
  if (cmd.timeout !== undefined && cmd.timeout !== null) {
    timer = setTimeout(() => {
      if (answered) return;
      answered = true;
      out({ ev: "ack_error", seq: cmd.seq, name: cmd.name, message: "operation has timed out" });
    }, cmd.timeout);
  }
  socket.emit(cmd.event, ...args, (...res) => {
    if (answered) return;
    answered = true;
    if (timer) clearTimeout(timer);
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
      get(cmd.name).acks.set(cmd.event, { echo: !!cmd.echo, reply: cmd.reply });
      break;
    case "info": {
      const { socket } = get(cmd.name);
      const engine = socket.io.engine;
      out({
        ev: "info",
        seq: cmd.seq,
        name: cmd.name,
        connected: socket.connected,
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
rl.on("close", () => process.exit(0));
out({
  ev: "ready",
  pid: process.pid,
  versions: {
    sio2: require("sio2/package.json").version,
    "sio2-last": require("sio2-last/package.json").version,
    sio4: require("sio4/package.json").version,
  },
});
