// Per-event cost of a Realtime transport in this page: the JS reference (@openai/agents-realtime, bundled
// as window.AgentsRealtime), a JS floor, and pyodide-realtime in Pyodide, all fed the same messages
// through the same fake WebSocket. Driven by bench/bench_transport.py.

const RESPONSES = 20;
const DELTAS_PER_RESPONSE = 100;   // audio deltas, each followed by a transcript delta
const AUDIO_BYTES_PER_DELTA = 4800; // 100 ms of PCM16 at 24 kHz

function base64Of(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return btoa(s);
}

// The event mix of notes/performance.md: 20 x (created, 100 x (audio, transcript), 2 done, response.done).
export function makeMessages() {
  const messages = [];
  let seed = 1;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
  for (let r = 0; r < RESPONSES; r++) {
    const rid = `resp_${r}`, iid = `item_${r}`;
    messages.push(JSON.stringify({ type: "response.created", event_id: `e${r}c`,
      response: { id: rid, object: "realtime.response", status: "in_progress", output: [] } }));
    for (let i = 0; i < DELTAS_PER_RESPONSE; i++) {
      const pcm = new Uint8Array(AUDIO_BYTES_PER_DELTA);
      for (let k = 0; k < pcm.length; k++) pcm[k] = rand();
      messages.push(JSON.stringify({ type: "response.output_audio.delta", event_id: `e${r}a${i}`,
        response_id: rid, item_id: iid, output_index: 0, content_index: 0, delta: base64Of(pcm) }));
      messages.push(JSON.stringify({ type: "response.output_audio_transcript.delta", event_id: `e${r}t${i}`,
        response_id: rid, item_id: iid, output_index: 0, content_index: 0, delta: "word " }));
    }
    messages.push(JSON.stringify({ type: "response.output_audio.done", event_id: `e${r}ad`,
      response_id: rid, item_id: iid, output_index: 0, content_index: 0 }));
    messages.push(JSON.stringify({ type: "response.output_audio_transcript.done", event_id: `e${r}td`,
      response_id: rid, item_id: iid, output_index: 0, content_index: 0, transcript: "word ".repeat(100) }));
    messages.push(JSON.stringify({ type: "response.done", event_id: `e${r}d`,
      response: { id: rid, object: "realtime.response", status: "completed", output: [],
        usage: { total_tokens: 300, input_tokens: 100, output_tokens: 200,
          input_token_details: { text_tokens: 10, audio_tokens: 90, cached_tokens: 0 },
          output_token_details: { text_tokens: 50, audio_tokens: 150 } } } }));
  }
  return messages;
}

// A WebSocket stand-in: both transports attach to it as they would to the browser's own.
export class FakeWebSocket extends EventTarget {
  static CONNECTING = 0; static OPEN = 1; static CLOSING = 2; static CLOSED = 3;
  constructor(url, protocols) {
    super();
    this.url = url; this.protocols = protocols; this.readyState = 0; this.protocol = "";
    this.onopen = this.onmessage = this.onerror = this.onclose = null;
    this.sent = 0;
    setTimeout(() => {
      this.readyState = 1; this.protocol = "realtime";
      const ev = new Event("open");
      this.onopen?.(ev); this.dispatchEvent(ev);
    }, 0);
  }
  send(_data) { this.sent++; }
  close() { this.readyState = 3; }
  deliver(data) {
    const ev = new MessageEvent("message", { data });
    this.onmessage?.(ev);
    this.dispatchEvent(ev);
  }
}

function gc() { if (globalThis.gc) globalThis.gc(); }

function timeDelivery(socket, messages) {
  gc();
  const t0 = performance.now();
  for (let i = 0; i < messages.length; i++) socket.deliver(messages[i]);
  return ((performance.now() - t0) * 1000) / messages.length; // us per event
}

export async function referenceSocket(onAudio) {
  let socket;
  const transport = new AgentsRealtime.OpenAIRealtimeWebSocket({
    useInsecureApiKey: true,
    createWebSocket: async ({ url }) => (socket = new FakeWebSocket(url, [])),
  });
  transport.on("audio", onAudio);
  await transport.connect({ apiKey: "ek_bench", model: "gpt-realtime" });
  return socket;
}

// What any transport must do at the least: parse, decode the audio, dispatch.
export function floorSocket(onAudio) {
  const socket = new FakeWebSocket("ws://floor", []);
  socket.addEventListener("message", (ev) => {
    const parsed = JSON.parse(ev.data);
    switch (parsed.type) {
      case "response.output_audio.delta": onAudio(Uint8Array.fromBase64(parsed.delta)); break;
      case "response.done": break;
      default: break;
    }
  });
  return socket;
}

export async function runSegments(segments, messages, rounds) {
  // segments: {name: socket}; interleaved rounds so that machine noise hits every segment alike.
  const results = Object.fromEntries(Object.keys(segments).map((k) => [k, []]));
  for (const socket of Object.values(segments)) timeDelivery(socket, messages.slice(0, 400)); // warm-up
  for (let r = 0; r < rounds; r++) {
    for (const [name, socket] of Object.entries(segments)) results[name].push(timeDelivery(socket, messages));
  }
  return results;
}
