"use strict";
// The Node peer of bench/client_echo.py: socket.io-client 4.8 echo load from one process.
//
//   node bench/client_echo.js URL SOCKETS INFLIGHT WARMUP_S DURATION_S SIZE
//
// Connects SOCKETS clients over WebSocket (one Manager each), keeps INFLIGHT "echo" events of a
// SIZE-character string in flight per socket (a reply sends the next one), checks every reply,
// and prints one JSON line: {"messages", "seconds", "rate", "cpu", "mismatches"} for the
// DURATION_S seconds that follow WARMUP_S seconds of warm-up.

const { io } = require("socket.io-client");

const [url, sockets, inflight, warmup, duration, size] = process.argv.slice(2);
const n = Number(sockets);
const m = Number(inflight);
const payload = "x".repeat(Number(size));
let count = 0;
let mismatches = 0;
let connected = 0;
const clients = [];

function start() {
  for (const client of clients) for (let i = 0; i < m; i++) client.emit("echo", payload);
  setTimeout(() => {
    const begin = count;
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    setTimeout(() => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const cpu = process.cpuUsage(cpu0);
      const messages = count - begin;
      process.stdout.write(
        JSON.stringify({
          messages,
          seconds,
          rate: messages / seconds,
          cpu: (cpu.user + cpu.system) / 1e6 / seconds,
          mismatches,
        }) + "\n",
        () => process.exit(0),
      );
    }, Number(duration) * 1000);
  }, Number(warmup) * 1000);
}

for (let i = 0; i < n; i++) {
  const client = io(url, { transports: ["websocket"], reconnection: false, forceNew: true });
  client.on("echo", (msg) => {
    count++;
    if (msg !== payload) mismatches++;
    client.emit("echo", msg);
  });
  client.once("connect", () => {
    if (++connected === n) start();
  });
  client.on("connect_error", (err) => {
    process.stderr.write(`connect_error: ${err.message}\n`);
    process.exit(1);
  });
  clients.push(client);
}
