// Reads structured-mode CloudEvents, one JSON object a line on standard input, with the
// JavaScript CloudEvents SDK in strict mode (attribute names, types, formats), and checks what
// that SDK leaves to the reader: specversion 1.0 and a non-empty id and source.
// Prints {"read": N, "failures": [...]}; exits 1 if any event could not be read.
import { CloudEvent } from "cloudevents";
import { createInterface } from "node:readline";

const failures = [];
let read = 0;
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  read += 1;
  try {
    const raw = JSON.parse(line);
    const event = new CloudEvent(raw, true);
    if (event.specversion !== "1.0") throw new Error(`specversion ${event.specversion}`);
    if (!event.id) throw new Error("empty id");
    if (!event.source) throw new Error("empty source");
  } catch (e) {
    failures.push({ line: read, error: String(e.message || e).slice(0, 300) });
  }
}
console.log(JSON.stringify({ read, failures }));
process.exit(failures.length ? 1 : 0);
