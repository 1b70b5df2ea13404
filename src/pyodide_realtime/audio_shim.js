// pyodide-realtime audio shim: two AudioWorklet processors (player, capture), the helpers that drive
// them, and the bridge for a Web Worker. Python loads this file into a Blob URL: the AudioWorklet
// addModule()s it (the processors register themselves), the page import()s it, and so does a worker,
// which has the page host the worklets (serveWorker) and then talks to them over MessagePorts, never
// through the page's event loop. Items are opaque integer keys chosen by Python.
//
// Resampling is linear interpolation with its phase kept across chunks (exact integer phase, so no
// drift and the same frame count however the audio is chunked); capture low-passes before it.
//
// Heard position, exactly: the player keeps a mirror of the worklet's queue (it computes every
// chunk's frame count itself) and an upper bound of how far the worklet will have played when a
// message posted now arrives. heardFrames() answers from that bound and remembers it as a promise;
// stop() tells the worklet to play on until exactly that point, then drop the rest. So the position
// that an interruption reports is the frame where the sound stopped, whatever the message latency.

const PLAYER = "pyodide-realtime-player";
const CAPTURE = "pyodide-realtime-capture";
const FORMAT_RATES = { pcm16: 24000, g711_ulaw: 8000, g711_alaw: 8000 };
const FADE_FRAMES = 128;        // ramp to/from silence after an underrun or a stop: no click
const PROGRESS_QUANTA = 2;      // post the play position every 2 render quanta (~5 ms at 48 kHz)
const BUTTERWORTH_Q = [0.5411961, 1.3065630];  // two biquads = 4th-order Butterworth low-pass
const CUTOFF_OF_OUTPUT_RATE = 0.4;              // low-pass at 40% of the output rate before decimating
// How far past "now" a stop may land: it covers the render burst that can run before the stop message
// is handled (Chromium renders 10 ms or more per device callback) and the message's trip.
// A worker without shared memory infers the clock from reports, which a busy worker reads late: more.
export const STOP_MARGIN_MS = { page: 30, worker: 60 };
// Where SharedArrayBuffer exists (a cross-origin isolated page), the player processor writes
// [frames consumed, render position] into one after every quantum, and a worker reads them as the page
// reads context.currentTime: no report's delay, no inferred clock. Int32 words, written only where they
// changed: two BigInts per quantum made the idle player's processor ten times dearer in a worker than on
// the page, and its garbage woke the audio thread's collector. Layout: [sequence, consumed low, high,
// position low, high]; the sequence is odd while more than the position's low word changes (a seqlock),
// so a reader never takes half of an update. A quantum that moves only that word (nothing playing: every
// one) stores it alone: one Int32 store is whole, and the pair it makes with the unchanged rest is true.
const SHARED_WORDS = 5;
const WORD = 2 ** 32;

export class PositionWriter {  // the processor's side: the only writer
  constructor(buffer) { this.words = new Int32Array(buffer); this.seq = 0; this.consumed = 0; this.highs = [0, 0]; }
  write(consumed, at) {
    const w = this.words, highs = this.highs, consumedHigh = Math.floor(consumed / WORD), atHigh = Math.floor(at / WORD);
    if (consumed !== this.consumed || atHigh !== highs[1]) {
      this.consumed = consumed;
      Atomics.store(w, 0, ++this.seq);  // odd (an Int32 keeps the low 32 bits: the parity too)
      Atomics.store(w, 1, consumed);
      if (consumedHigh !== highs[0]) Atomics.store(w, 2, highs[0] = consumedHigh);
      if (atHigh !== highs[1]) Atomics.store(w, 4, highs[1] = atHigh);
      Atomics.store(w, 3, at);
      Atomics.store(w, 0, ++this.seq);
    } else {
      Atomics.store(w, 3, at);
    }
  }
}

export function readPosition(words) {  // [consumed, position], as one quantum left them
  for (;;) {  // the writer is between two quanta but for a few stores: it never holds the reader long
    const seq = Atomics.load(words, 0);
    if (seq & 1) continue;
    const consumed = Atomics.load(words, 2) * WORD + (Atomics.load(words, 1) >>> 0);
    const at = Atomics.load(words, 4) * WORD + (Atomics.load(words, 3) >>> 0);
    if (Atomics.load(words, 0) === seq) return [consumed, at];
  }
}

const WORKER_HELLO = "pyodide-realtime-audio";  // the worker's first message to its page

// ---- Messages ------------------------------------------------------------------------------------
// Every message between the parts, by type, with the fields it must carry. A message of an unknown
// type, or without one of its fields, is reported where it arrives (never dropped in silence).
export const MESSAGES = {
  // to the player processor
  chunk: ["key", "format", "data"],               // + seq (optional): ask for a "queued" ack
  finish: ["key"],                                // no more audio comes for this item
  stop: ["id", "until", "end"],                   // play on until `until` frames were consumed, drop the rest
  query: ["id"],                                  // answer with a "report"
  connect: ["port"],                              // page -> processor: talk over this port from now on
  share: ["buffer"],                              // page -> processor: write the position here every quantum
  // from the player processor
  queued: ["seq", "key", "frames"],
  started: ["key", "at"],
  underrun: ["key", "at"],
  ended: ["key", "frames", "reason", "at"],       // reason: finished | next | interrupted
  progress: ["consumed", "at"],
  report: ["id", "at", "consumed", "frames"],     // frames: [[key, frames], ...]
  stopped: ["id", "at", "consumed", "frames", "overshoot", "slack"],  // slack: frames to go when the stop came
  // to the capture processor, and from it
  mute: ["value"],
  close: [],
  captured: ["data", "at"],
  // a worker and the page that hosts its audio (serveWorker / connectToPage)
  hello: ["pageUrl"],
  state: ["handle", "state", "at"],               // page -> worker: a context's state changed
  "open-player": ["id", "volume"],
  "open-capture": ["id", "constraints", "format", "chunkSamples", "muted"],
  call: ["id", "handle", "method", "value"],      // method: volume | resume | close | latency
  opened: ["id", "handle", "port", "rate", "at"],  // + shared: the player's position buffer, if any
  done: ["id", "value"],
  failed: ["id", "name", "message"],
  // anyone: a message that broke these rules, as the receiver saw it
  error: ["message"],
};

