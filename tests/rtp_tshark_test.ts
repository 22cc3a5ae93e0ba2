// Wireshark's AppleMIDI and RTP-MIDI dissectors, through tshark capturing
// on loopback, read every packet midisock sends, recovery journals
// included, and find none malformed.

import { skip } from "./_skip.ts";
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { Hub, type Message, message, RtpMidiSession } from "../mod.ts";
import type { RtpMidiParticipant } from "../src/rtp/mod.ts";
import { take, until, within } from "./_net.ts";
import { LossyProxy, Player } from "./_rtp.ts";
import { HAVE_TSHARK, REQUIRED } from "./_rtp_peers.ts";
import { between, random, randomMessage } from "./_util.ts";

/** Whether tshark may capture here (root, or dumpcap with capabilities). */
function probeCapture(): string | undefined {
  if (!HAVE_TSHARK) return "tshark is missing";
  try {
    const { success, stderr } = new Deno.Command("tshark", {
      args: ["-i", "lo", "-a", "duration:1", "-c", "1", "-f", "udp port 9"],
      stdout: "null",
      stderr: "piped",
    }).outputSync();
    if (success) return undefined;
    return new TextDecoder().decode(stderr).trim().split("\n").at(-1);
  } catch (error) {
    return (error as Error).message;
  }
}

const cannot = HAVE_TSHARK ? probeCapture() : "tshark is missing";
if (cannot !== undefined && HAVE_TSHARK) {
  const line = `tshark cannot capture on lo (${cannot})`;
  if (REQUIRED) throw new Error(`${line}, but MIDISOCK_REQUIRE_RTP=1`);
  console.warn(
    `${line}: skipping the dissector test (run as root, or setcap cap_net_raw,cap_net_admin=eip on dumpcap)`,
  );
}

const FIELDS = [
  "frame.number",
  "_ws.col.Protocol",
  "_ws.malformed",
  "_ws.expert.message",
  "rtpmidi.j_flag",
  "rtpmidi.cj_chapter_n_log_note",
  "rtpmidi.cj_chapter_n_log_octet",
  "rtpmidi.cj_chapter_c_number",
  "rtpmidi.cmd_chanjour_len",
  "applemidi.command",
  "_ws.col.Info",
  "rtpmidi.deltatime_1",
  "rtpmidi.deltatime_2",
  "rtpmidi.deltatime_3",
  "rtpmidi.deltatime_4",
];

interface Frame {
  protocol: string;
  malformed: string;
  expert: string;
  journal: string;
  noteLogs: string;
  offBits: string;
  controllers: string;
  channelLength: string;
  command: string;
  info: string;
  /** Delta times of 1, 2, 3 and 4 bytes. */
  deltas: [string, string, string, string];
}

