// The web server's own HTTP/1.1 and WebSocket (RFC 6455) codecs, pure: no
// I/O. Chunked input, the RFC's rules, bounds before buffering, and fuzz.

import assert from "node:assert/strict";
import {
  closeFrame,
  type FrameEvent,
  FrameReader,
  headerSize,
  OPCODE,
  STATUS,
  writeHeader,
} from "../src/web/_frames.ts";
import {
  hasBody,
  hasToken,
  keepsAlive,
  MAX_HEAD_BYTES,
  readRequestHead,
  type RequestHead,
  webSocketAccept,
  webSocketKeyValid,
} from "../src/web/_http.ts";
import {
  latencyFrame,
  MAX_CONTROL_FRAME,
  readControl,
  readTimed,
  TIMED,
  TIMED_HEAD,
  timeFrame,
  welcomeFrame,
  writeTimedHead,
} from "../src/web/_protocol.ts";
import { between, concat, pureTest, random } from "./_util.ts";

const encoder = new TextEncoder();

/** One client frame, masked (or not), as a browser would send it. */
function clientFrame(
  opcode: number,
  payload: Uint8Array | string,
  options: { fin?: boolean; mask?: boolean; rsv?: number; length?: number } =
    {},
): Uint8Array {
  const bytes = typeof payload === "string" ? encoder.encode(payload) : payload;
  const length = options.length ?? bytes.length;
  const head: number[] = [
    ((options.fin ?? true) ? 0x80 : 0) | (options.rsv ?? 0) | opcode,
  ];
  const masked = options.mask ?? true ? 0x80 : 0;
  if (length < 126) head.push(masked | length);
  else if (length < 65536) head.push(masked | 126, length >> 8, length & 255);
  else {
    const high = Math.floor(length / 2 ** 32);
    head.push(masked | 127);
    for (const word of [high, length >>> 0]) {
      head.push(word >>> 24, (word >> 16) & 255, (word >> 8) & 255, word & 255);
    }
  }
  const key = [0x37, 0xfa, 0x21, 0x3d];
  if (masked) head.push(...key);
  const out = new Uint8Array(head.length + bytes.length);
  out.set(head);
  for (let i = 0; i < bytes.length; i++) {
    out[head.length + i] = masked ? bytes[i] ^ key[i & 3] : bytes[i];
  }
  return out;
}

/** Every event a reader makes of `input`, cut into `chunks`. */
function readAll(
  input: Uint8Array,
  limit = 1 << 20,
  cuts: number[] = [],
): FrameEvent[] {
  const reader = new FrameReader(limit);
  const events: FrameEvent[] = [];
  let from = 0;
  for (const cut of [...cuts, input.length]) {
    reader.feed(input.slice(from, cut));
    for (let e = reader.next(); e !== undefined; e = reader.next()) {
      events.push(e);
    }
    from = cut;
  }
  return events;
}

function only(events: FrameEvent[]): FrameEvent {
  assert.equal(events.length, 1, JSON.stringify(events));
  return events[0];
}

pureTest("frames: any cutting of the input gives the same messages", () => {
  const next = random(6455);
  for (let round = 0; round < 200; round++) {
    const parts: Uint8Array[] = [];
    const expected: unknown[] = [];
    for (let m = between(next, 1, 6); m > 0; m--) {
      const binary = next() < 0.5;
      const size = between(next, 0, next() < 0.2 ? 70_000 : 300);
      const data = Uint8Array.from(
        { length: size },
        () => binary ? between(next, 0, 255) : between(next, 0x20, 0x7e),
      );
      // Fragments, with a ping between some of them.
      const cuts = [0, size];
      for (let f = between(next, 0, 3); f > 0; f--) {
        cuts.splice(1, 0, between(next, 0, size));
      }
      cuts.sort((a, b) => a - b);
      for (let i = 0; i + 1 < cuts.length; i++) {
        const opcode = i > 0
          ? OPCODE.continuation
          : binary
          ? OPCODE.binary
          : OPCODE.text;
        const fin = i + 2 === cuts.length;
        parts.push(
          clientFrame(opcode, data.subarray(cuts[i], cuts[i + 1]), { fin }),
        );
        if (!fin && next() < 0.3) {
          parts.push(clientFrame(OPCODE.ping, "p"));
          expected.push({ kind: "ping", data: [0x70] });
        }
      }
      expected.push(
        binary
          ? { kind: "binary", data: [...data] }
          : { kind: "text", text: new TextDecoder().decode(data) },
      );
    }
    const input = concat(parts);
    const chunks = Array.from(
      { length: between(next, 0, 20) },
      () => between(next, 0, input.length),
    ).sort((a, b) => a - b);
    const events = readAll(input, 1 << 20, chunks).map((e) =>
      "data" in e ? { ...e, data: [...e.data] } : e
    );
    assert.deepEqual(events, expected, `round ${round}`);
  }
});