// Where a broken message is reported when nobody listens for "error" messages: the console.
const warn = (message) => console.warn(`pyodide-realtime audio: ${message}`);

// What is wrong with `m` (a string), or null if it is a well-formed message.
export function problemWith(m) {
  if (m === null || typeof m !== "object" || typeof m.type !== "string") return "a message without a type";
  const fields = MESSAGES[m.type];
  if (!fields) return `a message of unknown type "${m.type}"`;
  for (const name of fields) if (!(name in m)) return `a "${m.type}" message without its "${name}"`;
  return null;
}

// ---- G.711 (ITU-T G.711, the classic segment arithmetic) ------------------------------------------

function ulawToLinear(u) {
  u = ~u & 0xff;
  const t = (((u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
  return u & 0x80 ? 0x84 - t : t - 0x84;
}

function alawToLinear(a) {
  a ^= 0x55;
  let t = (a & 0x0f) << 4;
  const seg = (a & 0x70) >> 4;
  if (seg === 0) t += 8;
  else t = (t + 0x108) << (seg - 1);
  return a & 0x80 ? t : -t;
}

function linearToUlaw(s) {
  const sign = s < 0 ? 0x80 : 0;
  s = Math.min(sign ? -s : s, 32635) + 0x84;
  let exp = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exp > 0; mask >>= 1) exp--;
  return ~(sign | (exp << 4) | ((s >> (exp + 3)) & 0x0f)) & 0xff;
}

function linearToAlaw(s) {
  let v = s >> 3, mask = 0xd5;
  if (v < 0) { v = -v - 1; mask = 0x55; }
  let seg = 0;
  while (seg < 8 && v > (0x20 << seg) - 1) seg++;
  if (seg >= 8) return 0x7f ^ mask;
  return ((seg << 4) | ((v >> (seg < 2 ? 1 : seg)) & 0x0f)) ^ mask;
}

// For the tests that compare these with the Python reference (pyodide_realtime.audio.g711).
export const g711 = { ulawToLinear, alawToLinear, linearToUlaw, linearToAlaw };

const ULAW = new Float32Array(256), ALAW = new Float32Array(256);
for (let i = 0; i < 256; i++) { ULAW[i] = ulawToLinear(i) / 32768; ALAW[i] = alawToLinear(i) / 32768; }

// ---- Resampling -----------------------------------------------------------------------------------

// Output k sits at input position ((k + 1) * inRate - outRate) / outRate, x[-1] being the previous
// chunk's last sample (0 at the start), so N input samples give floor(N * outRate / inRate) frames.
class LinearResampler {
  constructor(inRate, outRate) {
    this.inRate = inRate; this.outRate = outRate;
    this.num = inRate - outRate;  // next output position * outRate, relative to this chunk
    this.prev = 0;
  }
  maxOutput(n) { return Math.ceil(n * this.outRate / this.inRate) + 1; }
  process(input, n, out) {
    const { inRate, outRate } = this;
    const limit = (n - 1) * outRate;
    let num = this.num, k = 0;
    for (; num <= limit; num += inRate) {
      const idx = Math.floor(num / outRate), rest = num - idx * outRate;
      const a = idx < 0 ? this.prev : input[idx];
      out[k++] = rest === 0 ? a : a + (input[idx + 1] - a) * (rest / outRate);
    }
    if (n > 0) { this.num = num - n * outRate; this.prev = input[n - 1]; }
    return k;
  }
}

// RBJ cookbook low-pass biquad, transposed direct form II.
class Biquad {
  constructor(rate, cutoff, q) {
    const w = 2 * Math.PI * cutoff / rate, cos = Math.cos(w), alpha = Math.sin(w) / (2 * q), a0 = 1 + alpha;
    this.b0 = (1 - cos) / 2 / a0; this.b1 = (1 - cos) / a0; this.b2 = this.b0;
    this.a1 = -2 * cos / a0; this.a2 = (1 - alpha) / a0; this.z1 = 0; this.z2 = 0;
  }
  run(buf, n) {
    for (let i = 0; i < n; i++) {
      const x = buf[i], y = this.b0 * x + this.z1;
      this.z1 = this.b1 * x - this.a1 * y + this.z2;
      this.z2 = this.b2 * x - this.a2 * y;
      buf[i] = y;
    }
  }
}

// ---- The processors (only where registerProcessor exists: the AudioWorkletGlobalScope) -----------

if (typeof registerProcessor === "function") {
  // Messages come from node.port, or from a port a worker handed over ("connect"); answers go back
  // to where the last message came from.
  class Endpoint extends AudioWorkletProcessor {
    constructor() {
      super();
      this.out = this.port;
      this.port.onmessage = (e) => this.receive(e.data, this.port);
    }
    receive(m, from) {
      const problem = problemWith(m);
      if (problem) { from.postMessage({ type: "error", message: `${this.constructor.name} got ${problem}` }); return; }
      if (m.type === "connect") {
        this.out = m.port;
        m.port.onmessage = (e) => this.receive(e.data, m.port);
        return;
      }
      this.onMessage(m);
    }
    post(m, transfer) { this.out.postMessage(m, transfer || []); }
  }

  class PlayerProcessor extends Endpoint {
    constructor() {
      super();
      this.queue = [];            // segments {key, data: Float32Array (context rate), pos}, in post order
      this.items = new Map();     // key -> {frames, queued, started, finished, ended, resampler, carry}
      this.current = -1;          // key of the item now sounding
      this.consumed = 0;          // frames rendered from the queue since the start (all items), or skipped by a stop
      this.draining = null;       // a stop in progress: {id, until, end, keys, queue}
      this.last = 0;              // last sample out, faded to 0 on underrun/stop
      this.fadeOut = 0;           // frames of that fade left
      this.fadeIn = 0;            // frames of fade-in left (resuming after an underrun)
      this.starved = false;
      this.quanta = 0;
      this.shared = null;         // a PositionWriter: [consumed, render position] for a worker to read, if shared
    }

    item(key) {
      let it = this.items.get(key);
      if (!it) {
        it = { frames: 0, queued: 0, started: false, finished: false, ended: false, resampler: null, carry: -1 };
        this.items.set(key, it);
      }
      return it;
    }

    onMessage(m) {
      switch (m.type) {
        case "chunk": this.enqueue(m); break;
        case "finish": { const it = this.item(m.key); it.finished = true; this.maybeEnd(m.key, it, "finished"); break; }
        case "stop": this.beginStop(m); break;
        case "share": this.shared = new PositionWriter(m.buffer); break;
        case "query":  // a stop still landing answers first: the count asked for is the one after it
          if (this.draining) this.draining.queries.push(m.id); else this.report(m.id, 0);
          break;
        default: this.post({ type: "error", message: `the player processor does not take "${m.type}" messages` });
      }
    }

    // Decode and resample now (on the audio thread, off the render path's hot loop); every chunk of
    // `count` frames becomes one segment, as the sender's mirror expects.
    enqueue(m) {
      const it = this.item(m.key);
      let bytes = new Uint8Array(m.data);
      const inRate = FORMAT_RATES[m.format];
      if (!it.resampler) it.resampler = new LinearResampler(inRate, sampleRate);
      let n, src;
      if (m.format === "pcm16") {
        if (it.carry >= 0) {  // an odd byte left by the previous chunk starts this one
          const joined = new Uint8Array(bytes.length + 1);
          joined[0] = it.carry; joined.set(bytes, 1); bytes = joined; it.carry = -1;
        }
        if (bytes.length & 1) { it.carry = bytes[bytes.length - 1]; }
        n = bytes.length >> 1;
        src = new Float32Array(n);
        const view = new DataView(bytes.buffer, bytes.byteOffset, n * 2);
        for (let i = 0; i < n; i++) src[i] = view.getInt16(2 * i, true) / 32768;
      } else {
        const table = m.format === "g711_ulaw" ? ULAW : ALAW;
        n = bytes.length;
        src = new Float32Array(n);
        for (let i = 0; i < n; i++) src[i] = table[bytes[i]];
      }
      const out = new Float32Array(it.resampler.maxOutput(n));
      const count = it.resampler.process(src, n, out);
      if (count > 0) {
        this.queue.push({ key: m.key, data: out.subarray(0, count), pos: 0 });
        it.queued += count;
      }
      if (m.seq !== undefined) this.post({ type: "queued", seq: m.seq, key: m.key, frames: count });
    }

    report(id, offset) { this.post({ type: "report", id, at: currentFrame + offset, consumed: this.consumed, frames: this.counts() }); }

    counts() { const c = []; for (const [key, it] of this.items) c.push([key, it.frames]); return c; }

    maybeEnd(key, it, reason) {
      if (it.ended || it.queued > 0 || !(it.finished || reason !== "finished")) return;
      it.ended = true;
      this.post({ type: "ended", key, frames: it.frames, reason, at: currentFrame });
    }

    // What was queued before the stop plays on to `until`; what comes after it waits in a fresh queue.
    beginStop(m) {
      if (this.draining) this.endStop(0);  // a second stop before the first landed: the first ends now
      this.draining = { id: m.id, until: m.until, end: m.end, keys: [...this.items.keys()], queue: this.queue, queries: [], slack: m.until - this.consumed };
      this.queue = [];
      if (this.consumed >= m.until) this.endStop(0);
    }

    endStop(offset) {
      const d = this.draining;
      this.draining = null;
      const overshoot = Math.max(this.consumed - d.until, 0);  // > 0: the stop came too late to land on time
      const frames = [];
      for (const key of d.keys) {
        const it = this.items.get(key);
        frames.push([key, it.frames]);
        it.queued = 0;
        if (!it.ended && (it.started || it.finished || it.resampler)) this.maybeEnd(key, it, "interrupted");
      }
      if (d.keys.includes(this.current)) this.current = -1;
      this.starved = false;
      this.consumed = Math.max(this.consumed, d.end);  // the dropped frames count as consumed: the mirror agrees
      this.post({ type: "stopped", id: d.id, at: currentFrame + offset, consumed: this.consumed, frames, overshoot, slack: d.slack });
      for (const id of d.queries) this.report(id, offset);
    }

    process(inputs, outputs) {
      const out = outputs[0][0];
      const n = out.length;
      let i = 0;
      for (;;) {
        if (this.draining && (this.consumed >= this.draining.until || this.draining.queue.length === 0)) this.endStop(i);
        const queue = this.draining ? this.draining.queue : this.queue;
        if (i >= n || queue.length === 0) break;
        const seg = queue[0];
        if (seg.key !== this.current) {
          const prev = this.current >= 0 ? this.items.get(this.current) : null;
          if (prev) this.maybeEnd(this.current, prev, prev.finished ? "finished" : "next");
          this.current = seg.key;
          const it = this.item(seg.key);
          if (!it.started) {
            it.started = true;
            this.post({ type: "started", key: seg.key, at: currentFrame + i });
          }
        }
        const it = this.items.get(seg.key);
        let take = Math.min(n - i, seg.data.length - seg.pos);
        if (this.draining) take = Math.min(take, this.draining.until - this.consumed);
        out.set(seg.data.subarray(seg.pos, seg.pos + take), i);
        if (this.fadeIn > 0) {
          for (let j = 0; j < take && this.fadeIn > 0; j++, this.fadeIn--) out[i + j] *= 1 - this.fadeIn / FADE_FRAMES;
        }
        seg.pos += take; i += take; it.frames += take; it.queued -= take; this.consumed += take;
        this.fadeOut = FADE_FRAMES;  // armed: if silence follows, it starts from this sample
        if (take > 0) this.last = out[i - 1];
        if (seg.pos >= seg.data.length) queue.shift();
      }
      if (i < n) {
        // Nothing queued: fade from the last sample to silence, then silence (never stale data).
        if (this.current >= 0) {
          const it = this.items.get(this.current);
          if (it.finished) { this.maybeEnd(this.current, it, "finished"); this.current = -1; }
          else if (!this.starved) {
            this.starved = true;
            this.fadeIn = FADE_FRAMES;
            this.post({ type: "underrun", key: this.current, at: currentFrame + i });
          }
        }
        for (; i < n; i++) {
          out[i] = this.fadeOut > 0 ? this.last * (this.fadeOut-- / FADE_FRAMES) : 0;
        }
        if (this.fadeOut === 0) this.last = 0;
      } else {
        this.starved = false;
      }
      if (this.shared) this.shared.write(this.consumed, currentFrame + n);
      // A worker that shares the position reads it at every look (readShared): reports would only wake it.
      if (this.current >= 0 && !this.shared && ++this.quanta % PROGRESS_QUANTA === 0) {
        this.post({ type: "progress", consumed: this.consumed, at: currentFrame + n });
      }
      return true;
    }
  }

  class CaptureProcessor extends Endpoint {
    constructor(options) {
      super();
      const o = options.processorOptions;
      this.format = o.format;
      const outRate = FORMAT_RATES[o.format];
      this.resampler = new LinearResampler(sampleRate, outRate);
      this.filters = outRate < sampleRate ? BUTTERWORTH_Q.map((q) => new Biquad(sampleRate, CUTOFF_OF_OUTPUT_RATE * outRate, q)) : [];
      this.chunkSamples = o.chunkSamples;
      this.mono = new Float32Array(128);
      this.resampled = new Float32Array(this.resampler.maxOutput(128));
      this.muted = !!o.muted;
      this.running = true;
      this.fresh();
    }

    onMessage(m) {
      if (m.type === "mute") this.muted = !!m.value;
      else if (m.type === "close") this.running = false;
      else this.post({ type: "error", message: `the capture processor does not take "${m.type}" messages` });
    }

    fresh() {
      this.chunk = this.format === "pcm16" ? new Int16Array(this.chunkSamples) : new Uint8Array(this.chunkSamples);
      this.fill = 0;
    }

    process(inputs) {
      const channels = inputs[0];
      if (!this.running) return false;
      if (channels.length === 0) return true;  // no input connected yet
      const n = channels[0].length;
      if (this.mono.length < n) this.mono = new Float32Array(n);
      const mono = this.mono;
      mono.fill(0, 0, n);
      if (!this.muted) {
        for (const ch of channels) for (let i = 0; i < n; i++) mono[i] += ch[i];
        if (channels.length > 1) for (let i = 0; i < n; i++) mono[i] /= channels.length;
      }
      for (const f of this.filters) f.run(mono, n);
      if (this.resampled.length < this.resampler.maxOutput(n)) this.resampled = new Float32Array(this.resampler.maxOutput(n));
      const count = this.resampler.process(mono, n, this.resampled);
      for (let k = 0; k < count; k++) {
        const v = Math.max(-32768, Math.min(32767, Math.round(this.resampled[k] * 32768)));
        this.chunk[this.fill++] = this.format === "pcm16" ? v : this.format === "g711_ulaw" ? linearToUlaw(v) : linearToAlaw(v);
        if (this.fill === this.chunkSamples) {
          this.post({ type: "captured", data: this.chunk.buffer, at: currentFrame }, [this.chunk.buffer]);
          this.fresh();
        }
      }
      return true;
    }
  }

  registerProcessor(PLAYER, PlayerProcessor);
  registerProcessor(CAPTURE, CaptureProcessor);
}

// ---- Wherever Python runs (page or worker): the player's side of the port ---------------------------

// The render position, in frames, as a worker without shared memory can know it: no AudioContext
// there, so it is inferred from the reports' (frame, arrival time) pairs. A report can only arrive
// after it was sent, so `at - rate * arrival` is never above the offset it was sent at; the largest
// one seen is the best estimate (the worklet renders in bursts ahead of real time: it tracks them).
// While the page says its context is not running, the clock stands at the last frame reported.
export class ReportClock {
  constructor(rate) { this.rate = rate; this.offset = -Infinity; this.last = 0; this.running = true; }
  note(at) {
    this.last = Math.max(this.last, at);
    if (this.running) this.offset = Math.max(this.offset, at - this.rate * performance.now() / 1000);
  }
  setRunning(running, at) {
    this.running = running; this.note(at);
    if (running) this.offset = this.last - this.rate * performance.now() / 1000;  // it restarts from here
  }
  now() {
    if (!this.running || this.offset === -Infinity) return this.last;
    return Math.max(this.offset + this.rate * performance.now() / 1000, this.last);
  }
}

// A Player mirrors the worklet's queue: it computes each chunk's frame count as the worklet will
// (floor(samples * rate / inRate), summed per item: the resampler's phase is exact), so a position in
// the queue (frames consumed, all items together) maps to frames heard per item without asking.
export class Player {
  // port: to the player processor; rate: the context's; clock(): the render position now (frames);
  // marginMs: see STOP_MARGIN_MS; onEvent(message): every message from the processor but progress;
  // reportClock: a ReportClock to feed with the reports' frames (a worker's clock), or null.
  constructor(port, rate, clock, marginMs, onEvent, reportClock = null) {
    this.port = port; this.rate = rate; this.clock = clock; this.onEvent = onEvent;
    this.margin = Math.round(marginMs * rate / 1000);
    this.items = new Map();    // key -> {inRate, bytes, samples, posted, before, segs: [start, length, ...], final}
    this.end = 0;              // frames posted so far, all items: where the next chunk starts in the queue
    this.consumed = 0;         // as last reported, at clock `at`
    this.at = 0;
    this.pending = [];         // [start, clock when posted] of chunks not yet known consumed
    this.promised = 0;         // the furthest position ever answered: a stop plays at least to here
    this.answered = false;     // heardFrames() answered since the last stop: that stop must land on the promise
    this.stopping = 0;         // stops posted, not yet "stopped": reports from before them are stale
    this.waiting = new Map();  // id -> resolve, for query()/stop() round trips
    this.nextId = 1;
    this.reportClock = reportClock;
    this.seen = 0;             // the furthest render position a message of the worklet told
    port.onmessage = (e) => this.onMessage(e.data);
  }

  // The render position now: the clock, or further if the worklet said it had rendered further.
  // Firefox's currentTime trails what its audio thread has rendered by up to a device callback (20 ms
  // measured, with PulseAudio), which a margin counted from the clock alone would lose.
  now() { return Math.max(this.clock(), this.seen); }

  onMessage(m) {
    const problem = problemWith(m);
    if (problem) { this.emit({ type: "error", message: `the player got ${problem}` }); return; }
    if ("at" in m && m.at > this.seen) this.seen = m.at;
    if (this.reportClock && "at" in m) this.reportClock.note(m.at);
    switch (m.type) {
      case "progress": if (this.stopping === 0) this.settleTo(m.consumed, m.at); return;
      case "report": if (this.stopping === 0) this.settleTo(m.consumed, m.at); this.answer(m); return;
      case "stopped":
        this.stopping--;
        if (m.overshoot > 0) {  // the worklet had passed the promised frame: this interruption's figures are off
          this.emit({ type: "error", message: `a stop landed ${(m.overshoot * 1000 / this.rate).toFixed(1)} ms after the position it promised` });
        }
        for (const [key, frames] of m.frames) { const it = this.items.get(key); if (it) it.final = frames; }
        this.settleTo(m.consumed, m.at);
        this.answer(m);
        return;
      case "ended": { const it = this.items.get(m.key); if (it && m.frames === it.posted) it.final = m.frames; break; }
    }
    this.emit(m);
  }

  emit(m) {
    if (this.onEvent) this.onEvent(m);
    else if (m.type === "error") warn(m.message);
  }

  // Whether the context renders: a suspended one plays nothing more, so a stop lands where it is.
  running() { return true; }

  answer(m) {
    const resolve = this.waiting.get(m.id);
    if (resolve) { this.waiting.delete(m.id); resolve(m); }
  }

  // The worklet consumed `consumed` frames by clock `at`: forget what lies before.
  settleTo(consumed, at) {
    if (consumed < this.consumed) return;
    this.consumed = consumed; this.at = at;
    while (this.pending.length && this.pending[0][0] < consumed) this.pending.shift();
    for (const it of this.items.values()) {
      while (it.segs.length && it.segs[0] + it.segs[1] <= consumed) { it.before += it.segs[1]; it.segs.splice(0, 2); }
    }
  }

  item(key, format) {
    let it = this.items.get(key);
    if (!it) {
      it = { inRate: FORMAT_RATES[format], bytes: 0, samples: 0, posted: 0, before: 0, segs: [], final: -1 };
      this.items.set(key, it);
    }
    return it;
  }

  play(key, format, bytes, seq) {
    const it = this.item(key, format);
    it.bytes += bytes.byteLength;
    it.samples = format === "pcm16" ? Math.floor(it.bytes / 2) : it.bytes;
    const total = Math.floor(it.samples * this.rate / it.inRate);
    const count = total - it.posted;
    it.posted = total;
    if (count > 0) {
      it.segs.push(this.end, count);
      it.final = -1;
      this.pending.push([this.end, this.now()]);
      this.end += count;
    }
    // Transfer, never copy again: the buffer goes to the audio thread as is.
    const data = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes.buffer : bytes.slice().buffer;
    const m = { type: "chunk", key, format, data };
    if (seq !== undefined && seq !== null && seq >= 0) m.seq = seq;
    this.port.postMessage(m, [data]);
  }

  finish(key) { this.port.postMessage({ type: "finish", key }); }

  // An upper bound of the frames the worklet will have consumed (all items) by clock `now`.
  bound(now) {
    let p = Math.min(this.end, this.consumed + Math.max(now - this.at, 0));
    for (const [start, postedAt] of this.pending) {  // a chunk cannot play before it was sent
      if (start >= p) break;
      p = Math.min(p, start + Math.max(now - postedAt, 0));
    }
    return Math.max(p, this.consumed);
  }

  // How far the worklet will have played when a message posted now arrives: never less than it will
  // really be, never less than an earlier answer, never past the end.
  position() {
    const p = Math.max(this.bound(this.now() + (this.running() ? this.margin : 0)), this.promised);
    this.promised = p;
    return p;
  }

  framesAt(it, p) {
    let frames = it.before;
    for (let i = 0; i < it.segs.length; i += 2) {
      const start = it.segs[i];
      if (p <= start) break;
      frames += Math.min(p - start, it.segs[i + 1]);
    }
    return frames;
  }

  // Frames of `key` heard once the sound stops if stop() is called now (-1: never played).
  heardFrames(key) {
    const it = this.items.get(key);
    if (!it) return -1;
    if (it.final >= 0) return it.final;
    this.answered = true;
    return this.framesAt(it, this.position());
  }

  request(m) {
    const id = this.nextId++;
    const done = new Promise((resolve) => this.waiting.set(id, resolve));
    this.port.postMessage({ ...m, id });
    return done;
  }

  // Every item stops exactly where heardFrames() said last, so an interruption's truncation (read just
  // before) is where the sound stops, however far the audio clock moved meanwhile (WebKit's currentTime
  // jumps a device buffer, about 23 ms, at a time). Only a promise the render position already passed
  // (an app read heard_ms long ago) is replaced: nothing can land there any more. With no answer since
  // the last stop, the stop lands where heardFrames() would answer now.
  stop() {
    const reachable = this.promised >= this.bound(this.now());
    const until = this.answered && reachable ? this.promised : this.position();
    this.answered = false;
    for (const it of this.items.values()) if (it.final < 0) it.final = this.framesAt(it, until);
    this.stopping++;
    const done = this.request({ type: "stop", until, end: this.end });
    const now = this.now();
    this.consumed = this.end; this.at = now; this.promised = this.end;
    this.pending = [];
    for (const it of this.items.values()) { it.before = it.final; it.segs = []; }
    return done;
  }

  query() { return this.request({ type: "query" }); }

  close() {
    this.port.onmessage = null;
    for (const resolve of this.waiting.values()) resolve(null);
    this.waiting.clear();
    this.onEvent = null;
  }
}

// The microphone's side of the capture port: chunks to onChunk (a Uint8Array each).
export class CapturePort {
  constructor(port, onChunk, onEvent) {
    this.port = port; this.onChunk = onChunk; this.onEvent = onEvent;
    port.onmessage = (e) => {
      const m = e.data, problem = problemWith(m);
      if (problem) { this.emit({ type: "error", message: `the capture got ${problem}` }); return; }
      if (m.type === "captured") { if (this.onChunk) this.onChunk(new Uint8Array(m.data)); }
      else this.emit(m);
    };
  }
  emit(m) {
    if (this.onEvent) this.onEvent(m);
    else if (m.type === "error") warn(m.message);
  }
  setMuted(value) { this.port.postMessage({ type: "mute", value }); }
  close() { this.onChunk = null; this.port.postMessage({ type: "close" }); this.port.onmessage = null; }
}

// ---- The page: Web Audio itself ------------------------------------------------------------------

const loaded = new WeakMap();  // context -> addModule promise (once per context)

// The contexts the library makes for its players. WebKitGTK 2.50's web process crashes now and then (a
// null pointer on the AudioWorklet's thread) when a context whose worklet has played is closed, whatever
// is torn down first, and it never frees a worklet's thread anyway: in WebKit a player's context is
// suspended and kept for the next player instead (measured: a crash within 3-150 closes, none in 300
// reuses; tools/webkit_audio_probe.py). Elsewhere it is closed.
// (This file is the worklet's module too, whose scope has no navigator: an error there hangs WebKit.)
const AGENT = typeof navigator === "object" ? navigator.userAgent : "";
const KEEPS_CONTEXTS = /AppleWebKit/.test(AGENT) && !/Chrome|Chromium|Edg|Firefox/.test(AGENT);
const spareContexts = [];  // {context, suspended: the promise of its suspend}

// Firefox answers outputLatency by asking its audio process, synchronously, while it holds its audio
// graph's lock; the audio thread needs that lock to finish the callback the audio process waits on. So
// a page that reads it while audio plays can freeze for good (seen here under load: the page's main
// thread stuck in that call, the graph's thread waiting on the lock). There only baseLatency is read.
const ASKS_AUDIO_PROCESS = /Firefox\//.test(AGENT);

export function outputLatencyOf(context) {
  return (!ASKS_AUDIO_PROCESS && context.outputLatency) || context.baseLatency || 0;
}

const SPARE_SUSPEND_MS = 2000;  // a spare whose suspend has not settled by then is left, not waited on

export async function ownContext() {
  const spare = KEEPS_CONTEXTS ? spareContexts.pop() : undefined;
  if (spare) {
    // The next player's resume comes after the suspend, never racing it; but a suspend that waits for
    // a click (releaseContext) must not hold up a player made after one: that spare is left.
    const settled = await Promise.race([
      spare.suspended.then(() => true), new Promise((r) => setTimeout(() => r(false), SPARE_SUSPEND_MS))]);
    if (settled && spare.context.state !== "closed") return spare.context;
  }
  return new AudioContext({ latencyHint: "interactive" });
}

export function releaseContext(context) {
  context.onstatechange = null;
  if (context.state === "closed") return Promise.resolve();
  if (!KEEPS_CONTEXTS) return context.close();
  // WebKit holds the suspend() of a context that never started (the autoplay policy held its resume)
  // until the page is clicked: ownContext waits for it a bounded time.
  const suspended = context.suspend().catch(() => {});
  spareContexts.push({ context, suspended });
  return suspended;
}

export function ensureWorklet(context, url) {
  let p = loaded.get(context);
  if (!p) { p = context.audioWorklet.addModule(url); loaded.set(context, p); }
  return p;
}

async function playerNodes(context, url, volume) {
  await ensureWorklet(context, url);
  const node = new AudioWorkletNode(context, PLAYER, { numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1] });
  const gain = new GainNode(context, { gain: volume });
  node.connect(gain).connect(context.destination);
  return { node, gain };
}

// The page's players that sound (not an OfflineAudioContext's): a microphone that cancels echo asks
// their rates, and hears of each new one, since Firefox's canceller hears only some (_context.py).
const soundingPlayers = new Set(), playerWatchers = new Set();
export function playerRates() { return [...soundingPlayers].map((player) => player.context.sampleRate); }
export function watchPlayers(onPlayer) { playerWatchers.add(onPlayer); return () => playerWatchers.delete(onPlayer); }

// The page's player: a Player on node.port, with the context's clock, plus the nodes it owns.
export class PagePlayer extends Player {
  constructor(context, node, gain, onEvent) {
    super(node.port, context.sampleRate, () => context.currentTime * context.sampleRate, STOP_MARGIN_MS.page, onEvent);
    this.context = context; this.node = node; this.gain = gain;
  }
  running() { return this.context.state === "running"; }
  setVolume(volume) { this.gain.gain.setTargetAtTime(volume, this.context.currentTime, 0.01); }
  close() {
    soundingPlayers.delete(this);
    super.close();
    this.node.port.close();
    this.node.disconnect();
    this.gain.disconnect();
  }
}

export async function createPlayer(context, url, volume, onEvent) {
  const { node, gain } = await playerNodes(context, url, volume);
  const player = new PagePlayer(context, node, gain, onEvent);
  if (context instanceof AudioContext) {
    soundingPlayers.add(player);
    try {
      for (const watch of playerWatchers) watch(context.sampleRate);
    } catch (err) { player.close(); throw err; }  // a warning made an error (-W error): no half-made player
  }
  return player;
}

export class Capture extends CapturePort {
  constructor(context, stream, source, node, onChunk) {
    super(node.port, onChunk, null);
    this.context = context; this.stream = stream; this.source = source; this.node = node;
  }
  get sampleRate() { return this.context.sampleRate; }
  close() {
    super.close();
    // Only our own edge: a caller's source node may feed other nodes too, which must keep it.
    try { this.source.disconnect(this.node); } catch (e) { /* the caller already cut it: nothing to do */ }
    this.node.disconnect();
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
  }
}

// Asks for the microphone; the error (NotAllowedError, NotFoundError, ...) propagates to Python,
// which turns it into a message that says what to do.
export async function openMicrophone(constraints) {
  if (!globalThis.navigator || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    const err = new Error("navigator.mediaDevices.getUserMedia is missing (an insecure http:// page?)");
    err.name = "InsecureContextError";
    throw err;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: constraints, video: false });
  } catch (e) {
    // Re-thrown as a plain Error with the same name: Pyodide never settled the await on a raw
    // OverconstrainedError (Chromium 156), and Python only needs the name and message.
    const err = new Error(e && e.message ? e.message : String(e));
    err.name = (e && e.name) || "Error";
    throw err;
  }
  const track = stream.getAudioTracks()[0];
  return { stream, rate: (track && track.getSettings().sampleRate) || 0 };
}

