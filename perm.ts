import { NatsLink } from "/work/wt/nats/mod.ts";
for (const u of ["nosub", "nopub", "x"]) {
  try {
    await NatsLink.connect(`nats://${u}:p@127.0.0.1:14240`, { room: "r" });
  } catch (e) {
    console.log((e as Error).message);
  }
}
try {
  await NatsLink.connect(`nats://127.0.0.1:1`, { room: "r" });
} catch (e) {
  console.log((e as Error).message);
}
