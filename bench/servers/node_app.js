// The benchmark app on Node's socket.io 4.8 (default `ws` engine; ws picks up bufferutil by itself).
// "echo" -> emit "echo" back to the sender with the same payload; "broadcast" -> emit "tick" to all.
// Usage: node node_app.js [host] [port]
"use strict";

const http = require("http");
const { Server } = require("socket.io");

const host = process.argv[2] || "127.0.0.1";
const port = Number(process.argv[3] || 3000);

const httpServer = http.createServer();
const io = new Server(httpServer, {
  // socket.io's defaults, spelled out: no per-message deflate, 1 MB max payload.
  perMessageDeflate: false,
  maxHttpBufferSize: 1e6,
});

io.on("connection", (socket) => {
  socket.on("echo", (data) => socket.emit("echo", data));
  socket.on("broadcast", (data) => io.emit("tick", data));
});

httpServer.listen(port, host, () => {
  let bufferutil = "absent";
  try {
    require("bufferutil");
    bufferutil = "loaded";
  } catch (e) {
    // ws falls back to its JavaScript masking
  }
  console.log(`node socket.io ${require("socket.io/package.json").version} listening on ${host}:${port} (bufferutil ${bufferutil})`);
});

for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(0));
