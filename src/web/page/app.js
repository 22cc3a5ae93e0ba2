/**
 * The hub's page: a live monitor, the endpoints, a keyboard and a Web MIDI
 * bridge, over the WebSocket at `/midi`. Binary frames carry MIDI both ways
 * (whole messages, raw bytes); text frames carry the server's JSON: `token`
 * (send it now), `welcome` (with how often to send active sensing, so that
 * an open page never counts as idle, and, from a server that speaks time,
 * the hub's playout delay), `latency`, `time`, `refused`, `endpoints`,
 * `monitor`. Frames and fields the page does not know are ignored.
 *
 * Time (see src/web/_protocol.ts): the page keeps a map of its clock
 * (`performance.now()`) to the hub's, from an NTP-style exchange it runs
 * over the socket, with the hub's own estimator (`sync.js`, made from
 * src/time/sync.ts). What it plays goes to the hub with when it was played;
 * while it plays the hub on a MIDI output (and the hub has a delay), it
 * tells the hub it schedules: the hub then sends it everything at once,
 * each batch with its time, and the page has the browser play each at that
 * time plus the hub's delay (`MIDIOutput.send(data, timestamp)`).
 *
 * Plain JavaScript for the browser, with JSDoc types that
 * `tests/web_test.ts` checks against the DOM's (`deno check` with
 * `tests/_page_check.json`); no build step, nothing from the network.
 */

import { ClockSync } from "./sync.js";

const NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"];
/**
 * White keys on the screen: two octaves and the C above where there is
 * room, at least an octave; a white key is never narrower than a finger
 * while there are more than 7.
 */
const MOST_WHITES = 15;
const LEAST_WHITES = 7;
/** The narrowest white key, in CSS pixels (a fingertip). */
const FINGER_PX = 44;
/** Monitor lines shown at most. */
const KEEP = 1000;
/** How long drawing the monitor may take in one frame, in milliseconds. */
const FRAME_BUDGET_MS = 8;
/**
 * Lines drawn at most at a time (laying them out costs the browser more
 * than making them).
 */
const ROWS_PER_DRAW = 250;
/** While lines keep coming, the monitor is drawn at most this often. */
const DRAW_EVERY_MS = 50;
const FIRST_RETRY_MS = 500;
const LONGEST_RETRY_MS = 10_000;
/** How long a key played from the keyboard focus (Enter, Space) sounds. */
const TAP_MS = 300;
const TOKEN_KEY = "midisock-token";

/**
 * How often the page asks the hub's time, by how long it has asked: often
 * at first (the estimator maps the clocks from the last second's exchanges
 * until it has 4 s of them to fit the drift), then every 250 ms, which
 * keeps the map within about half a millisecond over Wi-Fi.
 */
const SYNC_STEPS = [[2000, 25], [5000, 100]];
const SYNC_EVERY_MS = 250;
/** Exchanges before the page trusts its map of the hub's clock. */
const SYNC_READY = 5;
/** The first byte of a timed frame: then its time (float64, big-endian). */
const TIMED = 0x01;
const TIMED_HEAD = 9;
/** A key lit this soon or sooner is lit at once. */
const LIGHT_AHEAD_MS = 4;

/** Close codes that need the user before trying again. */
const CLOSE_TOKEN = 4401;
const CLOSE_NOT_ALLOWED = 4403;

/** Computer keys, by `KeyboardEvent.code`, and the key they play. */
const LOWER_ROW = [
  "KeyZ",
  "KeyS",
  "KeyX",
  "KeyD",
  "KeyC",
  "KeyV",
  "KeyG",
  "KeyB",
  "KeyH",
  "KeyN",
  "KeyJ",
  "KeyM",
  "Comma",
  "KeyL",
  "Period",
  "Semicolon",
  "Slash",
];
const UPPER_ROW = [
  "KeyQ",
  "Digit2",
  "KeyW",
  "Digit3",
  "KeyE",
  "KeyR",
  "Digit5",
  "KeyT",
  "Digit6",
  "KeyY",
  "Digit7",
  "KeyU",
  "KeyI",
  "Digit9",
  "KeyO",
  "Digit0",
  "KeyP",
];
/** @type {Map<string, number>} */
const KEY_OFFSETS = new Map([
  ...LOWER_ROW.map((code, i) => /** @type {[string, number]} */ ([code, i])),
  ...UPPER_ROW.map((
    code,
    i,
  ) => /** @type {[string, number]} */ ([code, i + 12])),
]);
/** The label of the computer key that plays each on-screen key. */
const KEY_HINTS = [
  ..."ZSXDCVGBHNJM",
  ..."Q2W3ER5T6Y7UI",
];

/** Message types shown by each filter. */
/** @type {Record<string, (type: string) => boolean>} */
const FILTERS = {
  "": () => true,
  notes: (t) => t === "note_on" || t === "note_off",
  controls: (t) => t === "control_change",
  programs: (t) => t === "program_change",
  bend: (t) => t === "pitchwheel",
  pressure: (t) => t === "aftertouch" || t === "polytouch",
  sysex: (t) => t === "sysex",
  clock: (t) => ["clock", "start", "stop", "continue", "songpos"].includes(t),
  system: (t) =>
    ["quarter_frame", "song_select", "tune_request", "active_sensing", "reset"]
      .includes(t),
  "no-clock": (t) => t !== "clock" && t !== "active_sensing",
};