/** tshark decoding live what goes through these ports, one frame a line. */
class Capture {
  readonly frames: Frame[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #reading: Promise<void>;
  readonly #probe: dgram.Socket;

  private constructor(child: Deno.ChildProcess, probe: dgram.Socket) {
    this.#child = child;
    this.#probe = probe;
    this.#reading = this.#read();
  }

  static async start(ports: number[]): Promise<Capture> {
    const probe = dgram.createSocket("udp4");
    await new Promise<void>((resolve) =>
      probe.bind(0, "127.0.0.1", () => resolve())
    );
    const probePort = probe.address().port;
    const filter = [...ports.flatMap((p) => [p, p + 1]), probePort]
      .map((p) => `udp port ${p}`).join(" or ");
    const child = new Deno.Command("tshark", {
      args: [
        "-i",
        "lo",
        "-f",
        filter,
        "-l",
        "-n",
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
        ...FIELDS.flatMap((f) => ["-e", f]),
      ],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const capture = new Capture(child, probe);
    // "Capturing on" comes before the capture really runs: wait until a
    // probe datagram shows up in the output.
    await within(
      (async () => {
        while (capture.frames.length === 0) {
          probe.send(new Uint8Array([0]), probePort, "127.0.0.1");
          await new Promise((r) => setTimeout(r, 50));
        }
      })(),
      10000,
      "tshark start",
    );
    capture.frames.length = 0;
    return capture;
  }

  async #read(): Promise<void> {
    const decoder = new TextDecoder();
    let text = "";
    for await (const chunk of this.#child.stdout) {
      text += decoder.decode(chunk, { stream: true });
      let at;
      while ((at = text.indexOf("\n")) >= 0) {
        const f = text.slice(0, at).split("|");
        text = text.slice(at + 1);
        this.frames.push({
          protocol: f[1],
          malformed: f[2],
          expert: f[3],
          journal: f[4],
          noteLogs: f[5],
          offBits: f[6],
          controllers: f[7],
          channelLength: f[8],
          command: f[9],
          info: f[10],
          deltas: [f[11], f[12], f[13], f[14]],
        });
      }
    }
  }

  async stop(): Promise<void> {
    this.#child.kill("SIGINT");
    await this.#child.status;
    await this.#reading;
    await new Promise<void>((resolve) => this.#probe.close(() => resolve()));
  }
}

async function join(
  a: RtpMidiSession,
  port: number,
  b: RtpMidiSession,
): Promise<[RtpMidiParticipant, RtpMidiParticipant]> {
  const [out, inn] = await Promise.all([
    a.invite("127.0.0.1", port),
    within(b.accept(), 5000, "accept"),
  ]);
  return [out, inn];
}

Deno.test({
  ...skip(
    "tshark finds no malformed packet in midisock's sessions, journals included",
    !REQUIRED && cannot,
  ),
  permissions: {
    net: ["127.0.0.1", "[::1]", "localhost"],
    run: ["tshark"],
    env: ["MIDISOCK_RTPMIDI_DIR", "MIDISOCK_REQUIRE_RTP"],
    read: true,
  },
  fn: () =>
    within(
      (async () => {
        await using a = new RtpMidiSession({ port: 0, name: "alpha" });
        await using b = new RtpMidiSession({ port: 0, name: "beta" });
        await using c = new RtpMidiSession({ port: 0, name: "gamma" });
        // A hub's session: its batches' times become timestamps and
        // delta times.
        await using hub = new Hub();
        const d = await hub.attach(
          new RtpMidiSession({ port: 0, name: "delta" }),
        );
        await Promise.all([a.ready, b.ready, c.ready]);
        const proxy = await LossyProxy.open(b.port, 0.1, random(4));
        const capture = await Capture.start([
          a.port,
          b.port,
          c.port,
          d.port,
          proxy.port,
        ]);
        try {
          // a <-> b directly: every kind of message, notes held on every
          // channel (long journals), sysex split over packets.
          const [toB, fromA] = await join(a, b.port, b);
          const next = random(12);
          const sent: Message[] = [];
          for (let channel = 0; channel < 16; channel++) {
            for (let n = 0; n < 12; n++) {
              sent.push(
                message("note_on", {
                  channel,
                  note: 30 + n * 7,
                  velocity: 1 + n,
                }),
              );
            }
            sent.push(message("note_off", { channel, note: 30 }));
            sent.push(
              message("control_change", {
                channel,
                control: channel,
                value: 99,
              }),
            );
            sent.push(message("program_change", { channel, program: channel }));
            sent.push(
              message("pitchwheel", { channel, pitch: -channel * 500 }),
            );
            sent.push(message("aftertouch", { channel, value: channel }));
          }
          for (let i = 0; i < 200; i++) {
            sent.push(randomMessage(next, undefined, 20));
          }
          sent.push(message("sysex", { data: new Array(4000).fill(0x11) }));
          for (const m of sent) {
            await toB.send(m);
            if (next() < 0.05) await new Promise((r) => setTimeout(r, 2));
          }
          assert.equal((await take(fromA, sent.length)).length, sent.length);
          for (const m of sent.slice(0, 50)) await fromA.send(m);
          await take(toB, 50);

          // c -> proxy losing 10% -> b: journals after gaps, guard packets.
          const [toB2, fromC] = await join(c, proxy.port, b);
          proxy.lossy = true;
          for (let i = 0; i < 300; i++) {
            const channel = between(next, 0, 15);
            const note = between(next, 0, 127);
            await toB2.send(message("note_on", { channel, note, velocity: 5 }));
            await new Promise((r) => setTimeout(r, 1));
            await toB2.send(message("note_off", { channel, note }));
          }
          await until(() => fromC.stats.lost > 0, 5000, "a loss");
          await new Promise((r) => setTimeout(r, 700)); // guard packets
          proxy.lossy = false;
          // hub -> a: batches at times whose deltas take 1 to 4 bytes.
          const player = new Player("player");
          hub.add(player, { kind: "device" });
          await d.invite("127.0.0.1", a.port);
          let ear: RtpMidiParticipant;
          do ear = await within(
            a.accept(),
            5000,
            "the hub's participant",
          ); while (ear.peerName !== "delta");
          const now = hub.clock.now();
          const steps = [-300_000, -299_999.5, -299_980, -297_000, -1000, 0];
          player.play([message("stop")]); // Sent alone: the rest wait.
          for (const [i, step] of steps.entries()) {
            player.play([message("note_on", { note: 60 + i })], now + step);
          }
          await take(ear, 1 + steps.length);
          await toB.close();
          await toB2.close();
        } finally {
          await a.close();
          await b.close();
          await c.close();
          await hub.close();
          await new Promise((r) => setTimeout(r, 300));
          await capture.stop();
          await proxy.close();
        }
        const frames = capture.frames;
        const rtp = frames.filter((f) => f.protocol === "RTP-MIDI");
        const apple = frames.filter((f) => f.protocol === "AppleMIDI");
        const malformed = frames.filter((f) => f.malformed !== "");
        assert.deepEqual(malformed.map((f) => f.info), [], "malformed packets");
        assert.deepEqual(
          frames.filter((f) => f.expert !== "").map((f) =>
            `${f.info}: ${f.expert}`
          ),
          [],
          "expert notes",
        );
        assert.ok(rtp.length > 100, `${rtp.length} RTP-MIDI packets`);
        assert.ok(
          rtp.every((f) => f.journal === "1"),
          "every packet has a journal",
        );
        // The dissector read into the journals: note logs, note-off bits,
        // controllers and channel journal lengths.
        assert.ok(rtp.filter((f) => f.noteLogs !== "").length > 20);
        assert.ok(rtp.filter((f) => f.offBits !== "").length > 5);
        assert.ok(rtp.filter((f) => f.controllers !== "").length > 20);
        assert.ok(rtp.some((f) => f.channelLength.split(",").length >= 16));
        const commands = new Set(apple.map((f) => f.info.split(":")[0]));
        for (
          const name of [
            "Invitation",
            "Invitation Accepted",
            "Synchronization",
            "Receiver Feedback",
            "End Session",
          ]
        ) {
          assert.ok(commands.has(name), `no ${name} seen: ${[...commands]}`);
        }
        assert.ok(rtp.some((f) => f.info.includes("Sysex-Segment")));
        for (const bytes of [1, 2, 3, 4]) {
          assert.ok(
            rtp.some((f) => f.deltas[bytes - 1] !== ""),
            `no delta time of ${bytes} bytes seen`,
          );
        }
      })(),
      60000,
      "tshark test",
    ),
});
