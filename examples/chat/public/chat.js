// The chat page. Plain JavaScript, no build step; `io` comes from /socket.io/socket.io.js.
// Written for socket.io-client 4.x. The few lines marked "2.x:" let it run with socket.io-client
// 2.x too (on a server with allow_eio3=True); a page for 4.x only can leave them out.
"use strict";

const $ = (id) => document.getElementById(id);
const input = $("input");
const sendButton = document.querySelector("#form button");
const messages = $("messages");
const params = new URLSearchParams(location.search);
const room = params.get("room") || "general";
$("room-name").textContent = "#" + room;

// The main namespace waits for a name (the server's middleware refuses a connection without one).
// `query` reaches the server as socket.handshake.query; `auth` as socket.handshake.auth.
const socket = io({ autoConnect: false, query: { room } });
// A second namespace, multiplexed over the same connection: the server pushes counts here. It is
// connected in join() too, so that no connection opens before the name is known.
const stats = io("/stats", { autoConnect: false });

// -- joining ----------------------------------------------------------------------------------

const dialog = $("name-dialog");
const nameInput = $("name-input");

function join(name) {
  socket.auth = { name };
  // 2.x: no `auth` there, so the name goes in the query too (the server reads either).
  socket.io.opts.query = { room, name };
  // 2.x: "/" is connected once per connection, as it opens, so a retry after a refusal closes
  // it and connect() opens a new one. (socket.timeout, from 4.4 on, tells the versions apart.)
  if (socket.io.engine && !socket.timeout) socket.io.close();
  socket.connect();
  stats.connect();
}

function askName(error) {
  setOnline(false, "not connected");
  $("name-error").textContent = error || "";
  nameInput.value ||= sessionStorage.getItem("chat-name") || "guest-" + Math.floor(Math.random() * 9000 + 1000);
  if (!dialog.open) dialog.showModal();
  nameInput.select();
}

$("name-form").addEventListener("submit", () => join(nameInput.value.trim()));
dialog.addEventListener("cancel", (event) => event.preventDefault()); // a name is required

const knownName = params.get("name") || sessionStorage.getItem("chat-name");
if (knownName) join(knownName);
else askName();

// -- connection state -------------------------------------------------------------------------

function setOnline(online, text) {
  $("status").textContent = text;
  $("status").classList.toggle("online", online);
  input.disabled = sendButton.disabled = !online;
}

socket.on("connect", () => {
  sessionStorage.setItem("chat-name", socket.auth.name);
  setOnline(true, "connected as " + socket.auth.name);
  addNotice("you joined #" + room + " as " + socket.auth.name);
  input.focus();
});

socket.on("connect_error", (err) => {
  // (`!== false`, not just `socket.active`: 2.x has no `active`, and a refusal comes as "error")
  if (socket.active !== false) {
    setOnline(false, "reconnecting…"); // a network problem: the client retries by itself
  } else {
    askName(err.message); // refused by the middleware: err.message (and err.data) say why
  }
});

// 2.x: a refusal by the middleware comes as an "error" event with the refusal's data (or its
// message when it has none). An Error object is a network problem, retried as above.
socket.on("error", (err) => {
  if (err instanceof Error) return;
  askName(typeof err === "string" ? err : "Please check the " + err.field);
});

socket.on("disconnect", (reason) => setOnline(false, "disconnected (" + reason + ")"));

// -- messages ---------------------------------------------------------------------------------

function addItem(className) {
  const item = document.createElement("li");
  if (className) item.className = className;
  messages.appendChild(item);
  messages.scrollTop = messages.scrollHeight;
  return item;
}

function addSpan(parent, className, text) {
  const span = document.createElement("span");
  span.className = className;
  span.textContent = text; // textContent, never innerHTML: messages are untrusted text
  parent.appendChild(span);
  return span;
}

function addMessage(name, text, className) {
  const item = addItem(className);
  addSpan(item, "name", name);
  addSpan(item, "text", text);
  return item;
}

const addNotice = (text, className = "notice") => addSpan(addItem(), className, text);

// socket.timeout(ms).emit(...): the callback gets (err, response); err when no ack came in time.
function emitWithTimeout(ms, event, arg, callback) {
  if (socket.timeout) return socket.timeout(ms).emit(event, arg, callback);
  // 2.x: no timeout(), so the same by hand
  let pending = true;
  const settle = (err, response) => {
    if (!pending) return;
    pending = false;
    clearTimeout(timer);
    callback(err, response);
  };
  const timer = setTimeout(() => settle(new Error("operation has timed out")), ms);
  socket.emit(event, arg, (response) => settle(null, response));
}

$("form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  setTyping(false);

  const item = addMessage(socket.auth.name, text, "mine");
  const delivery = addSpan(item, "delivery", "sending…");
  // The server's handler returns the acknowledgement; no answer within 5 s counts as a failure.
  emitWithTimeout(5000, "chat message", text, (err, response) => {
    const ok = !err && response && response.ok;
    delivery.textContent = ok ? (response.private ? "✓ (private reply)" : "✓ delivered") : "✗ not delivered";
    delivery.classList.add(ok ? "ok" : "failed");
  });
});

socket.on("chat message", ({ name, text }) => addMessage(name, text));
socket.on("private", (text) => addNotice("only you can see this: " + text, "private"));
socket.on("user joined", ({ name }) => addNotice(name + " joined #" + room));
socket.on("user left", ({ name }) => {
  typists.delete(name);
  showTypists();
  addNotice(name + " left");
});

socket.on("members", (names) => {
  $("members").replaceChildren(...names.map((name) => {
    const item = document.createElement("li");
    item.textContent = name;
    return item;
  }));
});

// -- typing indicator -------------------------------------------------------------------------

const typists = new Set();
let typing = false;
let typingTimer;

function setTyping(value) {
  clearTimeout(typingTimer);
  if (value) typingTimer = setTimeout(() => setTyping(false), 1500);
  if (value !== typing && socket.connected) socket.emit("typing", value);
  typing = value;
}

function showTypists() {
  const names = [...typists];
  $("typing").textContent = names.length === 0 ? ""
    : names.join(", ") + (names.length === 1 ? " is" : " are") + " typing…";
}

input.addEventListener("input", () => setTyping(input.value !== ""));
socket.on("typing", ({ name, typing }) => {
  if (typing) typists.add(name);
  else typists.delete(name);
  showTypists();
});

// -- the /stats namespace ---------------------------------------------------------------------

stats.on("stats", ({ users, rooms }) => {
  $("stats-users").textContent = users;
  $("stats-rooms").textContent = Object.entries(rooms)
    .map(([name, count]) => " · #" + name + " " + count)
    .join("");
});
stats.on("disconnect", () => ($("stats-users").textContent = "–"));