/**
 * An element of the page, by id.
 * @template {HTMLElement} T
 * @param {string} id
 * @param {new () => T} type
 * @returns {T}
 */
function $(id, type) {
  const element = document.getElementById(id);
  if (!(element instanceof type)) throw new Error(`No #${id}`);
  return element;
}

const ui = {
  where: $("where", HTMLElement),
  status: $("status", HTMLElement),
  statusText: $("status-text", HTMLElement),
  retry: $("retry", HTMLButtonElement),
  tokenForm: $("token-form", HTMLFormElement),
  tokenWhy: $("token-why", HTMLElement),
  token: $("token", HTMLInputElement),
  channel: $("channel", HTMLSelectElement),
  velocity: $("velocity", HTMLInputElement),
  velocityValue: $("velocity-value", HTMLOutputElement),
  octaveDown: $("octave-down", HTMLButtonElement),
  octaveUp: $("octave-up", HTMLButtonElement),
  octaveValue: $("octave-value", HTMLOutputElement),
  keyboard: $("keyboard", HTMLElement),
  filter: $("filter", HTMLSelectElement),
  pause: $("pause", HTMLButtonElement),
  clear: $("clear", HTMLButtonElement),
  count: $("monitor-count", HTMLElement),
  log: $("log", HTMLElement),
  endpoints: $("endpoints", HTMLUListElement),
  endpointsEmpty: $("endpoints-empty", HTMLElement),
  endpointCount: $("endpoint-count", HTMLElement),
  midiNone: $("midi-none", HTMLElement),
  midiNoneWhy: $("midi-none-why", HTMLElement),
  midiOff: $("midi-off", HTMLElement),
  midiOn: $("midi-on", HTMLElement),
  midiEnable: $("midi-enable", HTMLButtonElement),
  midiInput: $("midi-input", HTMLSelectElement),
  midiOutput: $("midi-output", HTMLSelectElement),
  midiEcho: $("midi-echo", HTMLInputElement),
  midiError: $("midi-error", HTMLElement),
  midiTiming: $("midi-timing", HTMLElement),
};

// ---------------------------------------------------------------------------
// MIDI bytes

/**
 * The length of the message a status byte starts (0 for a data byte; sysex
 * runs to its F7).
 * @param {number} status
 */
function sizeOf(status) {
  if (status < 0x80) return 0;
  if (status < 0xf0) {
    const kind = status & 0xf0;
    return kind === 0xc0 || kind === 0xd0 ? 2 : 3;
  }
  if (status === 0xf1 || status === 0xf3) return 2;
  if (status === 0xf2) return 3;
  return 1;
}

/**
 * Splits a frame of whole messages into messages.
 * @param {Uint8Array<ArrayBuffer>} bytes
 * @returns {Uint8Array<ArrayBuffer>[]}
 */
function splitMessages(bytes) {
  /** @type {Uint8Array<ArrayBuffer>[]} */
  const out = [];
  for (let i = 0; i < bytes.length;) {
    const status = bytes[i];
    const size = status === 0xf0
      ? bytes.indexOf(0xf7, i) - i + 1
      : sizeOf(status);
    if (size <= 0 || i + size > bytes.length) break;
    out.push(bytes.subarray(i, i + size));
    i += size;
  }
  return out;
}

/** @param {number} note */
function noteName(note) {
  return `${NAMES[note % 12]}${Math.floor(note / 12) - 1}`;
}

// ---------------------------------------------------------------------------
// Connection

/** @type {WebSocket | undefined} */
let socket;
/** Whether the server said welcome on the current socket. */
let admitted = false;
/** This page's endpoint id. */
let selfId = 0;
let attempt = 0;
/** @type {ReturnType<typeof setTimeout> | undefined} */
let retryTimer;
/** @type {ReturnType<typeof setInterval> | undefined} */
let countdownTimer;
/** Set while the page waits for the user (a token, an address refused). */
let waitingForUser = false;
/** @type {{ code: string, reason: string } | undefined} */
let refusal;
/** Sends active sensing while the page is in, so it never counts as idle. */
/** @type {ReturnType<typeof setInterval> | undefined} */
let keepAliveTimer;
const ACTIVE_SENSING = new Uint8Array([0xfe]);
let token = sessionStorage.getItem(TOKEN_KEY) ?? "";
/** Whether the server speaks time (its welcome says so). */
let timeSpoken = false;
/** The hub's playout delay, in ms (0: none). */
let hubDelay = 0;
/** The map of this page's clock to the hub's, for the current socket. */
let hubClock = new ClockSync();
/** When the page began asking the hub's time, and last asked. */
let syncStart = 0;
let askedAt = -Infinity;
/** @type {ReturnType<typeof setTimeout> | undefined} */
let syncTimer;
/** Whether the server was told that the page schedules what it plays. */
let timedSent = false;
/** Timed messages that came after their time (played at once). */
let late = 0;

/**
 * @param {"connecting" | "connected" | "retrying" | "refused"} state
 * @param {string} text
 */
function setStatus(state, text) {
  ui.status.dataset.state = state;
  ui.statusText.textContent = text;
  ui.retry.hidden = state === "connected" || state === "connecting";
}

