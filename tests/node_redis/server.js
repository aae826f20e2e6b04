"use strict";
// A socket.io 4.8 server with @socket.io/redis-adapter, driven over JSON lines: the Node side of
// fastsio's mixed-cluster (fastsio + Node on one Redis) tests.
//
//   node server.js '<json options>'
//
// Options: {"redis": "redis://127.0.0.1:6379", "key": "socket.io",
//           "variant": "classic" | "sharded" | "streams",
//           "requestsTimeout": 5000, "subscriptionMode": "dynamic" (sharded only),
//           "publishOnSpecificResponseChannel": false (classic only), "serverOptions": {...},
//           "cluster": ["redis://127.0.0.1:P1", ...] (sharded only: a Redis Cluster, "redis" unused)}
// "key" is the adapter's key (classic) or channel prefix (sharded); for "streams"
// (@socket.io/redis-streams-adapter) it is the stream name and the channel prefix, and the session
// keys are "<key>:session:<pid>". With "cluster", both clients
// are node-redis cluster clients (createCluster with those root nodes; the sub one its duplicate()),
// as Node's docs set up createShardedAdapter on a Redis Cluster. The server listens on
// 127.0.0.1, port 0, with cors origin "*", and prints {"ev": "ready", "port": N, ...} once its
// adapter is subscribed.
//
// Commands arrive on stdin, one JSON object per line; observations leave on stdout, one JSON
// object per line. Every command may carry a "seq"; a command with a seq is answered with
// {"ev": "done", "seq", "op", "result"} once it has been carried out (for anything that publishes
// to Redis: once Redis has taken the message), or with {"ev": "error", "seq", "op", "message"} if
// it failed; "result" carries binary as below. Commands start in the order they arrive but run
// concurrently (a long emit_with_ack does not hold up the next command), so answers can come out
// of order: match them by seq. "done" for an operation Redis carries to another server (remote
// join, sockets_join, ...) means published, not yet applied there.
//
// Every command takes an optional "nsp" (default "/") and the operator fields "to": [rooms],
// "except": [rooms], "local": bool, "volatile": bool, "timeout": ms, applied in that order to
// io.of(nsp).
//   {"op": "emit", "event", "args"}                       op.emit(event, ...args)
//   {"op": "emit_with_ack", "event", "args", "timeout"}   await op.timeout(t).emitWithAck(...)
//        (timeout defaults to 5000) -> result: the responses array; on failure the error has
//        "message": "timeout", "detail": the socket.io message, "responses": the partial ones
//   {"op": "fetch_sockets"}  -> result: [{id, rooms, data, handshake}] of op.fetchSockets()
//        (handshake as socket.io has it: query, auth, address, headers, time, issued, url, ...)
//   {"op": "remote", "id", "action": "emit" | "join" | "leave" | "disconnect", "event", "args",
//    "room" (string or array), "close": bool, "ack": bool, "timeout": ms}
//        finds the socket with io.of(nsp).in(id).fetchSockets() (a RemoteSocket, or the Socket
//        itself when it is local) and calls the method; "emit" with "ack": true waits for the
//        client's answer (socket.timeout(t).emitWithAck) -> result: its answer
//   {"op": "sockets_join", "rooms"}, {"op": "sockets_leave", "rooms"}
//   {"op": "disconnect_sockets", "close": bool}
//   {"op": "server_side_emit", "event", "args"}
//   {"op": "server_side_emit_with_ack", "event", "args", "timeout"}  -> result: the responses
//        (one per other server: the first argument its listener acked with, as the adapters
//        carry only that); failures as for emit_with_ack. The adapter bounds the wait
//        (requestsTimeout for classic, a fixed 5 s for sharded); "timeout" can only shorten it
//        (and then there are no partial responses: "responses" is null)
//   {"op": "server_count"}   -> result: await io.of(nsp).adapter.serverCount()
//   {"op": "all_rooms"}      -> result: [...await io.of(nsp).adapter.allRooms()] (classic only)
//   {"op": "local_rooms"}    -> result: {room: [socket ids]} of this server's adapter
//   {"op": "on_server_event", "event", "reply": [...] | "echo", "delayMs"}
//        io.of(nsp).on(event): observes {"ev": "server_event", "nsp", "event", "args", "ack"};
//        when the sender wants an answer it gets ...reply ("echo": the event's own args);
//        without "reply" it gets none (so tests can provoke timeouts)
//   {"op": "on_client_event", "event", "reply": [...] | "echo", "join": room, "delayMs"}
//        for every socket of nsp, now and later: on event, join `join` (if given), then answer
//        the client's ack (if any) with ...reply / the args; without "reply": no answer.
//        (Every client event is observed, policy or not: {"ev": "client_event", "nsp", "id",
//        "event", "args", "ack"}.)
//   {"op": "set_data", "id", "data"}   socket.data = data, for a local socket
//   {"op": "namespace"}      create io.of(nsp) and observe it ("/" is observed from the start)
//   {"op": "exit"}
//
// Observations: {"ev": "connection", "nsp", "id", "rooms"}, {"ev": "disconnect", "nsp", "id",
// "reason"}, {"ev": "adapter_error", "nsp", "message"} (an "error" of the adapter),
// {"ev": "redis_error", "client": "pub" | "sub", "message"}, {"ev": "unhandled_rejection",
// "message"}, none of which ends the process; {"ev": "fatal", "message"} before it dies.
//
// Binary values cross the JSON boundary as {"$buffer": base64} (Node Buffer) and
// {"$arraybuffer": base64} (ArrayBuffer), both ways, exactly like ../node/driver.js.