pureTest("frames: the RFC's rules for a client's frames", () => {
  const cases: [string, Uint8Array, number][] = [
    ["unmasked", clientFrame(OPCODE.binary, "x", { mask: false }), 1002],
    ["reserved bits", clientFrame(OPCODE.binary, "x", { rsv: 0x40 }), 1002],
    ["unknown data opcode", clientFrame(0x3, "x"), 1002],
    ["unknown control opcode", clientFrame(0xb, "x"), 1002],
    ["fragmented ping", clientFrame(OPCODE.ping, "x", { fin: false }), 1002],
    ["long ping", clientFrame(OPCODE.ping, "x".repeat(126)), 1002],
    ["continuation first", clientFrame(OPCODE.continuation, "x"), 1002],
    [
      "a message inside another",
      concat([
        clientFrame(OPCODE.text, "a", { fin: false }),
        clientFrame(OPCODE.binary, "b"),
      ]),
      1002,
    ],
    ["text not UTF-8", clientFrame(OPCODE.text, new Uint8Array([0xc3])), 1007],
    [
      "text cut in a character across fragments",
      concat([
        clientFrame(OPCODE.text, new Uint8Array([0xe2, 0x82]), { fin: false }),
        clientFrame(OPCODE.continuation, new Uint8Array([0x41])),
      ]),
      1007,
    ],
    ["close of one byte", clientFrame(OPCODE.close, new Uint8Array([3])), 1002],
    [
      "close code 1005",
      clientFrame(OPCODE.close, new Uint8Array([0x03, 0xed])),
      1002,
    ],
    [
      "close code 999",
      clientFrame(OPCODE.close, new Uint8Array([0x03, 0xe7])),
      1002,
    ],
    [
      "close code 5000",
      clientFrame(OPCODE.close, new Uint8Array([0x13, 0x88])),
      1002,
    ],
    [
      "close reason not UTF-8",
      clientFrame(OPCODE.close, new Uint8Array([0x03, 0xe8, 0xff])),
      1007,
    ],
  ];
  for (const [what, input, code] of cases) {
    const event = readAll(input).at(-1)!;
    assert.equal(event.kind, "error", what);
    assert.equal(event.kind === "error" && event.code, code, what);
  }
  // A 64-bit length with its top bit set.
  const huge = new Uint8Array([
    0x82,
    0xff,
    0x80,
    0,
    0,
    0,
    0,
    0,
    0,
    1,
    1,
    2,
    3,
    4,
  ]);
  assert.equal(only(readAll(huge)).kind, "error");
  // After an error, nothing more is read.
  const reader = new FrameReader(100);
  reader.feed(concat([clientFrame(0x3, ""), clientFrame(OPCODE.binary, "x")]));
  assert.equal(reader.next()?.kind, "error");
  assert.equal(reader.next(), undefined);
});