function connect() {
  clearTimeout(retryTimer);
  clearInterval(countdownTimer);
  waitingForUser = false;
  refusal = undefined;
  admitted = false;
  const old = socket;
  socket = undefined;
  old?.close(1000);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/midi`);
  ws.binaryType = "arraybuffer";
  socket = ws;
  setStatus("connecting", attempt === 0 ? "Connecting…" : "Reconnecting…");
  ws.onmessage = (event) => {
    if (ws !== socket) return;
    if (typeof event.data === "string") control(ws, event.data);
    else if (admitted) fromHub(new Uint8Array(event.data));
  };
  ws.onclose = (event) => {
    if (ws !== socket) return;
    socket = undefined;
    closed(event);
  };
}

/**
 * A control message from the server.
 * @param {WebSocket} ws
 * @param {string} text
 */
function control(ws, text) {
  const now = performance.now();
  /** @type {any} */
  let msg;
  try {
    msg = JSON.parse(text);
  } catch {
    return;
  }
  switch (msg.type) {
    case "token":
      if (token === "") {
        waitingForUser = true;
        askToken("This hub needs a token.");
        ws.close(1000);
      } else {
        ws.send(JSON.stringify({ type: "token", token }));
        setStatus("connecting", "Sending the token…");
      }
      return;
    case "welcome":
      admitted = true;
      selfId = msg.id;
      attempt = 0;
      clearInterval(keepAliveTimer);
      // The hub answers it and passes it on to no one.
      if (typeof msg.keepAlive === "number" && msg.keepAlive > 0) {
        keepAliveTimer = setInterval(() => {
          if (ws === socket && admitted) ws.send(ACTIVE_SENSING);
        }, msg.keepAlive);
      }
      ui.tokenForm.hidden = true;
      if (token !== "") sessionStorage.setItem(TOKEN_KEY, token);
      setStatus("connected", "Connected");
      // A server that speaks time: map this page's clock to the hub's.
      timeSpoken = Number.isInteger(msg.time) && msg.time >= 1;
      hubDelay = delayOf(msg.latency);
      startSync();
      return;
    case "latency":
      hubDelay = delayOf(msg.latency);
      updateTiming();
      return;
    case "time":
      timeAnswer(msg, now);
      return;
    case "refused":
      refusal = { code: String(msg.code), reason: String(msg.reason) };
      return;
    case "endpoints":
      showEndpoints(msg.endpoints);
      return;
    case "monitor":
      addLines(msg.lines, msg.missed);
      return;
  }
}

/** @param {CloseEvent} event */
function closed(event) {
  admitted = false;
  clearInterval(keepAliveTimer);
  stopSync();
  releaseAll();
  clearLit();
  if (waitingForUser) {
    setStatus("refused", "Token needed");
    return;
  }
  const reason = refusal?.reason || event.reason;
  if (event.code === CLOSE_TOKEN) {
    waitingForUser = true;
    sessionStorage.removeItem(TOKEN_KEY);
    askToken(`Refused: ${reason}.`);
    setStatus("refused", `Refused: ${reason}`);
    return;
  }
  if (event.code === CLOSE_NOT_ALLOWED) {
    waitingForUser = true;
    setStatus("refused", `Refused: ${reason}`);
    return;
  }
  const delay = Math.min(LONGEST_RETRY_MS, FIRST_RETRY_MS * 2 ** attempt) *
    (1 + Math.random() * 0.2);
  attempt++;
  const why = reason ? `${reason}` : "Disconnected";
  const due = Date.now() + delay;
  const tick = () => {
    const seconds = Math.max(0, Math.ceil((due - Date.now()) / 1000));
    setStatus("retrying", `${why} · retrying in ${seconds} s`);
  };
  tick();
  countdownTimer = setInterval(tick, 500);
  retryTimer = setTimeout(connect, delay);
}

/** @param {string} why */
function askToken(why) {
  ui.tokenWhy.textContent = `${why} Ask whoever runs the hub for it.`;
  ui.tokenForm.hidden = false;
  ui.token.value = "";
  ui.token.focus();
}

ui.tokenForm.addEventListener("submit", (event) => {
  event.preventDefault();
  token = ui.token.value.trim();
  if (token === "") return;
  attempt = 0;
  connect();
});

ui.retry.addEventListener("click", () => {
  attempt = 0;
  connect();
});

/** Comes back at once when the page is shown again or the network returns. */
function wake() {
  if (socket === undefined && !waitingForUser) {
    attempt = 0;
    connect();
  }
}
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") wake();
});
globalThis.addEventListener("online", wake);

/**
 * Sends MIDI bytes (whole messages) to the hub, with when they were played
 * (mapped to the hub's clock) once the page knows the hub's clock.
 * @param {Uint8Array<ArrayBuffer>} bytes
 * @param {number} [time] When they were played, on this page's clock.
 * @returns {boolean} Whether they went.
 */
function toHub(bytes, time = performance.now()) {
  if (socket === undefined || !admitted) return false;
  if (!synced()) {
    socket.send(bytes);
    return true;
  }
  const frame = new Uint8Array(TIMED_HEAD + bytes.length);
  frame[0] = TIMED;
  new DataView(frame.buffer).setFloat64(1, hubClock.toRemote(time));
  frame.set(bytes, TIMED_HEAD);
  socket.send(frame);
  return true;
}

/**
 * MIDI from the hub: light the keys, play it on the bridged output. A
 * timed frame plays at its time plus the hub's delay, on this page's
 * clock (the browser schedules it); an untimed one at once.
 * @param {Uint8Array<ArrayBuffer>} bytes
 */
function fromHub(bytes) {
  const now = performance.now();
  let messages = bytes;
  /** @type {number | undefined} */
  let when;
  if (bytes[0] === TIMED) {
    if (bytes.length < TIMED_HEAD) return;
    const at = new DataView(bytes.buffer, bytes.byteOffset).getFloat64(1);
    messages = bytes.subarray(TIMED_HEAD);
    if (synced()) when = hubClock.toLocal(at + hubDelay);
    if (when !== undefined && when < now) late++;
  }
  for (const msg of splitMessages(messages)) {
    if (when === undefined || when - now <= LIGHT_AHEAD_MS) light(msg);
    else lightLater(msg, when - now);
    const status = msg[0];
    if (midiOutput !== undefined && status !== 0xf0 && status !== 0xfe) {
      try {
        if (when === undefined) midiOutput.send(msg);
        else midiOutput.send(msg, when);
      } catch {
        // A device that went away: the state change handler updates the list.
      }
    }
  }
  // A hidden page's timers may be slowed down: the traffic asks too.
  if (timeSpoken && now - askedAt > SYNC_EVERY_MS) askTime();
}

// ---------------------------------------------------------------------------
// Time

/**
 * The hub's delay from a frame's field: a number of ms, else none.
 * @param {unknown} value
 */
function delayOf(value) {
  return typeof value === "number" && Number.isFinite(value) && value > 0
    ? value
    : 0;
}

/** Starts a new map of this page's clock to the hub's (a new socket). */
function startSync() {
  clearTimeout(syncTimer);
  hubClock = new ClockSync();
  timedSent = false;
  late = 0;
  syncStart = performance.now();
  askedAt = -Infinity;
  askTime();
  updateTiming();
}

function stopSync() {
  clearTimeout(syncTimer);
  timeSpoken = false;
  timedSent = false;
  updateTiming();
}

/** Asks the hub's time, and again in a while. */
function askTime() {
  clearTimeout(syncTimer);
  if (socket === undefined || !admitted || !timeSpoken) return;
  askedAt = performance.now();
  socket.send(JSON.stringify({ type: "time", t1: askedAt }));
  const asking = askedAt - syncStart;
  const step = SYNC_STEPS.find(([until]) => asking < until);
  syncTimer = setTimeout(askTime, step?.[1] ?? SYNC_EVERY_MS);
}

/**
 * The hub's answer: one exchange more for the map.
 * @param {{ t1?: unknown, t2?: unknown, t3?: unknown }} msg
 * @param {number} t4 When it came.
 */
function timeAnswer(msg, t4) {
  const { t1, t2, t3 } = msg;
  if (
    typeof t1 !== "number" || typeof t2 !== "number" ||
    typeof t3 !== "number"
  ) {
    return;
  }
  hubClock.add({ t1, t2, t3, t4 });
  updateTiming();
}

/** Whether the page's map of the hub's clock can be used. */
function synced() {
  return timeSpoken && hubClock.samples >= SYNC_READY;
}

/**
 * Tells the server whether this page schedules what it plays: when it
 * knows the hub's clock, plays the hub on a MIDI output, and the hub has a
 * delay (without one, everything plays at once, as it comes).
 */
function updateTiming() {
  const timed = synced() && hubDelay > 0 && midiOutput !== undefined;
  if (timed !== timedSent && socket !== undefined && admitted) {
    timedSent = timed;
    socket.send(JSON.stringify({ type: "mode", timed }));
  }
  const view = ui.midiTiming;
  view.dataset.timed = String(timedSent);
  view.dataset.samples = String(timeSpoken ? hubClock.samples : 0);
  view.dataset.late = String(late);
  view.dataset.delay = String(hubDelay);
  if (!timeSpoken || midiOutput === undefined) {
    view.hidden = true;
    return;
  }
  view.hidden = false;
  const text = hubDelay === 0
    ? "The hub has no playout delay: each message plays as it comes."
    : !synced()
    ? "Setting this device's clock by the hub's…"
    : `In time: each message plays ${
      Math.round(hubDelay)
    } ms after it was played (the hub's delay)${
      late > 0 ? `; ${late} came too late` : ""
    }.`;
  if (view.textContent !== text) view.textContent = text;
}

/**
 * When an event happened, on this page's clock (now when it does not say).
 * @param {{ timeStamp?: number }} event
 */
function eventTime(event) {
  const now = performance.now();
  const time = event.timeStamp;
  return typeof time === "number" && time > 0 && time <= now ? time : now;
}

// ---------------------------------------------------------------------------
// Keyboard

/** The note of the leftmost key. */
let base = 60;
/** @type {HTMLButtonElement[]} */
let keys = [];
/** Who holds which note: a pointer, a computer key, a tap. */
/** @type {Map<string, number>} */
const holders = new Map();
/** @type {Map<number, number>} */
const heldCount = new Map();
/** Notes on from elsewhere (the hub, the bridged input), by note number. */
/** @type {Map<number, number>} */
const litCount = new Map();

for (let channel = 1; channel <= 16; channel++) {
  ui.channel.add(new Option(String(channel), String(channel - 1)));
}
ui.velocity.addEventListener("input", () => {
  ui.velocityValue.value = ui.velocity.value;
});

/** How many white keys fit the keyboard's width, each a finger wide. */
function whitesThatFit() {
  const width = ui.keyboard.clientWidth;
  if (width === 0) return MOST_WHITES;
  return Math.max(
    LEAST_WHITES,
    Math.min(MOST_WHITES, Math.floor(width / FINGER_PX)),
  );
}

/**
 * The number of keys, from a C, that holds `whites` white keys.
 * @param {number} whites
 */
function keysFor(whites) {
  let count = 0;
  for (let seen = 0; seen < whites; count++) {
    if (!NAMES[count % 12].includes("#")) seen++;
  }
  return count;
}

/** Keys on the screen now. */
let keyCount = keysFor(MOST_WHITES);

function buildKeyboard() {
  const focused = keys.findIndex((key) => key === document.activeElement);
  ui.keyboard.replaceChildren();
  keys = [];
  keyCount = keysFor(whitesThatFit());
  // Past the top of the MIDI range, the keyboard starts an octave lower.
  while (base + keyCount - 1 > 127) base -= 12;
  let white = 0;
  for (let i = 0; i < keyCount; i++) {
    const note = base + i;
    const black = NAMES[note % 12].includes("#");
    const key = document.createElement("button");
    key.type = "button";
    key.className = `key ${black ? "black" : "white"}`;
    key.dataset.offset = String(i);
    key.setAttribute("aria-label", noteName(note));
    key.tabIndex = i === Math.max(0, focused) ? 0 : -1;
    key.style.setProperty("--x", String(black ? white : white++));
    const hint = document.createElement("span");
    hint.className = "hint-key";
    hint.textContent = KEY_HINTS[i] ?? "";
    hint.setAttribute("aria-hidden", "true");
    key.append(hint);
    if (note % 12 === 0) {
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = noteName(note);
      label.setAttribute("aria-hidden", "true");
      key.append(label);
    }
    keys.push(key);
    ui.keyboard.append(key);
  }
  ui.keyboard.style.setProperty("--whites", String(white));
  ui.keyboard.setAttribute(
    "aria-label",
    `Piano keyboard, ${noteName(base)} to ${noteName(base + keyCount - 1)}`,
  );
  if (focused >= 0) keys[Math.min(focused, keyCount - 1)].focus();
  ui.octaveValue.value = noteName(base);
  ui.octaveDown.disabled = base - 12 < 0;
  ui.octaveUp.disabled = base + 12 + keyCount - 1 > 127;
  refreshKeys();
}

// A phone turned, a window resized: as many keys as fit, each a finger wide.
new ResizeObserver(() => {
  if (keysFor(whitesThatFit()) !== keyCount) buildKeyboard();
}).observe(ui.keyboard);

/** @param {number} step */
function shiftOctave(step) {
  const next = base + 12 * step;
  if (next < 0 || next + keyCount - 1 > 127) return;
  base = next;
  buildKeyboard();
}
ui.octaveDown.addEventListener("click", () => shiftOctave(-1));
ui.octaveUp.addEventListener("click", () => shiftOctave(1));

function refreshKeys() {
  keys.forEach((key, i) => {
    const note = base + i;
    key.classList.toggle("down", (heldCount.get(note) ?? 0) > 0);
    key.classList.toggle("lit", (litCount.get(note) ?? 0) > 0);
  });
}

/** @param {number} note */
function keyOf(note) {
  return note >= base && note < base + keyCount ? keys[note - base] : undefined;
}

/**
 * Plays a note for a holder.
 * @param {string} holder
 * @param {number} note
 * @param {number} [time] When, on this page's clock.
 */
function press(holder, note, time = performance.now()) {
  if (note < 0 || note > 127 || holders.has(holder)) return;
  holders.set(holder, note);
  const count = (heldCount.get(note) ?? 0) + 1;
  heldCount.set(note, count);
  keyOf(note)?.classList.add("down");
  if (count === 1) {
    const channel = Number(ui.channel.value);
    const velocity = Number(ui.velocity.value);
    play(new Uint8Array([0x90 | channel, note, velocity]), time);
  }
}

/**
 * @param {string} holder
 * @param {number} [time] When, on this page's clock.
 */
function release(holder, time = performance.now()) {
  const note = holders.get(holder);
  if (note === undefined) return;
  holders.delete(holder);
  const count = (heldCount.get(note) ?? 1) - 1;
  if (count > 0) {
    heldCount.set(note, count);
    return;
  }
  heldCount.delete(note);
  keyOf(note)?.classList.remove("down");
  play(new Uint8Array([0x80 | Number(ui.channel.value), note, 0]), time);
}

/** Lets go of every note this page holds (the hub releases them too). */
function releaseAll() {
  for (const holder of [...holders.keys()]) release(holder);
}

/**
 * A message played here: to the hub, and to the bridged output when asked.
 * @param {Uint8Array<ArrayBuffer>} msg
 * @param {number} time When, on this page's clock.
 */
function play(msg, time) {
  toHub(msg, time);
  if (midiOutput !== undefined && ui.midiEcho.checked) {
    try {
      midiOutput.send(msg);
    } catch {
      // The device went away.
    }
  }
}

/**
 * Lights or unlights the key of a note message heard.
 * @param {Uint8Array<ArrayBuffer>} msg
 */
function light(msg) {
  const kind = msg[0] & 0xf0;
  if (msg[0] >= 0xf0 || (kind !== 0x90 && kind !== 0x80)) return;
  const note = msg[1];
  const on = kind === 0x90 && msg[2] > 0;
  const count = Math.max(0, (litCount.get(note) ?? 0) + (on ? 1 : -1));
  if (count === 0) litCount.delete(note);
  else litCount.set(note, count);
  keyOf(note)?.classList.toggle("lit", count > 0);
}

/**
 * Lights or unlights a key when its message plays.
 * @param {Uint8Array<ArrayBuffer>} msg
 * @param {number} ms How long from now.
 */
function lightLater(msg, ms) {
  const timer = setTimeout(() => {
    lightTimers.delete(timer);
    light(msg);
  }, ms);
  lightTimers.add(timer);
}
/** @type {Set<ReturnType<typeof setTimeout>>} */
const lightTimers = new Set();

function clearLit() {
  for (const timer of lightTimers) clearTimeout(timer);
  lightTimers.clear();
  litCount.clear();
  refreshKeys();
}

/**
 * The on-screen key under a point.
 * @param {number} x
 * @param {number} y
 */
function keyAt(x, y) {
  const element = document.elementFromPoint(x, y)?.closest(".key");
  if (!(element instanceof HTMLButtonElement)) return undefined;
  return ui.keyboard.contains(element) ? element : undefined;
}

/** @param {HTMLButtonElement} key */
function noteOfKey(key) {
  return base + Number(key.dataset.offset);
}

ui.keyboard.addEventListener("pointerdown", (event) => {
  const key = keyAt(event.clientX, event.clientY);
  if (key === undefined || event.button > 0) return;
  event.preventDefault();
  ui.keyboard.setPointerCapture(event.pointerId);
  press(`p${event.pointerId}`, noteOfKey(key), eventTime(event));
});
ui.keyboard.addEventListener("pointermove", (event) => {
  const holder = `p${event.pointerId}`;
  if (!holders.has(holder)) return;
  const key = keyAt(event.clientX, event.clientY);
  if (key === undefined) return;
  const note = noteOfKey(key);
  if (note === holders.get(holder)) return;
  // Sliding over the keys plays each in turn.
  const time = eventTime(event);
  release(holder, time);
  press(holder, note, time);
});
for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
  ui.keyboard.addEventListener(type, (event) => {
    release(
      `p${/** @type {PointerEvent} */ (event).pointerId}`,
      eventTime(event),
    );
  });
}
ui.keyboard.addEventListener("contextmenu", (event) => event.preventDefault());
// Enter or Space on a focused key (or a screen reader's click): a short note.
ui.keyboard.addEventListener("click", (event) => {
  if (event.detail !== 0) return;
  const key = /** @type {Element} */ (event.target).closest(".key");
  if (!(key instanceof HTMLButtonElement)) return;
  const holder = `t${key.dataset.offset}`;
  press(holder, noteOfKey(key), eventTime(event));
  setTimeout(() => release(holder), TAP_MS);
});
// Arrow keys move between the keys: one tab stop for the whole keyboard.
ui.keyboard.addEventListener("keydown", (event) => {
  const step = { ArrowLeft: -1, ArrowDown: -1, ArrowRight: 1, ArrowUp: 1 }[
    event.key
  ];
  const index = keys.findIndex((key) => key === document.activeElement);
  if (step === undefined || index < 0) return;
  event.preventDefault();
  const next = keys[Math.min(keyCount - 1, Math.max(0, index + step))];
  keys.forEach((key) => key.tabIndex = key === next ? 0 : -1);
  next.focus();
});

/** @param {EventTarget | null} target */
function typing(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target.isContentEditable || target instanceof HTMLTextAreaElement) {
    return true;
  }
  if (target instanceof HTMLSelectElement) return true;
  return target instanceof HTMLInputElement &&
    !["range", "checkbox", "button", "submit"].includes(target.type);
}

document.addEventListener("keydown", (event) => {
  if (event.repeat || event.ctrlKey || event.metaKey || event.altKey) return;
  if (typing(event.target)) return;
  if (event.code === "Minus" || event.code === "Equal") {
    event.preventDefault();
    shiftOctave(event.code === "Minus" ? -1 : 1);
    return;
  }
  const offset = KEY_OFFSETS.get(event.code);
  if (offset === undefined) return;
  event.preventDefault();
  press(`k${event.code}`, base + offset, eventTime(event));
});
document.addEventListener(
  "keyup",
  (event) => release(`k${event.code}`, eventTime(event)),
);
globalThis.addEventListener("blur", () => {
  for (const holder of [...holders.keys()]) {
    if (holder.startsWith("k")) release(holder);
  }
});

// ---------------------------------------------------------------------------
// Monitor

/**
 * @typedef {{ seq: number, time: number, source: number, text: string,
 *   type: string }} Entry
 */

/** The newest lines, in order: their `seq` numbers follow one another. */
/** @type {Entry[]} */
let entries = [];
/** The `seq` of the newest line. */
let seq = 0;
/** Messages through the hub since the page opened (or was cleared). */
let total = 0;
/** Of those, the ones not shown: left out by the server, or not drawn. */
let missed = 0;
/** The `seq` of the last line drawn (or passed over). */
let drawnSeq = 0;
let paused = false;
let drawing = false;
let rebuild = false;
/** When the monitor was last drawn (`performance.now()`). */
let drawnAt = -Infinity;
/** Whether the log is scrolled to the bottom (and stays there). */
let following = true;
/** Lines in the log now. */
let linesShown = 0;
/** Endpoint names by id, kept after they leave for the lines they sent. */
/** @type {Map<number, string>} */
const names = new Map();

/** The filter chosen. */
function shown() {
  return FILTERS[ui.filter.value] ?? FILTERS[""];
}

/**
 * Lines from the server, and how many it left out (the page was behind).
 * @param {[number, number, string][]} lines
 * @param {number} skipped
 */
function addLines(lines, skipped) {
  for (const [time, source, text] of lines) {
    const space = text.indexOf(" ");
    entries.push({
      seq: ++seq,
      time,
      source,
      text,
      type: space < 0 ? text : text.slice(0, space),
    });
  }
  if (entries.length > KEEP * 2) {
    const cut = entries.length - KEEP;
    if (!paused) missed += countShown(0, cut);
    entries = entries.slice(cut);
  }
  total += lines.length + skipped;
  missed += skipped;
  draw();
}

/**
 * How many lines from `from` to `to` (indexes in `entries`) the filter
 * shows and were not drawn yet.
 * @param {number} from
 * @param {number} to
 */
function countShown(from, to) {
  const show = shown();
  let count = 0;
  for (let i = from; i < to; i++) {
    if (entries[i].seq > drawnSeq && show(entries[i].type)) count++;
  }
  return count;
}

/**
 * Draws on the next frame, or, while lines keep coming, at most every
 * `DRAW_EVERY_MS`: nobody reads faster, and the page stays free for the
 * keyboard.
 */
function draw() {
  if (drawing) return;
  drawing = true;
  const wait = drawnAt + DRAW_EVERY_MS - performance.now();
  if (wait <= 0) requestAnimationFrame(render);
  else setTimeout(() => requestAnimationFrame(render), wait);
}

const clock = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hour12: false,
});

/** @param {number} time */
function formatTime(time) {
  return `${clock.format(time)}.${String(time % 1000).padStart(3, "0")}`;
}

/** @param {number} id */
function sourceName(id) {
  if (id === selfId) return "this page";
  return names.get(id) ?? `#${id}`;
}

