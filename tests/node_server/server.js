"use strict";
// A socket.io server for fastsio's client tests, driven over JSON lines.
//
//   node server.js '<json options>'
//
// Options: {"port": 0, "path": "/socket.io", "parser": "msgpack", "recovery": false,
//           "tls": {"key": file, "cert": file}, "transports": [...], "pingInterval": ms,
//           "pingTimeout": ms, "cookie": false, "v2": false}
// "v2": true runs socket.io 2.5 (Engine.IO v3, the 2.x protocol) instead, with no behaviour:
// only to see that the client refuses it clearly. "recovery": connectionStateRecovery on (2 min).
// "cookie": the handshake sets a cookie "sticky"; requests that carry one are observed as
// {"ev": "cookie", "cookie", "url"}.
// Prints {"ev": "ready", "port"} once listening.
//
// Namespaces "/" and "/admin" (a CONNECT with auth {"token": "bad"} is refused there with
// message "bad token" and data {"reason": "token"}), and "/refused" (every CONNECT refused:
// "not authorized", data {"content": "retry later"}).
//
// What the server does by itself with a client's events (on every namespace):
//   any event              observed: {"ev": "event", "nsp", "id", "event", "args", "ack": bool};
//                          an ack the client asks for is answered with the event's own args
//   "echo"                 socket.emit("echo", ...args)
//   "ask"                  socket.timeout(3000).emit("question", ...args, cb): the client's
//                          answer is observed as {"ev": "answer", "id", "error", "args"}
//   "close_conn"           socket.conn.close(): the transport closes under the client
//   "disconnect_me"        socket.disconnect() (the client sees "io server disconnect")
//   "broadcast"            io.of(nsp).emit("tick", ...args)
// Commands on stdin (a "seq" is answered with {"ev": "done", "seq"}):
//   {"op": "emit", "nsp", "to": room-or-id, "event", "args"}   (without "to": everyone)
//   {"op": "close_conn", "id"}  {"op": "disconnect", "id", "nsp"}  {"op": "exit"}
// Observations: connection {nsp, id, auth, recovered, transport}, upgrade {id, transport},
// disconnect {nsp, id, reason}, event, answer.
//
// Binary crosses the JSON boundary as {"$buffer": base64} both ways, as ../node/driver.js.

const fs = require("fs");
const readline = require("readline");

const options = Object.assign({ port: 0 }, JSON.parse(process.argv[2] || "{}"));

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function enc(v) {
  if (Buffer.isBuffer(v)) return { $buffer: v.toString("base64") };
  if (v instanceof ArrayBuffer) return { $buffer: Buffer.from(v).toString("base64") };
  if (ArrayBuffer.isView(v)) {
    return { $buffer: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") };
  }
  if (Array.isArray(v)) return v.map(enc);
  if (v === undefined) return null;
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
    const o = {};
    for (const k of Object.keys(v)) o[k] = dec(v[k]);
    return o;
  }
  return v;
}

function listen(httpServer) {
  httpServer.listen(options.port, "127.0.0.1", () => {
    out({ ev: "ready", port: httpServer.address().port });
  });
}

function makeHttpServer() {
  if (options.tls) {
    return require("https").createServer({
      key: fs.readFileSync(options.tls.key),
      cert: fs.readFileSync(options.tls.cert),
    });
  }
  return require("http").createServer();
}

if (options.v2) {
  const httpServer = makeHttpServer();
  const io = require("sio2-server")(httpServer, { path: options.path || "/socket.io" });
  io.on("connection", (socket) => out({ ev: "connection", nsp: "/", id: socket.id }));
  listen(httpServer);
} else {
  const { Server } = require("socket.io");
  const httpServer = makeHttpServer();
  const serverOptions = { cors: { origin: "*" } };
  if (options.path) serverOptions.path = options.path;
  if (options.transports) serverOptions.transports = options.transports;
  if (options.pingInterval) serverOptions.pingInterval = options.pingInterval;
  if (options.pingTimeout) serverOptions.pingTimeout = options.pingTimeout;
  if (options.parser === "msgpack") serverOptions.parser = require("socket.io-msgpack-parser");
  if (options.cookie) {
    // a sticky-session cookie; every later request that carries it is observed
    serverOptions.cookie = { name: "sticky", httpOnly: true };
    const seen = (req) => {
      if (req.headers.cookie) out({ ev: "cookie", cookie: req.headers.cookie, url: req.url });
    };
    httpServer.prependListener("request", seen);
    httpServer.prependListener("upgrade", seen);
  }
  if (options.recovery) {
    serverOptions.connectionStateRecovery = {
      maxDisconnectionDuration: 2 * 60 * 1000,
      skipMiddlewares: true,
    };
  }
  const io = new Server(httpServer, serverOptions);

  function setup(nsp) {
    nsp.use((socket, next) => {
      if (socket.handshake.auth && socket.handshake.auth.token === "bad") {
        const err = new Error("bad token");
        err.data = { reason: "token" };
        return next(err);
      }
      next();
    });
    nsp.on("connection", (socket) => {
      out({
        ev: "connection",
        nsp: nsp.name,
        id: socket.id,
        auth: socket.handshake.auth,
        recovered: socket.recovered,
        transport: socket.conn.transport.name,
      });
      socket.conn.once("upgrade", (transport) => {
        out({ ev: "upgrade", id: socket.id, transport: transport.name });
      });
      socket.on("disconnect", (reason) => out({ ev: "disconnect", nsp: nsp.name, id: socket.id, reason }));
      socket.onAny((event, ...args) => {
        let ack = null;
        if (args.length && typeof args[args.length - 1] === "function") ack = args.pop();
        out({ ev: "event", nsp: nsp.name, id: socket.id, event, args: enc(args), ack: !!ack });
        if (ack && event !== "noack") ack(...args);
        if (event === "echo") socket.emit("echo", ...args);
        else if (event === "ask") {
          socket.timeout(3000).emit("question", ...args, (err, ...answers) => {
            out({ ev: "answer", id: socket.id, error: err ? String(err.message || err) : null, args: enc(answers) });
          });
        } else if (event === "close_conn") socket.conn.close();
        else if (event === "disconnect_me") socket.disconnect();
        else if (event === "broadcast") nsp.emit("tick", ...args);
      });
    });
  }
  setup(io.of("/"));
  setup(io.of("/admin"));
  io.of("/refused").use((socket, next) => {
    const err = new Error("not authorized");
    err.data = { content: "retry later" };
    next(err);
  });

  const rl = readline.createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch (e) {
      return;
    }
    const nsp = io.of(cmd.nsp || "/");
    try {
      if (cmd.op === "emit") {
        const target = cmd.to ? nsp.to(cmd.to) : nsp;
        target.emit(cmd.event, ...dec(cmd.args || []));
      } else if (cmd.op === "close_conn") {
        const socket = nsp.sockets.get(cmd.id);
        if (socket) socket.conn.close();
      } else if (cmd.op === "disconnect") {
        const socket = nsp.sockets.get(cmd.id);
        if (socket) socket.disconnect();
      } else if (cmd.op === "exit") {
        process.exit(0);
      }
      if (cmd.seq !== undefined) out({ ev: "done", seq: cmd.seq, op: cmd.op });
    } catch (e) {
      if (cmd.seq !== undefined) out({ ev: "error", seq: cmd.seq, op: cmd.op, message: String(e) });
    }
  });
  rl.on("close", () => process.exit(0));
  listen(httpServer);
}