pureTest("frames: control frames, close codes and text", () => {
  assert.deepEqual(
    readAll(
      concat([
        clientFrame(OPCODE.text, "é ok"),
        clientFrame(OPCODE.pong, ""),
        clientFrame(OPCODE.close, new Uint8Array([0x03, 0xe9, 0x62, 0x79])),
      ]),
    ),
    [
      { kind: "text", text: "é ok" },
      { kind: "pong" },
      { kind: "close", code: 1001, reason: "by" },
    ],
  );
  assert.deepEqual(readAll(clientFrame(OPCODE.close, "")), [
    { kind: "close", code: undefined, reason: "" },
  ]);
  for (const code of [1000, 1003, 1007, 1011, 1014, 3000, 4999]) {
    const payload = new Uint8Array([code >> 8, code & 255]);
    const event = only(readAll(clientFrame(OPCODE.close, payload)));
    assert.equal(event.kind === "close" && event.code, code);
  }
});

pureTest(
  "frames: a message over the bound is refused from its header, before its bytes come",
  () => {
    // A header that announces 64 MiB, and no payload at all.
    const head = clientFrame(OPCODE.binary, new Uint8Array(0), {
      length: 64 << 20,
    });
    assert.deepEqual(only(readAll(head, 512)), {
      kind: "error",
      code: STATUS.tooBig,
      reason: "message over 512 bytes",
      size: 64 << 20,
    });
    // Fragments: refused at the one that crosses the bound.
    const fragments = concat([
      clientFrame(OPCODE.text, "x".repeat(300), { fin: false }),
      clientFrame(OPCODE.continuation, "x".repeat(200), { fin: false }),
      clientFrame(OPCODE.continuation, new Uint8Array(0), {
        fin: false,
        length: 13,
      }),
    ]);
    const event = only(readAll(fragments, 512));
    assert.equal(event.kind === "error" && event.size, 513);
    // Exactly at the bound passes.
    const at = only(
      readAll(clientFrame(OPCODE.binary, new Uint8Array(512)), 512),
    );
    assert.equal(at.kind, "binary");
    // Control frames do not count against it.
    assert.equal(
      only(readAll(clientFrame(OPCODE.ping, "x".repeat(125)), 1)).kind,
      "ping",
    );
  },
);

pureTest("frames: a closing reader skips data and still sees the close", () => {
  const reader = new FrameReader(4);
  reader.discard = true;
  reader.feed(
    concat([
      clientFrame(OPCODE.binary, new Uint8Array(100_000)),
      clientFrame(OPCODE.text, "x".repeat(9), { fin: false }),
      clientFrame(OPCODE.continuation, "y".repeat(9)),
      clientFrame(OPCODE.close, new Uint8Array([0x03, 0xe8])),
    ]),
  );
  assert.deepEqual(reader.next(), { kind: "close", code: 1000, reason: "" });
  assert.equal(reader.next(), undefined);
});

pureTest("frames: random bytes never throw, and keep at most the bound", () => {
  const next = random(1009);
  for (let round = 0; round < 300; round++) {
    const reader = new FrameReader(between(next, 0, 2000));
    for (let c = 0; c < 20; c++) {
      const chunk = Uint8Array.from(
        { length: between(next, 0, 200) },
        () => between(next, 0, 255),
      );
      // Some of it masked frames, so the reader gets past the first check.
      if (next() < 0.5 && chunk.length > 1) chunk[1] |= 0x80;
      reader.feed(chunk);
      for (let e = reader.next(); e !== undefined; e = reader.next()) {
        if (e.kind === "binary") assert.ok(e.data.length <= reader.limit);
        if (e.kind === "error") break;
      }
    }
  }
});

