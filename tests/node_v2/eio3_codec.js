"use strict";
// engine.io-parser 2.x (Engine.IO v3, as socket.io-client 2.x bundles it) as a reference for
// fastsio's v3 payload codec. Reads one JSON document on stdin:
//   {"parser": "sio2" | "sio2-last",
//    "encode": [{"packets": [[type, "text" | {"$buffer": b64}], ...], "binary": bool}, ...],
//    "decode": [{"text": "..."} | {"buffer": b64}, ...]}
// and writes {"encoded": [{"text"} | {"buffer"}], "decoded": [[[type, data], ...] | "error"]}.

const path = require("path");

function parserOf(name) {
  const client = path.dirname(require.resolve(`${name}/package.json`));
  return require(require.resolve("engine.io-parser", { paths: [client] }));
}

function fromJson(data) {
  return data && typeof data.$buffer === "string" ? Buffer.from(data.$buffer, "base64") : data;
}

function toJson(data) {
  if (Buffer.isBuffer(data)) return { $buffer: data.toString("base64") };
  if (data instanceof ArrayBuffer) return { $buffer: Buffer.from(data).toString("base64") };
  return data === undefined ? "" : data;
}

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const job = JSON.parse(input);
  const parser = parserOf(job.parser);
  const names = Object.keys(parser.packets);
  const encoded = job.encode.map(({ packets, binary }) => {
    let result;
    const list = packets.map(([type, data]) => ({ type: names[type], data: fromJson(data) }));
    parser.encodePayload(list, binary, (out) => (result = out));
    return typeof result === "string" ? { text: result } : { buffer: result.toString("base64") };
  });
  const decoded = job.decode.map((item) => {
    const data = item.text !== undefined ? item.text : Buffer.from(item.buffer, "base64");
    const out = [];
    let failed = false;
    parser.decodePayload(data, (packet) => {
      if (packet.type === "error") failed = true;
      else out.push([names.indexOf(packet.type), toJson(packet.data)]);
    });
    return failed ? "error" : out;
  });
  process.stdout.write(JSON.stringify({ encoded, decoded }));
});
