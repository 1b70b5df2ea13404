// pyodide-realtime audio shim: two AudioWorklet processors (player, capture) and the main-thread
// helpers that drive them. Python loads this one file into a Blob URL and uses it twice: the
// AudioWorklet runs it with addModule() (the processors register themselves) and the page import()s
// it (the exports below). No protocol logic here: items are opaque integer keys chosen by Python.
//
// Resampling is linear interpolation with its phase kept across chunks (exact integer phase, so no
// drift and the same frame count however the audio is chunked); capture low-passes before it.

const PLAYER = "pyodide-realtime-player";
const CAPTURE = "pyodide-realtime-capture";
const FORMAT_RATES = { pcm16: 24000, g711_ulaw: 8000, g711_alaw: 8000 };
const FADE_FRAMES = 128;        // ramp to/from silence after an underrun or a stop: no click
const PROGRESS_QUANTA = 4;      // post the play position every 4 render quanta (~10 ms at 48 kHz)
const BUTTERWORTH_Q = [0.5411961, 1.3065630];  // two biquads = 4th-order Butterworth low-pass
const CUTOFF_OF_OUTPUT_RATE = 0.4;              // low-pass at 40% of the output rate before decimating

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
  class PlayerProcessor extends AudioWorkletProcessor {
    constructor() {
      super();
      this.queue = [];            // segments {key, data: Float32Array (context rate), pos}
      this.items = new Map();     // key -> {frames, queued, started, finished, resampler, carry}
      this.current = -1;          // key of the item now sounding
      this.last = 0;              // last sample out, faded to 0 on underrun/stop
      this.fadeOut = 0;           // frames of that fade left
      this.fadeIn = 0;            // frames of fade-in left (resuming after an underrun)
      this.starved = false;
      this.quanta = 0;
      this.port.onmessage = (e) => this.onMessage(e.data);
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
        case "stop": this.stop(m.id); break;
        case "query": this.port.postMessage({ type: "report", id: m.id, at: currentFrame, frames: this.counts() }); break;
      }
    }

    enqueue(m) {
      const it = this.item(m.key);
      if (it.ended) return;
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
      if (m.seq !== undefined) this.port.postMessage({ type: "queued", seq: m.seq, key: m.key, frames: count });
    }

    counts() { const c = []; for (const [key, it] of this.items) c.push([key, it.frames]); return c; }

    aheadOf(key) {  // frames of `key` queued at the head, i.e. certain to play next
      let ahead = 0;
      for (const seg of this.queue) { if (seg.key !== key) break; ahead += seg.data.length - seg.pos; }
      return ahead;
    }

    maybeEnd(key, it, reason) {
      if (it.ended || it.queued > 0 || !(it.finished || reason !== "finished")) return;
      it.ended = true;
      this.port.postMessage({ type: "ended", key, frames: it.frames, reason, at: currentFrame });
    }

    stop(id) {
      const reports = this.counts();
      this.queue = [];
      for (const [key, it] of this.items) {
        it.queued = 0;
        if (!it.ended && (it.started || it.finished || it.resampler)) this.maybeEnd(key, it, "interrupted");
      }
      this.current = -1;
      this.starved = false;
      this.port.postMessage({ type: "stopped", id, at: currentFrame, frames: reports });
    }

    process(inputs, outputs) {
      const out = outputs[0][0];
      const n = out.length;
      let i = 0;
      while (i < n && this.queue.length > 0) {
        const seg = this.queue[0];
        if (seg.key !== this.current) {
          const prev = this.current >= 0 ? this.items.get(this.current) : null;
          if (prev) this.maybeEnd(this.current, prev, prev.finished ? "finished" : "next");
          this.current = seg.key;
          const it = this.item(seg.key);
          if (!it.started) {
            it.started = true;
            this.port.postMessage({ type: "started", key: seg.key, at: currentFrame + i });
          }
        }
        const it = this.items.get(seg.key);
        const take = Math.min(n - i, seg.data.length - seg.pos);
        out.set(seg.data.subarray(seg.pos, seg.pos + take), i);
        if (this.fadeIn > 0) {
          for (let j = 0; j < take && this.fadeIn > 0; j++, this.fadeIn--) out[i + j] *= 1 - this.fadeIn / FADE_FRAMES;
        }
        seg.pos += take; i += take; it.frames += take; it.queued -= take;
        this.fadeOut = FADE_FRAMES;  // armed: if silence follows, it starts from this sample
        this.last = out[i - 1];
        if (seg.pos >= seg.data.length) this.queue.shift();
      }
      if (i < n) {
        // Nothing queued: fade from the last sample to silence, then silence (never stale data).
        if (this.current >= 0) {
          const it = this.items.get(this.current);
          if (it.finished) { this.maybeEnd(this.current, it, "finished"); this.current = -1; }
          else if (!this.starved) {
            this.starved = true;
            this.fadeIn = FADE_FRAMES;
            this.port.postMessage({ type: "underrun", key: this.current, at: currentFrame + i });
          }
        }
        for (; i < n; i++) {
          out[i] = this.fadeOut > 0 ? this.last * (this.fadeOut-- / FADE_FRAMES) : 0;
        }
        if (this.fadeOut === 0) this.last = 0;
      } else {
        this.starved = false;
      }
      if (this.current >= 0 && ++this.quanta % PROGRESS_QUANTA === 0) {
        const it = this.items.get(this.current);
        this.port.postMessage({ type: "progress", key: this.current, frames: it.frames, at: currentFrame + n, ahead: this.aheadOf(this.current) });
      }
      return true;
    }
  }

  class CaptureProcessor extends AudioWorkletProcessor {
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
      this.port.onmessage = (e) => {
        if (e.data.type === "mute") this.muted = e.data.value;
        else if (e.data.type === "stop") this.running = false;
      };
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
          this.port.postMessage({ type: "chunk", data: this.chunk.buffer, at: currentFrame }, [this.chunk.buffer]);
          this.fresh();
        }
      }
      return true;
    }
  }

  registerProcessor(PLAYER, PlayerProcessor);
  registerProcessor(CAPTURE, CaptureProcessor);
}