async function captureNode(context, url, source, format, chunkSamples, muted) {
  await ensureWorklet(context, url);
  const node = new AudioWorkletNode(context, CAPTURE, {
    numberOfInputs: 1, numberOfOutputs: 0, channelCountMode: "explicit", channelCount: 1,
    processorOptions: { format, chunkSamples, muted },
  });
  source.connect(node);
  return node;
}

// Wires a capture worklet behind `stream` (a MediaStream) or `sourceNode` (any AudioNode, e.g. a
// file or an oscillator in tests). Chunks of `chunkSamples` samples at the format's rate go to onChunk.
export async function createCapture(context, url, stream, sourceNode, format, chunkSamples, muted, onChunk) {
  const source = sourceNode || new MediaStreamAudioSourceNode(context, { mediaStream: stream });
  const node = await captureNode(context, url, source, format, chunkSamples, muted);
  return new Capture(context, stream, source, node, onChunk);
}

// ---- The page, hosting a worker's audio ------------------------------------------------------------

const clockOf = (context) => Math.round(context.currentTime * context.sampleRate);

// Serve a worker's requests on `control` (a MessagePort): each player or microphone gets its own
// AudioContext and worklet on this page, and the worker a port straight to the worklet.
export function serveWorker(control, url) {
  const handles = new Map();
  let nextHandle = 1;
  const reply = (m, transfer) => control.postMessage(m, transfer || []);
  const hand = (node, extra) => {  // a channel between the worklet and the worker
    const channel = new MessageChannel();
    node.port.postMessage({ type: "connect", port: channel.port1 }, [channel.port1]);
    const handle = nextHandle++;
    handles.set(handle, { node, ...extra });
    return { handle, port: channel.port2 };
  };
  const closeHandle = (h) => {
    handles.delete(h.id);
    if (h.stream) for (const track of h.stream.getTracks()) track.stop();
    if (h.source) h.source.disconnect();
    h.node.disconnect();
    if (h.gain) {  // a player's: its context came from ownContext
      h.gain.disconnect();
      return releaseContext(h.context);
    }
    if (h.context.state !== "closed") return h.context.close();
  };
  const calls = {
    volume: (h, value) => { h.gain.gain.setTargetAtTime(value, h.context.currentTime, 0.01); },
    resume: async (h, timeoutMs) => {  // the autoplay policy may hold it until a click on the page
      if (h.context.state === "suspended") {
        await Promise.race([h.context.resume(), new Promise((r) => setTimeout(r, timeoutMs))]);
      }
      return h.context.state;
    },
    latency: (h) => outputLatencyOf(h.context),
    close: (h) => closeHandle(h),
  };
  control.onmessage = async (e) => {
    const m = e.data, problem = problemWith(m);
    if (problem) { reply({ type: "error", message: `the page got ${problem}` }); return; }
    try {
      if (m.type === "open-player") {
        const context = await ownContext();
        const { node, gain } = await playerNodes(context, url, m.volume);
        let shared = null;
        if (typeof SharedArrayBuffer === "function") {
          try {
            shared = new SharedArrayBuffer(SHARED_WORDS * Int32Array.BYTES_PER_ELEMENT);
            node.port.postMessage({ type: "share", buffer: shared });
          } catch (err) { shared = null; }  // not cross-origin isolated: the reports will do
        }
        const { handle, port } = hand(node, { context, gain });
        handles.get(handle).id = handle;
        context.onstatechange = () => reply({ type: "state", handle, state: context.state, at: clockOf(context) });
        reply({ type: "opened", id: m.id, handle, port, rate: context.sampleRate, at: clockOf(context), state: context.state, shared }, [port]);
      } else if (m.type === "open-capture") {
        const { stream, rate } = await openMicrophone(m.constraints);
        let context, source, node;
        try {
          context = new AudioContext(rate > 0 ? { latencyHint: "interactive", sampleRate: rate } : { latencyHint: "interactive" });
          source = new MediaStreamAudioSourceNode(context, { mediaStream: stream });
          node = await captureNode(context, url, source, m.format, m.chunkSamples, m.muted);
        } catch (err) {
          for (const track of stream.getTracks()) track.stop();
          if (context) context.close();
          throw err;
        }
        if (context.state === "suspended") context.resume();  // no wait: chunks flow once it runs
        const { handle, port } = hand(node, { context, stream, source });
        handles.get(handle).id = handle;
        reply({ type: "opened", id: m.id, handle, port, rate: context.sampleRate, at: clockOf(context) }, [port]);
      } else if (m.type === "call") {
        const h = handles.get(m.handle), call = calls[m.method];
        if (!call) throw new Error(`no method "${m.method}"`);
        const value = h ? await call(h, m.value) : null;  // a handle closed already: nothing to do
        reply({ type: "done", id: m.id, value: value === undefined ? null : value });
      } else {
        reply({ type: "error", message: `the page does not take "${m.type}" messages` });
      }
    } catch (err) {
      reply({ type: "failed", id: m.id, name: (err && err.name) || "Error", message: (err && err.message) || String(err) });
    }
  };
  reply({ type: "hello", pageUrl: String(globalThis.location && location.href) });
}