const http = require("http");
const readline = require("readline");
const { Server } = require("socket.io");
const { createAdapter, createShardedAdapter } = require("@socket.io/redis-adapter");
const { createAdapter: createStreamsAdapter } = require("@socket.io/redis-streams-adapter");
const { createClient, createCluster } = require("redis");

const options = Object.assign(
  { redis: "redis://127.0.0.1:6379", key: "socket.io", variant: "classic", requestsTimeout: 5000 },
  JSON.parse(process.argv[2] || "{}"),
);
const DEFAULT_ACK_TIMEOUT = 5000;

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

function message(err) {
  return String((err && err.message) || err);
}

const pub = options.cluster
  ? createCluster({ rootNodes: options.cluster.map((url) => ({ url })) })
  : createClient({ url: options.redis });
const sub = pub.duplicate();
pub.on("error", (err) => out({ ev: "redis_error", client: "pub", message: message(err) }));
sub.on("error", (err) => out({ ev: "redis_error", client: "sub", message: message(err) }));

const httpServer = http.createServer();
const io = new Server(httpServer, Object.assign({ cors: { origin: "*" } }, options.serverOptions || {}));

// Waits until Redis has carried out every command the adapter queued so far (publishes on pub,
// (un)subscriptions on sub): node-redis sends each client's commands in order on one connection,
// so a PING answered means the commands before it were too. setImmediate first lets an adapter
// that publishes after a microtask hop queue its command.
// On a cluster the sharded subscriptions run on one connection per master that a PING cannot
// follow (pub/sub mode): the masters' publish connections are pinged, then 100 ms more.
async function flush() {
  await new Promise((resolve) => setImmediate(resolve));
  if (options.cluster) {
    await Promise.all(pub.masters.map(async (master) => (await pub.nodeClient(master)).ping()));
    await new Promise((resolve) => setTimeout(resolve, 100));
    return;
  }
  await Promise.all([pub.ping(), sub.ping()]);
}

const observed = new Set(); // namespaces with connection hooks
const clientPolicies = new Map(); // nsp -> Map(event -> policy)
const serverEvents = new Set(); // `${nsp}\0${event}` registered with on_server_event

function nspOf(cmd) {
  return cmd.nsp || "/";
}

function reply(policy, args) {
  return policy.reply === "echo" ? args : dec(policy.reply);
}

function answer(policy, ack, args) {
  if (!ack || policy === undefined || policy.reply === undefined || policy.reply === null) return;
  const res = reply(policy, args);
  if (policy.delayMs) setTimeout(() => ack(...res), policy.delayMs);
  else ack(...res);
}

function observe(name) {
  const nsp = io.of(name);
  if (observed.has(name)) return nsp;
  observed.add(name);
  if (!clientPolicies.has(name)) clientPolicies.set(name, new Map());
  nsp.adapter.on("error", (err) => out({ ev: "adapter_error", nsp: name, message: message(err) }));
  nsp.on("connection", (socket) => {
    out({
      ev: "connection",
      nsp: name,
      id: socket.id,
      rooms: [...socket.rooms],
      recovered: socket.recovered,
      data: enc(socket.data),
    });
    socket.on("disconnect", (reason) => out({ ev: "disconnect", nsp: name, id: socket.id, reason }));
    socket.onAny(async (event, ...args) => {
      let ack = null;
      if (args.length && typeof args[args.length - 1] === "function") ack = args.pop();
      out({ ev: "client_event", nsp: name, id: socket.id, event, args: enc(args), ack: !!ack });
      const policy = clientPolicies.get(name).get(event);
      if (!policy) return;
      try {
        if (policy.join !== undefined && policy.join !== null) {
          await socket.join(policy.join);
          await flush(); // a sharded adapter subscribes to the room's channel
        }
      } catch (err) {
        out({ ev: "adapter_error", nsp: name, message: message(err) });
      }
      answer(policy, ack, args);
    });
  });
  return nsp;
}