/** @param {Entry} entry */
function row(entry) {
  const line = document.createElement("div");
  line.className = "line";
  const time = document.createElement("time");
  time.textContent = formatTime(entry.time);
  const source = document.createElement("span");
  source.className = `source s${entry.source % 8}`;
  source.textContent = sourceName(entry.source);
  const type = document.createElement("b");
  type.className = `t-${entry.type}`;
  type.textContent = entry.type;
  line.append(time, source, type, entry.text.slice(entry.type.length));
  return line;
}

/**
 * Draws the lines that came since the last frame, oldest first, for at most
 * `FRAME_BUDGET_MS`; the rest wait for the next frame. A page further behind
 * than the `KEEP` lines shown skips to the newest: it drops drawing, never
 * the connection.
 */
function render() {
  drawing = false;
  if (paused) return updateCount();
  const start = drawnAt = performance.now();
  const show = shown();
  const log = ui.log;
  if (rebuild) {
    // From the KEEP newest lines the filter shows.
    log.replaceChildren();
    linesShown = 0;
    let from = entries.length;
    for (let count = 0; from > 0 && count < KEEP;) {
      if (show(entries[--from].type)) count++;
    }
    drawnSeq = from < entries.length ? entries[from].seq - 1 : seq;
    rebuild = false;
  }
  const first = entries.length > 0 ? entries[0].seq : seq + 1;
  let i = Math.max(0, drawnSeq - first + 1);
  if (entries.length - i > KEEP) {
    const skip = entries.length - KEEP;
    missed += countShown(i, skip);
    i = skip;
  }
  // Each draw adds one block of lines: the browser lays out and paints the
  // blocks drawn before as they were.
  const chunk = document.createElement("div");
  chunk.className = "chunk";
  let drawn = 0;
  for (; i < entries.length; i++) {
    if (!show(entries[i].type)) continue;
    chunk.append(row(entries[i]));
    if (
      ++drawn >= ROWS_PER_DRAW ||
      (drawn % 32 === 0 && performance.now() - start > FRAME_BUDGET_MS)
    ) {
      i++;
      break;
    }
  }
  if (i > 0) drawnSeq = entries[i - 1].seq;
  if (drawn > 0) {
    log.append(chunk);
    linesShown += drawn;
  }
  // The oldest blocks go once the others hold KEEP lines.
  for (
    let first = log.firstElementChild;
    first !== null && linesShown - first.childElementCount >= KEEP;
    first = log.firstElementChild
  ) {
    linesShown -= first.childElementCount;
    first.remove();
  }
  updateCount();
  if (following) log.scrollTop = log.scrollHeight;
  if (i < entries.length) draw();
}