// ---- A worker: the page's audio, over ports ------------------------------------------------------------

// The worker's link to its page: requests with an id, answered "opened" / "done" / "failed".
export class PageLink {
  constructor(port) {
    this.port = port; this.nextId = 1; this.waiting = new Map(); this.pageUrl = null;
    this.players = new Map();  // handle -> WorkerPlayer, for the page's state reports
    this.hello = new Promise((resolve) => { this.greeted = resolve; });
    port.onmessage = (e) => this.onMessage(e.data);
  }
  onMessage(m) {
    const problem = problemWith(m);
    if (problem || m.type === "error") {
      warn(problem ? `the worker got ${problem}` : m.message);
      return;
    }
    if (m.type === "hello") { this.pageUrl = m.pageUrl; this.greeted(this); return; }
    if (m.type === "state") { const player = this.players.get(m.handle); if (player) player.setState(m.state, m.at); return; }
    const pending = this.waiting.get(m.id);
    if (!pending) return;
    this.waiting.delete(m.id);
    if (m.type === "failed") { const err = new Error(m.message); err.name = m.name; pending.reject(err); }
    else pending.resolve(m);
  }
  request(m) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => { this.waiting.set(id, { resolve, reject }); this.port.postMessage({ ...m, id }); });
  }
  call(handle, method, value) { return this.request({ type: "call", handle, method, value: value === undefined ? null : value }).then((m) => m.value); }

  async openPlayer(volume, onEvent) {
    const m = await this.request({ type: "open-player", volume });
    const player = new WorkerPlayer(this, m.handle, m.port, m.rate, onEvent, m.shared || null);
    player.setState(m.state, m.at);  // read on the page before the answer left: a lower bound, as it must be
    this.players.set(m.handle, player);
    return player;
  }
  async openCapture(constraints, format, chunkSamples, muted, onChunk) {
    const m = await this.request({ type: "open-capture", constraints, format, chunkSamples, muted });
    return new WorkerCapture(this, m.handle, m.port, m.rate, onChunk);
  }
}

