// The chat page. Plain JavaScript, no build step; `io` comes from /socket.io/socket.io.js.
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
// A second namespace, multiplexed over the same connection: the server pushes counts here. It
// shares the Manager made above with autoConnect: false, so it is connected explicitly.
const stats = io("/stats").connect();

// -- joining ----------------------------------------------------------------------------------

const dialog = $("name-dialog");
const nameInput = $("name-input");

function join(name) {
  socket.auth = { name };
  socket.connect();
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
  if (socket.active) {
    setOnline(false, "reconnecting…"); // a network problem: the client retries by itself
  } else {
    askName(err.message); // refused by the middleware: err.message (and err.data) say why
  }
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

$("form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  setTyping(false);

  const item = addMessage(socket.auth.name, text, "mine");
  const delivery = addSpan(item, "delivery", "sending…");
  // The server's handler returns the acknowledgement; no answer within 5 s counts as a failure.
  socket.timeout(5000).emit("chat message", text, (err, response) => {
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