// The log follows the newest lines while it is scrolled to the bottom.
ui.log.addEventListener("scroll", () => {
  const log = ui.log;
  following = log.scrollTop + log.clientHeight >= log.scrollHeight - 24;
}, { passive: true });
globalThis.addEventListener("resize", () => {
  if (following) ui.log.scrollTop = ui.log.scrollHeight;
});

function updateCount() {
  const parts = [
    total === 0
      ? "No messages yet"
      : `${total.toLocaleString("en-US")} message${total === 1 ? "" : "s"}`,
  ];
  if (missed > 0) {
    parts.push(`${missed.toLocaleString("en-US")} too fast to show`);
  }
  if (paused) {
    const waiting = seq - drawnSeq;
    parts.push(waiting > 0 ? `paused, ${waiting} new` : "paused");
  }
  ui.count.textContent = parts.join(" · ");
  ui.count.dataset.total = String(total);
}

ui.pause.addEventListener("click", () => {
  paused = !paused;
  ui.pause.setAttribute("aria-pressed", String(paused));
  ui.pause.textContent = paused ? "Resume" : "Pause";
  rebuild = true;
  draw();
});
ui.clear.addEventListener("click", () => {
  entries = [];
  total = 0;
  missed = 0;
  drawnSeq = seq;
  linesShown = 0;
  ui.log.replaceChildren();
  updateCount();
});
ui.filter.addEventListener("change", () => {
  rebuild = true;
  draw();
});