export class WorkerPlayer extends Player {
  constructor(link, handle, port, rate, onEvent, shared) {
    const clock = new ReportClock(rate);
    const position = shared ? new Int32Array(shared) : null;
    super(port, rate, () => (position ? this.readShared(position) : clock.now()),
          position ? STOP_MARGIN_MS.page : STOP_MARGIN_MS.worker, onEvent, clock);
    this.link = link; this.handle = handle;
  }
  // The worklet's own figures, this instant: the render position (the clock), and what it consumed.
  readShared(position) {
    const [consumed, at] = readPosition(position);
    if (this.stopping === 0 && at > 0) this.settleTo(consumed, at);
    return Math.max(at, this.reportClock.last);
  }
  running() { return this.reportClock.running; }
  setState(state, at) { this.reportClock.setRunning(state === "running", at); }
  setVolume(volume) { return this.link.call(this.handle, "volume", volume); }
  resume(timeoutMs) { return this.link.call(this.handle, "resume", timeoutMs); }
  outputLatency() { return this.link.call(this.handle, "latency"); }
  close() { super.close(); this.port.close(); this.link.players.delete(this.handle); return this.link.call(this.handle, "close"); }
}

export class WorkerCapture extends CapturePort {
  constructor(link, handle, port, rate, onChunk) {
    super(port, onChunk, null);
    this.link = link; this.handle = handle; this.sampleRate = rate;
  }
  close() { super.close(); this.port.close(); return this.link.call(this.handle, "close"); }
}

// In a worker: ask the page for its audio (once). `source`: this file's text, for the page to load.
let pageLink = null, pagePort = null;
export function connectToPage(source) {
  if (!pageLink) {
    const channel = new MessageChannel();
    const link = new PageLink(channel.port1);
    pageLink = link.hello; pagePort = channel.port1;
    globalThis.postMessage({ type: WORKER_HELLO, source, port: channel.port2 }, [channel.port2]);
  }
  return pageLink;
}

// The page never answered: the next connectToPage asks again (the page may have added its helper since).
export function forgetPage() {
  if (pagePort) pagePort.close();
  pageLink = null; pagePort = null;
}
