"use strict";
// Opens many socket.io-client connections over WebSocket from one process.
//
//   node many_clients.js <server url> '{"count": 500, "event": "hello", "timeoutMs": 10000}'
//
// stdout (JSON lines): {"ev": "ready"}, then {"ev": "all_connected", "count", "ms"} once every
// client is connected, then {"ev": "all_received", "count", "ms", "payloads"} once every client got
// `event` from the server (payloads: the distinct payloads seen). On timeout:
// {"ev": "timeout", "connected", "received", "errors"} and exit code 2.
// stdin: {"op": "exit"} closes every client and exits.

const readline = require("readline");
const { io } = require("socket.io-client");

const url = process.argv[2];
const { count = 500, event = "hello", timeoutMs = 10000, opts = {} } = JSON.parse(process.argv[3] || "{}");

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

const started = Date.now();
const sockets = [];
const payloads = new Set();
let connected = 0;
let received = 0;
let errors = 0;
const errorMessages = new Set();

for (let i = 0; i < count; i++) {
  const socket = io(url, Object.assign({ forceNew: true, transports: ["websocket"], reconnection: false }, opts));
  let gotConnect = false;
  let gotEvent = false;
  socket.on("connect", () => {
    if (gotConnect) return;
    gotConnect = true;
    connected += 1;
    if (connected === count) out({ ev: "all_connected", count, ms: Date.now() - started });
  });
  socket.on("connect_error", (err) => {
    errors += 1;
    errorMessages.add(err.message);
  });
  socket.on(event, (payload) => {
    if (gotEvent) return;
    gotEvent = true;
    received += 1;
    payloads.add(JSON.stringify(payload));
    if (received === count) {
      out({ ev: "all_received", count, ms: Date.now() - started, payloads: [...payloads] });
    }
  });
  sockets.push(socket);
}

setTimeout(() => {
  if (received === count) return;
  out({ ev: "timeout", connected, received, errors, errorMessages: [...errorMessages] });
  process.exit(2);
}, timeoutMs).unref();

function shutdown() {
  for (const socket of sockets) socket.disconnect();
  process.exit(0);
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (line.trim() && JSON.parse(line).op === "exit") shutdown();
});
rl.on("close", shutdown);
out({ ev: "ready", pid: process.pid });
