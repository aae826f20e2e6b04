"use strict";
// The @socket.io/redis-emitter, driven over JSON lines: publishes to a Socket.IO cluster (fastsio
// and/or Node servers with the Redis adapter) from outside any server.
//
//   node emitter.js '<json options>'
//
// Options: {"redis": "redis://127.0.0.1:6379", "key": "socket.io"}. Prints {"ev": "ready", ...}
// once connected to Redis.
//
// Commands arrive on stdin, one JSON object per line; answers leave on stdout, one JSON object per
// line. Every command may carry a "seq"; a command with a seq is answered with
// {"ev": "done", "seq", "op", "result": null} once Redis has taken what it published, or with
// {"ev": "error", "seq", "op", "message"} if it failed. Every command takes an optional "nsp"
// (default "/") and the operator fields "to": [rooms], "except": [rooms], "volatile": bool.
//   {"op": "emit", "event", "args"}              emitter.of(nsp).to(..).except(..).emit(event, ...args)
//   {"op": "sockets_join", "rooms"}, {"op": "sockets_leave", "rooms"}
//   {"op": "disconnect_sockets", "close": bool}
//   {"op": "server_side_emit", "event", "args"}  (the emitter cannot wait for acknowledgements)
//   {"op": "exit"}
//
// Binary values cross the JSON boundary as {"$buffer": base64} (Node Buffer) and
// {"$arraybuffer": base64} (ArrayBuffer), like ../node/driver.js.

const readline = require("readline");
const { Emitter } = require("@socket.io/redis-emitter");
const { createClient } = require("redis");

const options = Object.assign(
  { redis: "redis://127.0.0.1:6379", key: "socket.io" },
  JSON.parse(process.argv[2] || "{}"),
);

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
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

function message(err) {
  return String((err && err.message) || err);
}

const client = createClient({ url: options.redis });
client.on("error", (err) => out({ ev: "redis_error", message: message(err) }));
const emitter = new Emitter(client, { key: options.key });

function operator(cmd) {
  let op = emitter.of(cmd.nsp || "/");
  if (cmd.to && cmd.to.length) op = op.to(cmd.to);
  if (cmd.except && cmd.except.length) op = op.except(cmd.except);
  if (cmd.volatile) op = op.volatile;
  return op;
}

function handle(cmd) {
  switch (cmd.op) {
    case "emit":
      operator(cmd).emit(cmd.event, ...dec(cmd.args || []));
      break;
    case "sockets_join":
      operator(cmd).socketsJoin(cmd.rooms);
      break;
    case "sockets_leave":
      operator(cmd).socketsLeave(cmd.rooms);
      break;
    case "disconnect_sockets":
      operator(cmd).disconnectSockets(!!cmd.close);
      break;
    case "server_side_emit":
      emitter.of(cmd.nsp || "/").serverSideEmit(cmd.event, ...dec(cmd.args || []));
      break;
    case "exit":
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
process.on("unhandledRejection", (err) => {
  out({ ev: "unhandled_rejection", message: String((err && err.stack) || err) });
});

async function main() {
  await client.connect();
  const rl = readline.createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    if (!line.trim()) return;
    let cmd;
    try {
      cmd = JSON.parse(line);
      handle(cmd);
    } catch (err) {
      out({ ev: "error", seq: cmd && cmd.seq, op: cmd && cmd.op, message: message(err) });
      return;
    }
    // The emitter publishes without waiting; the client sends its commands in order on one
    // connection, so once this PING is answered Redis has taken the publish.
    client.ping().then(
      () => {
        if (cmd.seq !== undefined) out({ ev: "done", seq: cmd.seq, op: cmd.op, result: null });
      },
      (err) => out({ ev: "error", seq: cmd.seq, op: cmd.op, message: message(err) }),
    );
  });
  // The test went away (or closed our stdin on purpose): do not linger.
  rl.on("close", () => process.exit(0));
  out({
    ev: "ready",
    pid: process.pid,
    key: options.key,
    version: require("@socket.io/redis-emitter/package.json").version,
  });
}

main().catch((err) => {
  out({ ev: "fatal", message: String((err && err.stack) || err) });
  process.exit(1);
});