pureTest("frames: the server's frame headers and close frames", () => {
  for (const length of [0, 125, 126, 65535, 65536, 2 ** 32 + 7]) {
    const target = new Uint8Array(10);
    const end = writeHeader(target, 0, OPCODE.binary, length);
    assert.equal(end, headerSize(length));
    assert.equal(target[0], 0x82);
    const view = new DataView(target.buffer);
    const read = (target[1] & 0x7f) < 126
      ? target[1]
      : target[1] === 126
      ? view.getUint16(2)
      : view.getUint32(2) * 2 ** 32 + view.getUint32(6);
    assert.equal(read, length);
  }
  const close = closeFrame(4401, "é".repeat(100));
  // 2 header bytes, 2 code bytes, a reason cut to whole characters.
  assert.equal(close[0], 0x88);
  assert.ok(close[1] <= 125);
  assert.equal((close[2] << 8) | close[3], 4401);
  const reason = new TextDecoder("utf-8", { fatal: true }).decode(
    close.subarray(4),
  );
  assert.equal(reason, "é".repeat(61));
});

// --- HTTP ----------------------------------------------------------------

function head(text: string): RequestHead {
  const result = readRequestHead(encoder.encode(text));
  assert.equal(result.kind, "head", JSON.stringify(result));
  return (result as { head: RequestHead }).head;
}

function bad(text: string | Uint8Array): number {
  const result = readRequestHead(
    typeof text === "string" ? encoder.encode(text) : text,
  );
  assert.equal(result.kind, "bad", `${text}`);
  return (result as { status: number }).status;
}