// ---------------------------------------------------------------------------
// Endpoints

const TRANSPORTS = /** @type {Record<string, string>} */ ({
  tcp: "TCP",
  web: "Web",
  midi: "MIDI",
  nats: "NATS",
  rtp: "RTP",
  local: "Local",
});

/**
 * @param {{ id: number, name: string, kind: string, transport: string,
 *   sent: number, heard: number }[]} list
 */
function showEndpoints(list) {
  for (const endpoint of list) names.set(endpoint.id, endpoint.name);
  if (names.size > 5000) {
    for (const id of [...names.keys()].slice(0, 1000)) names.delete(id);
  }
  ui.endpoints.replaceChildren(...list.map((endpoint) => {
    const item = document.createElement("li");
    item.className = `endpoint kind-${endpoint.kind}`;
    if (endpoint.id === selfId) item.classList.add("self");
    const badge = document.createElement("span");
    badge.className = `badge t-${endpoint.transport}`;
    badge.textContent = TRANSPORTS[endpoint.transport] ?? endpoint.transport;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = endpoint.name;
    name.title = endpoint.name;
    const counts = document.createElement("span");
    counts.className = "counts";
    counts.textContent = `${endpoint.sent.toLocaleString("en-US")} sent · ${
      endpoint.heard.toLocaleString("en-US")
    } heard`;
    if (endpoint.id === selfId) {
      const you = document.createElement("span");
      you.className = "you";
      you.textContent = "this page";
      counts.prepend(you, " ");
    }
    item.append(badge, name, counts);
    return item;
  }));
  ui.endpointsEmpty.hidden = list.length > 0;
  ui.endpointCount.textContent = list.length > 0 ? String(list.length) : "";
  if (paused) return;
  // Names may have arrived after the lines that use them.
  if (list.some((endpoint) => endpoint.id !== selfId)) {
    for (const source of ui.log.querySelectorAll(".source")) {
      const match = /^#(\d+)$/.exec(source.textContent ?? "");
      if (match) source.textContent = sourceName(Number(match[1]));
    }
  }
}

