// The benchmark app on Node's socket.io 4.8 (default `ws` engine; ws picks up bufferutil by itself).
// "echo" -> emit "echo" back to the sender with the same payload; "broadcast" -> emit "tick" to all;
// "join" -> join the room BENCH_ROOM and answer "joined"; "broadcast_room" -> emit "tick" to that room.
// Usage: node node_app.js [host] [port]
// BENCH_REDIS=redis://... makes the server a cluster node on that Redis: @socket.io/redis-adapter 8.3
// (classic createAdapter(pub, sub, {key})) on node-redis 4.7, key BENCH_REDIS_KEY (default
// "socket.io"); BENCH_ROOM names the room (default "room").
// BENCH_DEFLATE=1 turns perMessageDeflate on with {threshold: 1024} (the driver's broadcast-deflate).
"use strict";

const http = require("http");
const { Server } = require("socket.io");

const host = process.argv[2] || "127.0.0.1";
const port = Number(process.argv[3] || 3000);
const redisUrl = process.env.BENCH_REDIS || "";
const key = process.env.BENCH_REDIS_KEY || "socket.io";
const room = process.env.BENCH_ROOM || "room";

const httpServer = http.createServer();
const io = new Server(httpServer, {
  // socket.io's defaults, spelled out: no per-message deflate, 1 MB max payload.
  perMessageDeflate: process.env.BENCH_DEFLATE ? { threshold: 1024 } : false,
  maxHttpBufferSize: 1e6,
});

io.on("connection", (socket) => {
  socket.on("echo", (data) => socket.emit("echo", data));
  socket.on("broadcast", (data) => io.emit("tick", data));
  socket.on("join", () => {
    socket.join(room);
    socket.emit("joined");
  });
  socket.on("broadcast_room", (data) => io.to(room).emit("tick", data));
});

async function main() {
  let cluster = "";
  if (redisUrl) {
    const { createAdapter } = require("@socket.io/redis-adapter");
    const { createClient } = require("redis");
    const pub = createClient({ url: redisUrl });
    const sub = pub.duplicate();
    for (const [name, client] of [["pub", pub], ["sub", sub]]) {
      client.on("error", (err) => console.error(`redis ${name} client: ${err.message}`));
    }
    await Promise.all([pub.connect(), sub.connect()]);
    io.adapter(createAdapter(pub, sub, { key }));
    // (its subscriptions complete asynchronously: the load generator probes until both nodes deliver)
    const version = require("@socket.io/redis-adapter/package.json").version;
    cluster = `, @socket.io/redis-adapter ${version} on ${redisUrl} key ${JSON.stringify(key)}`;
  }
  await new Promise((resolve, reject) => {
    httpServer.once("error", reject);
    httpServer.listen(port, host, resolve);
  });
  let bufferutil = "absent";
  try {
    require("bufferutil");
    bufferutil = "loaded";
  } catch (e) {
    // ws falls back to its JavaScript masking
  }
  console.log(
    `node socket.io ${require("socket.io/package.json").version} listening on ${host}:${port}` +
      ` (bufferutil ${bufferutil}${cluster})`,
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(0));