function operator(cmd) {
  let op = io.of(nspOf(cmd));
  if (cmd.to && cmd.to.length) op = op.to(cmd.to);
  if (cmd.except && cmd.except.length) op = op.except(cmd.except);
  if (cmd.local) op = op.local;
  if (cmd.volatile) op = op.volatile;
  if (cmd.timeout !== undefined && cmd.timeout !== null) op = op.timeout(cmd.timeout);
  return op;
}

class CommandError extends Error {
  constructor(msg, extra) {
    super(msg);
    this.extra = extra;
  }
}

async function withAck(promise) {
  try {
    return enc(await promise);
  } catch (err) {
    const timedOut = /time/i.test(message(err));
    throw new CommandError(timedOut ? "timeout" : message(err), {
      detail: message(err),
      responses: err.responses === undefined ? null : enc(err.responses),
    });
  }
}

function describeSocket(s) {
  return { id: s.id, rooms: [...s.rooms], data: enc(s.data), handshake: enc(s.handshake) };
}

async function findSocket(cmd) {
  const sockets = await io.of(nspOf(cmd)).in(cmd.id).fetchSockets();
  const socket = sockets.find((s) => s.id === cmd.id);
  if (!socket) throw new Error(`no socket ${cmd.id} in ${nspOf(cmd)}`);
  return socket;
}

async function remote(cmd) {
  const socket = await findSocket(cmd);
  switch (cmd.action) {
    case "emit": {
      const args = dec(cmd.args || []);
      if (!cmd.ack) {
        socket.emit(cmd.event, ...args);
        return null;
      }
      const t = cmd.timeout === undefined || cmd.timeout === null ? DEFAULT_ACK_TIMEOUT : cmd.timeout;
      return withAck(socket.timeout(t).emitWithAck(cmd.event, ...args));
    }
    case "join":
      await socket.join(cmd.room);
      return null;
    case "leave":
      await socket.leave(cmd.room);
      return null;
    case "disconnect":
      socket.disconnect(!!cmd.close);
      return null;
    default:
      throw new Error(`unknown remote action ${cmd.action}`);
  }
}