// ---------------------------------------------------------------------------
// Web MIDI bridge

/** @type {MIDIAccess | undefined} */
let access;
/** @type {MIDIInput | undefined} */
let midiInput;
/** @type {MIDIOutput | undefined} */
let midiOutput;

/**
 * @param {HTMLSelectElement} select
 * @param {Iterable<MIDIInput | MIDIOutput>} ports
 */
function fillPorts(select, ports) {
  const chosen = select.value;
  const options = [new Option("None", "")];
  for (const port of ports) {
    if (port.state === "disconnected") continue;
    options.push(new Option(port.name ?? port.id, port.id));
  }
  select.replaceChildren(...options);
  select.value = options.some((o) => o.value === chosen) ? chosen : "";
}

function refreshPorts() {
  if (access === undefined) return;
  fillPorts(ui.midiInput, access.inputs.values());
  fillPorts(ui.midiOutput, access.outputs.values());
  choosePorts();
}

function choosePorts() {
  if (access === undefined) return;
  const input = access.inputs.get(ui.midiInput.value);
  if (input !== midiInput) {
    if (midiInput !== undefined) midiInput.onmidimessage = null;
    midiInput = input;
    if (input !== undefined) {
      input.onmidimessage = (event) => {
        const data = event.data;
        if (data === null || data.length === 0) return;
        toHub(data, eventTime(event));
        light(data);
      };
    }
  }
  midiOutput = access.outputs.get(ui.midiOutput.value);
  updateTiming();
}