pureTest("http: a request head, with CRLF or bare LF line ends", () => {
  const text = "GET /app.js?v=2 HTTP/1.1\r\nHost: 127.0.0.1:8081\r\n" +
    "Connection: keep-alive, Upgrade\r\nX-A: 1\r\nx-a: 2\r\n\r\nnext";
  const parsed = head(text);
  assert.equal(parsed.method, "GET");
  assert.equal(parsed.path, "/app.js");
  assert.equal(parsed.version, "HTTP/1.1");
  assert.equal(parsed.fields.get("host"), "127.0.0.1:8081");
  assert.equal(parsed.fields.get("x-a"), "1, 2");
  assert.equal(parsed.size, text.length - 4);
  assert.ok(hasToken(parsed.fields.get("connection"), "upgrade"));
  assert.ok(keepsAlive(parsed));
  assert.ok(!hasBody(parsed));
  const lf = head("\r\nHEAD / HTTP/1.0\nHost: a\n\n");
  assert.equal(lf.method, "HEAD");
  assert.ok(!keepsAlive(lf));
  assert.ok(hasBody(head("POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\n")));
  assert.ok(
    hasBody(head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")),
  );
  assert.equal(
    readRequestHead(encoder.encode("GET / HTTP/1.1\r\nHost: a\r\n")).kind,
    "partial",
  );
});

pureTest("http: malformed and oversized heads are refused", () => {
  assert.equal(bad("GET /\r\n\r\n"), 400);
  assert.equal(bad("GET  / HTTP/1.1\r\n\r\n"), 400);
  assert.equal(bad("GET http://a/ HTTP/1.1\r\n\r\n"), 400);
  assert.equal(bad("GET / HTTP/2.0\r\n\r\n"), 505);
  assert.equal(bad("GET / HTTX/1.1\r\n\r\n"), 400);
  assert.equal(bad("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400);
  assert.equal(bad("GET / HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n"), 400);
  assert.equal(bad("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
  assert.equal(bad("GET / HTTP/1.1\r\nA: \x01\r\n\r\n"), 400);
  const many = Array.from({ length: 65 }, (_, i) => `F${i}: x`).join("\r\n");
  assert.equal(bad(`GET / HTTP/1.1\r\n${many}\r\n\r\n`), 431);
  // No end within the bound: refused without waiting for one.
  assert.equal(
    bad(`GET / HTTP/1.1\r\nA: ${"x".repeat(MAX_HEAD_BYTES)}`),
    431,
  );
});

pureTest("http: random bytes never throw", () => {
  const next = random(9112);
  for (let round = 0; round < 2000; round++) {
    const bytes = Uint8Array.from(
      { length: between(next, 0, 300) },
      () => next() < 0.2 ? 0x0a : between(next, 0, 255),
    );
    readRequestHead(bytes);
  }
});

pureTest("http: the WebSocket accept key is RFC 6455's", async () => {
  // The example of RFC 6455, section 1.3.
  assert.equal(
    await webSocketAccept("dGhlIHNhbXBsZSBub25jZQ=="),
    "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
  );
  assert.ok(webSocketKeyValid("dGhlIHNhbXBsZSBub25jZQ=="));
  assert.ok(!webSocketKeyValid("dGhlIHNhbXBsZSBub25jZR=="));
  assert.ok(!webSocketKeyValid("short"));
  assert.ok(!webSocketKeyValid(undefined));
});

// --- Time -------------------------------------------------------------------

pureTest("time: a timed frame's head round-trips its time, big-endian", () => {
  const frame = new Uint8Array(TIMED_HEAD + 3);
  for (const at of [0, 1234.5678, -5, 2 ** 40 + 0.125, Number.MAX_VALUE]) {
    assert.equal(writeTimedHead(frame, 0, at), TIMED_HEAD);
    frame.set([0x90, 60, 64], TIMED_HEAD);
    assert.equal(frame[0], TIMED);
    const read = readTimed(frame);
    assert.equal(read?.at, at);
    assert.deepEqual([...read!.midi], [0x90, 60, 64]);
  }
  // 1000 ms as a big-endian double.
  writeTimedHead(frame, 0, 1000);
  assert.deepEqual([...frame.subarray(1, 9)], [64, 143, 64, 0, 0, 0, 0, 0]);
  // At an offset, in a larger buffer.
  const big = new Uint8Array(20);
  assert.equal(writeTimedHead(big, 5, 7.5), 5 + TIMED_HEAD);
  assert.equal(readTimed(big.subarray(5))?.at, 7.5);
});

pureTest(
  "time: untimed frames pass as they are; timed ones cut short or not a number do not",
  () => {
    const plain = new Uint8Array([0x90, 60, 64]);
    assert.deepEqual(readTimed(plain), { at: undefined, midi: plain });
    // Stray data bytes other than the marker are the MIDI parser's business.
    const stray = new Uint8Array([0x02, 0x90, 60, 64]);
    assert.deepEqual(readTimed(stray), { at: undefined, midi: stray });
    assert.equal(readTimed(new Uint8Array([TIMED, 0, 0])), undefined);
    const frame = new Uint8Array(TIMED_HEAD);
    for (const at of [NaN, Infinity, -Infinity]) {
      writeTimedHead(frame, 0, at);
      assert.equal(readTimed(frame), undefined, String(at));
    }
    // A timed frame with no messages is a time and nothing else.
    writeTimedHead(frame, 0, 3);
    assert.equal(readTimed(frame)?.midi.length, 0);
  },
);

pureTest("time: a page's control messages, and what is not one", () => {
  assert.deepEqual(readControl('{"type":"time","t1":12.5}'), {
    type: "time",
    t1: 12.5,
  });
  assert.deepEqual(readControl('{"type":"mode","timed":false,"x":1}'), {
    type: "mode",
    timed: false,
  });
  for (
    const text of [
      "",
      "null",
      "[]",
      '"time"',
      '{"type":"time"}',
      '{"type":"time","t1":"1"}',
      '{"type":"time","t1":1e999}',
      '{"type":"mode","timed":"yes"}',
      '{"type":"token","token":"x"}',
      `{"type":"time","t1":1,"pad":"${"x".repeat(MAX_CONTROL_FRAME)}"}`,
    ]
  ) {
    assert.equal(readControl(text), undefined, text);
  }
  assert.deepEqual(JSON.parse(timeFrame(1, 2, 3)), {
    type: "time",
    t1: 1,
    t2: 2,
    t3: 3,
  });
  assert.deepEqual(JSON.parse(welcomeFrame(3, "web x", 1000, 40)), {
    type: "welcome",
    id: 3,
    name: "web x",
    keepAlive: 1000,
    time: 1,
    latency: 40,
  });
  assert.deepEqual(JSON.parse(latencyFrame(12)), {
    type: "latency",
    latency: 12,
  });
});