async function handle(cmd) {
  switch (cmd.op) {
    case "emit":
      operator(cmd).emit(cmd.event, ...dec(cmd.args || []));
      return null;
    case "emit_with_ack": {
      const t = cmd.timeout === undefined || cmd.timeout === null ? DEFAULT_ACK_TIMEOUT : cmd.timeout;
      const op = operator(Object.assign({}, cmd, { timeout: t }));
      return withAck(op.emitWithAck(cmd.event, ...dec(cmd.args || [])));
    }
    case "fetch_sockets":
      return (await operator(cmd).fetchSockets()).map(describeSocket);
    case "remote":
      return remote(cmd);
    case "sockets_join":
      operator(cmd).socketsJoin(cmd.rooms);
      return null;
    case "sockets_leave":
      operator(cmd).socketsLeave(cmd.rooms);
      return null;
    case "disconnect_sockets":
      operator(cmd).disconnectSockets(!!cmd.close);
      return null;
    case "server_side_emit":
      io.of(nspOf(cmd)).serverSideEmit(cmd.event, ...dec(cmd.args || []));
      return null;
    case "server_side_emit_with_ack": {
      // The adapter bounds the wait itself (requestsTimeout for classic, 5 s for sharded, with
      // the partial responses); "timeout" only bounds it further, without them.
      let promise = io.of(nspOf(cmd)).serverSideEmitWithAck(cmd.event, ...dec(cmd.args || []));
      if (cmd.timeout !== undefined && cmd.timeout !== null) {
        let timer;
        const expired = new Promise((resolve, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${cmd.timeout} ms`)), cmd.timeout);
        });
        promise = Promise.race([promise, expired]).finally(() => clearTimeout(timer));
      }
      return withAck(promise);
    }
    case "server_count":
      return io.of(nspOf(cmd)).adapter.serverCount();
    case "all_rooms":
      return [...(await io.of(nspOf(cmd)).adapter.allRooms())];
    case "local_rooms": {
      const rooms = {};
      for (const [room, sids] of io.of(nspOf(cmd)).adapter.rooms) rooms[room] = [...sids];
      return rooms;
    }
    case "on_server_event": {
      const name = nspOf(cmd);
      const policy = { reply: cmd.reply, delayMs: cmd.delayMs };
      const key = `${name}\0${cmd.event}`;
      if (serverEvents.has(key)) throw new Error(`on_server_event ${cmd.event} on ${name} exists`);
      serverEvents.add(key);
      observe(name).on(cmd.event, (...args) => {
        let ack = null;
        if (args.length && typeof args[args.length - 1] === "function") ack = args.pop();
        out({ ev: "server_event", nsp: name, event: cmd.event, args: enc(args), ack: !!ack });
        answer(policy, ack, args);
      });
      return null;
    }
    case "on_client_event":
      observe(nspOf(cmd));
      clientPolicies
        .get(nspOf(cmd))
        .set(cmd.event, { reply: cmd.reply, join: cmd.join, delayMs: cmd.delayMs });
      return null;
    case "set_data": {
      const socket = io.of(nspOf(cmd)).sockets.get(cmd.id);
      if (!socket) throw new Error(`no local socket ${cmd.id} in ${nspOf(cmd)}`);
      socket.data = dec(cmd.data);
      return null;
    }
    case "namespace":
      observe(nspOf(cmd));
      return null;
    case "exit":
      process.exit(0);
      return null;
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
}

async function run(cmd) {
  const result = await handle(cmd);
  await flush();
  return result;
}

process.on("uncaughtException", (err) => {
  out({ ev: "fatal", message: String((err && err.stack) || err) });
  process.exit(1);
});
// The adapters publish without awaiting: a failing publish must show, not kill the server.
process.on("unhandledRejection", (err) => {
  out({ ev: "unhandled_rejection", message: String((err && err.stack) || err) });
});

async function main() {
  await Promise.all([pub.connect(), sub.connect()]);
  if (options.variant === "classic") {
    const opts = { key: options.key, requestsTimeout: options.requestsTimeout };
    if (options.publishOnSpecificResponseChannel !== undefined) {
      opts.publishOnSpecificResponseChannel = options.publishOnSpecificResponseChannel;
    }
    io.adapter(createAdapter(pub, sub, opts));
  } else if (options.variant === "sharded") {
    // (on a cluster, createShardedAdapter sums PUBSUB SHARDNUMSUB over pub.masters)
    const opts = { channelPrefix: options.key };
    if (options.subscriptionMode !== undefined) opts.subscriptionMode = options.subscriptionMode;
    io.adapter(createShardedAdapter(pub, sub, opts));
  } else if (options.variant === "streams") {
    io.adapter(
      createStreamsAdapter(pub, {
        streamName: options.key,
        channelPrefix: options.key,
        sessionKeyPrefix: `${options.key}:session:`,
      }),
    );
  } else {
    throw new Error(`unknown variant ${options.variant}`);
  }
  observe("/");
  await new Promise((resolve, reject) => {
    httpServer.once("error", reject);
    httpServer.listen(0, "127.0.0.1", resolve);
  });
  await flush(); // the adapter's subscriptions are in place: serverCount() counts this server
  if (options.variant === "streams") {
    // its own connections (duplicates of pub) subscribe and start reading the stream at "$"
    // once connected, which nothing here can observe: give them time before saying ready
    await new Promise((resolve) => setTimeout(resolve, 300));
  }

  const rl = readline.createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    if (!line.trim()) return;
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch (err) {
      out({ ev: "error", seq: null, message: `bad json: ${message(err)}` });
      return;
    }
    run(cmd).then(
      (result) => {
        if (cmd.seq === undefined) return;
        out({ ev: "done", seq: cmd.seq, op: cmd.op, result: result === undefined ? null : result });
      },
      (err) => {
        const extra = err.extra || {};
        out(Object.assign({ ev: "error", seq: cmd.seq, op: cmd.op, message: message(err) }, extra));
      },
    );
  });
  // The test went away (or closed our stdin on purpose): do not linger.
  rl.on("close", () => process.exit(0));
  out({
    ev: "ready",
    pid: process.pid,
    port: httpServer.address().port,
    variant: options.variant,
    key: options.key,
    version: require("socket.io/package.json").version,
    adapterVersion: require(
      options.variant === "streams"
        ? "@socket.io/redis-streams-adapter/package.json"
        : "@socket.io/redis-adapter/package.json",
    ).version,
  });
}

main().catch((err) => {
  out({ ev: "fatal", message: String((err && err.stack) || err) });
  process.exit(1);
});