if (typeof navigator.requestMIDIAccess === "function") {
  ui.midiOff.hidden = false;
  ui.midiEnable.addEventListener("click", async () => {
    ui.midiError.hidden = true;
    try {
      access = await navigator.requestMIDIAccess({ sysex: false });
    } catch (error) {
      ui.midiError.textContent = `The browser did not allow MIDI: ${
        error instanceof Error ? error.message : String(error)
      }`;
      ui.midiError.hidden = false;
      return;
    }
    access.onstatechange = refreshPorts;
    ui.midiOff.hidden = true;
    ui.midiOn.hidden = false;
    refreshPorts();
  });
  ui.midiInput.addEventListener("change", choosePorts);
  ui.midiOutput.addEventListener("change", choosePorts);
} else {
  ui.midiNone.hidden = false;
  if (!globalThis.isSecureContext) {
    // Browsers offer Web MIDI to secure pages only.
    ui.midiNoneWhy.textContent = "Web MIDI needs a secure page: open this " +
      "one over HTTPS (serve with --cert and --key), or on the hub's own " +
      "machine. The on-screen keyboard and the monitor work all the same.";
  }
}

// ---------------------------------------------------------------------------
// Start

const fragment = new URLSearchParams(location.hash.slice(1));
const fromLink = fragment.get("token");
if (fromLink !== null) {
  // A link that carries the token (the fragment never reaches a server).
  token = fromLink;
  history.replaceState(null, "", location.pathname + location.search);
}
ui.where.textContent = location.host;
buildKeyboard();
updateCount();
connect();

export {};