// ---- Main thread ----------------------------------------------------------------------------------

const loaded = new WeakMap();  // context -> addModule promise (once per context)

export function ensureWorklet(context, url) {
  let p = loaded.get(context);
  if (!p) { p = context.audioWorklet.addModule(url); loaded.set(context, p); }
  return p;
}

// A Player keeps the latest play position per key (fed by the worklet's progress messages, no Python
// call per message) and extrapolates it with the context clock, bounded by what was queued.
export class Player {
  constructor(context, node, gain, onEvent) {
    this.context = context; this.node = node; this.gain = gain; this.onEvent = onEvent;
    this.frames = new Map();   // key -> frames rendered, as last reported
    this.live = null;          // {key, frames, at, ahead}: the last progress report of the sounding item
    this.waiting = new Map();  // id -> resolve, for query()/stop() round trips
    this.nextId = 1;
    this.stopping = 0;         // stops posted, not yet confirmed
    node.port.onmessage = (e) => this.onMessage(e.data);
  }

  onMessage(m) {
    switch (m.type) {
      case "progress":
        if (this.stopping > 0) return;  // rendered before the stop: the frozen value stands until "stopped"
        this.frames.set(m.key, m.frames);
        this.live = m;
        return;
      case "report": case "stopped":
        if (m.type === "stopped") { this.live = null; this.stopping--; }
        if (m.type === "stopped" || this.stopping === 0) for (const [key, frames] of m.frames) this.frames.set(key, frames);
        this.settle(m);
        return;
      case "started": case "underrun":
        if (!this.frames.has(m.key)) this.frames.set(m.key, 0);
        break;
      case "ended":
        this.frames.set(m.key, m.frames);
        if (this.live && this.live.key === m.key) this.live = null;
        break;
      case "queued":
        break;
    }
    if (this.onEvent) this.onEvent(m.type, m.key ?? -1, m.frames ?? 0, m.reason ?? "", m.seq ?? m.id ?? -1);
  }

  settle(m) {
    const resolve = this.waiting.get(m.id);
    if (resolve) { this.waiting.delete(m.id); resolve(m); }
  }

  play(key, format, bytes, seq) {
    // Transfer, never copy again: the buffer goes to the audio thread as is.
    const data = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes.buffer : bytes.slice().buffer;
    const m = { type: "chunk", key, format, data };
    if (seq !== undefined && seq !== null && seq >= 0) m.seq = seq;
    this.node.port.postMessage(m, [data]);
  }

  finish(key) { this.node.port.postMessage({ type: "finish", key }); }

  heardFrames(key) {
    if (!this.frames.has(key)) return -1;
    const live = this.live;
    if (!live || live.key !== key) return this.frames.get(key);
    const now = Math.round(this.context.currentTime * this.context.sampleRate);
    return live.frames + Math.min(Math.max(now - live.at, 0), live.ahead);
  }

  request(type) {
    const id = this.nextId++;
    const done = new Promise((resolve) => this.waiting.set(id, resolve));
    this.node.port.postMessage({ type, id });
    return done;
  }

  // Freeze the positions where they are now, then tell the worklet (exact counts come back).
  stop() {
    if (this.live) { this.frames.set(this.live.key, this.heardFrames(this.live.key)); this.live = null; }
    this.stopping++;
    return this.request("stop");
  }

  query() { return this.request("query"); }

  setVolume(volume) { this.gain.gain.setTargetAtTime(volume, this.context.currentTime, 0.01); }

  close() {
    this.node.port.onmessage = null;
    this.node.port.close();
    this.node.disconnect();
    this.gain.disconnect();
    for (const resolve of this.waiting.values()) resolve(null);
    this.waiting.clear();
    this.onEvent = null;
  }
}

export async function createPlayer(context, url, volume, onEvent) {
  await ensureWorklet(context, url);
  const node = new AudioWorkletNode(context, PLAYER, { numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1] });
  const gain = new GainNode(context, { gain: volume });
  node.connect(gain).connect(context.destination);
  return new Player(context, node, gain, onEvent);
}

export class Capture {
  constructor(context, stream, source, node, onChunk) {
    this.context = context; this.stream = stream; this.source = source; this.node = node; this.onChunk = onChunk;
    node.port.onmessage = (e) => { if (e.data.type === "chunk" && this.onChunk) this.onChunk(new Uint8Array(e.data.data)); };
  }
  get sampleRate() { return this.context.sampleRate; }
  setMuted(value) { this.node.port.postMessage({ type: "mute", value }); }
  close() {
    this.onChunk = null;
    this.node.port.postMessage({ type: "stop" });
    this.node.port.onmessage = null;
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

// Wires a capture worklet behind `stream` (a MediaStream) or `sourceNode` (any AudioNode, e.g. a
// file or an oscillator in tests). Chunks of `chunkSamples` samples at the format's rate go to onChunk.
export async function createCapture(context, url, stream, sourceNode, format, chunkSamples, muted, onChunk) {
  await ensureWorklet(context, url);
  const source = sourceNode || new MediaStreamAudioSourceNode(context, { mediaStream: stream });
  const node = new AudioWorkletNode(context, CAPTURE, {
    numberOfInputs: 1, numberOfOutputs: 0, channelCountMode: "explicit", channelCount: 1,
    processorOptions: { format, chunkSamples, muted },
  });
  source.connect(node);
  return new Capture(context, stream, source, node, onChunk);
}
