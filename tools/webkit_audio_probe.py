"""Loop one Web Audio operation sequence in WebKitGTK's web process and count crashes ("WebProcess CRASHED").

    .venv/bin/python tools/webkit_audio_probe.py SCENARIO [--rounds N] [--runs R] [--gdb]

Each run starts a new driver session (a new MiniBrowser and web process), opens a blank page served on
loopback, clicks it (WebKit's Web Audio needs a gesture), then runs the scenario's JS ``rounds`` times.
``--gdb`` attaches gdb to the web process and prints the backtrace of the first SIGSEGV below address
4096 (a null pointer; JavaScriptCore's WebAssembly bounds checks fault at other addresses, passed on).

What it found in WebKitGTK 2.50.6 (Debian bookworm), plain JS, no Pyodide (issue 20): the web process
dies of a SIGSEGV at 0x38 (``cmp %bpl,0x38(%rdi)``, the same instruction every time) on the newest
"AudioWorklet" thread when an AudioContext whose AudioWorkletNode has rendered is closed: in 1 of
roughly 3 to 150 closes. No order of teardown avoids it (the port closed first, the nodes disconnected,
the processor quiet or ended by returning false, the context suspended first: all crashed), nor does
staying silent on the port. Contexts never closed do not crash (one context reused by every round, or a
new one per round left suspended), nor do contexts whose worklet never rendered, nor those that only
loaded the module, nor a microphone's (a MediaStreamSource into a node without outputs): so the
package's player, on a context of its own, is what meets it, and its microphone is not.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "browser"), str(ROOT / "tools")]

from engines import EngineError, open_engine, start_realtime_server  # noqa: E402

PAGE = """<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,">
<body style="margin:0;min-height:100vh"><script>
const WORKLET = `
class Tap extends AudioWorkletProcessor {
  constructor() { super(); this.n = 0; this.port.onmessage = (e) => this.port.postMessage({n: this.n, got: e.data && e.data.type}); }
  process(inputs, outputs) { this.n++; if (this.n % 2 === 0) this.port.postMessage({n: this.n}); return true; }
}
registerProcessor("tap", Tap);
class Silent extends AudioWorkletProcessor {
  constructor() { super(); this.port.onmessage = (e) => this.port.postMessage({got: e.data && e.data.type}); }
  process() { return true; }
}
registerProcessor("silent", Silent);
class Hush extends AudioWorkletProcessor {
  constructor() { super(); this.n = 0; this.quiet = false; this.port.onmessage = () => { this.quiet = true; this.port.postMessage({hushed: true}); }; }
  process() { this.n++; if (!this.quiet && this.n % 2 === 0) this.port.postMessage({n: this.n}); return true; }
}
registerProcessor("hush", Hush);
class Retire extends AudioWorkletProcessor {
  constructor() { super(); this.n = 0; this.live = true; this.port.onmessage = () => { this.live = false; }; }
  process() { this.n++; if (!this.live) { this.port.postMessage({retired: true}); return false; } if (this.n % 2 === 0) this.port.postMessage({n: this.n}); return true; }
}
registerProcessor("retire", Retire);`;
window.workletUrl = URL.createObjectURL(new Blob([WORKLET], {type: "text/javascript"}));
window.pause = (ms) => new Promise((r) => setTimeout(r, ms));
window.ready = true;
</script></body>"""

#: JS bodies of one round (an async function's body); each makes its own context(s) and closes them.
SCENARIOS = {
    # A context with a worklet node whose port chatters, closed with everything still connected.
    "close-connected": """
        const c = new AudioContext(); await c.resume(); await c.audioWorklet.addModule(workletUrl);
        const n = new AudioWorkletNode(c, "tap"); n.connect(c.destination); n.port.onmessage = () => {};
        await pause(30); await c.close();""",
    # The same, with messages posted to the node's port right after close().
    "post-after-close": """
        const c = new AudioContext(); await c.resume(); await c.audioWorklet.addModule(workletUrl);
        const n = new AudioWorkletNode(c, "tap"); n.connect(c.destination); n.port.onmessage = () => {};
        await pause(30); const closing = c.close();
        for (let i = 0; i < 20; i++) n.port.postMessage({type: "query", buf: new ArrayBuffer(64)});
        await closing; for (let i = 0; i < 20; i++) { const b = new ArrayBuffer(4096); n.port.postMessage({type: "chunk", b}, [b]); }
        await pause(10);""",
    # Messages posted only while close() is under way.
    "post-during-close": """
        const c = new AudioContext(); await c.resume(); await c.audioWorklet.addModule(workletUrl);
        const n = new AudioWorkletNode(c, "tap"); n.connect(c.destination); n.port.onmessage = () => {};
        await pause(30); const closing = c.close();
        for (let i = 0; i < 20; i++) n.port.postMessage({type: "query"});
        await closing; await pause(10);""",
    # Messages posted only once close() has settled, without a transfer.
    "post-after-closed": """
        const c = new AudioContext(); await c.resume(); await c.audioWorklet.addModule(workletUrl);
        const n = new AudioWorkletNode(c, "tap"); n.connect(c.destination); n.port.onmessage = () => {};
        await pause(30); await c.close();
        for (let i = 0; i < 20; i++) n.port.postMessage({type: "query"});
        await pause(10);""",
    # One message posted once close() has settled, its answer awaited (query_heard_ms after a close).
    "query-after-closed": """
        const c = new AudioContext(); await c.resume(); await c.audioWorklet.addModule(workletUrl);
        const n = new AudioWorkletNode(c, "tap"); n.connect(c.destination); await pause(30); await c.close();
        const answer = new Promise((r) => { n.port.onmessage = r; setTimeout(r, 500); });
        n.port.postMessage({type: "query"}); await answer;""",
    # The node's port closed before the context (no message can reach the worklet after the close).
    "port-closed-first": """
        const c = new AudioContext(); await c.resume(); await c.audioWorklet.addModule(workletUrl);
        const n = new AudioWorkletNode(c, "tap"); n.connect(c.destination); n.port.onmessage = () => {};
        await pause(30); n.port.onmessage = null; n.port.close(); await c.close(); await pause(10);""",
    # A processor that never posts, connected and rendering, then the context closed.
    "silent-close": """
        const c = new AudioContext(); await c.resume(); await c.audioWorklet.addModule(workletUrl);
        const n = new AudioWorkletNode(c, "silent"); n.connect(c.destination);
        await pause(30); await c.close(); await pause(10);""",
    # A chattering processor told to stop posting (its ack awaited) before the context closes.
    "hush-then-close": """
        const c = new AudioContext(); await c.resume(); await c.audioWorklet.addModule(workletUrl);
        const n = new AudioWorkletNode(c, "hush"); n.connect(c.destination);
        const hushed = new Promise((r) => { n.port.onmessage = (e) => { if (e.data.hushed) r(); }; });
        await pause(30); n.port.postMessage("hush"); await hushed; await c.close(); await pause(10);""",
    # A chattering processor not connected to the destination.
    "unconnected-close": """
        const c = new AudioContext(); await c.resume(); await c.audioWorklet.addModule(workletUrl);
        const n = new AudioWorkletNode(c, "tap"); n.port.onmessage = () => {};
        await pause(30); await c.close(); await pause(10);""",
    # A chattering processor whose messages nobody listens to (no onmessage: the port never starts).
    "unlistened-close": """
        const c = new AudioContext(); await c.resume(); await c.audioWorklet.addModule(workletUrl);
        const n = new AudioWorkletNode(c, "tap"); n.connect(c.destination);
        await pause(30); await c.close(); await pause(10);""",
    # One context for every round (made once, never closed): only nodes come and go.
    "reuse-context": """
        if (!window.shared) { window.shared = new AudioContext(); await shared.audioWorklet.addModule(workletUrl); }
        const c = shared; await c.resume();
        const n = new AudioWorkletNode(c, "tap"); const g = new GainNode(c); n.connect(g).connect(c.destination);
        n.port.onmessage = () => {}; await pause(30);
        n.port.onmessage = null; n.port.close(); n.disconnect(); g.disconnect();""",
    # The same, the shared context suspended between rounds (how a pool of idle contexts would keep them).
    "reuse-suspend": """
        if (!window.shared) { window.shared = new AudioContext(); await shared.audioWorklet.addModule(workletUrl); }
        const c = shared; await c.resume();
        const n = new AudioWorkletNode(c, "tap"); const g = new GainNode(c); n.connect(g).connect(c.destination);
        n.port.onmessage = () => {}; await pause(30);
        n.port.onmessage = null; n.port.close(); n.disconnect(); g.disconnect(); await c.suspend();""",
    # A new context every round, never closed: suspended once its node is gone (is creation enough?).
    "fresh-never-closed": """
        const c = new AudioContext(); await c.resume(); await c.audioWorklet.addModule(workletUrl);
        const n = new AudioWorkletNode(c, "tap"); const g = new GainNode(c); n.connect(g).connect(c.destination);
        n.port.onmessage = () => {}; await pause(30);
        n.port.onmessage = null; n.port.close(); n.disconnect(); g.disconnect(); await c.suspend();""",
    # A node made on a new context, neither connected nor rendered, and the context closed.
    "node-unconnected-suspended": """
        const c = new AudioContext(); await c.audioWorklet.addModule(workletUrl);
        const n = new AudioWorkletNode(c, "silent"); await c.close();""",
    # The context suspended (awaited: rendering stopped) before it is closed.
    "suspend-then-close": """
        const c = new AudioContext(); await c.resume(); await c.audioWorklet.addModule(workletUrl);
        const n = new AudioWorkletNode(c, "tap"); const g = new GainNode(c); n.connect(g).connect(c.destination);
        n.port.onmessage = () => {}; await pause(30);
        n.port.onmessage = null; n.port.close(); n.disconnect(); g.disconnect(); await c.suspend(); await c.close();""",
    # The processor told to end (its process() returns false, after a last message), then the context closed.
    "retire-then-close": """
        const c = new AudioContext(); await c.resume(); await c.audioWorklet.addModule(workletUrl);
        const n = new AudioWorkletNode(c, "retire"); const g = new GainNode(c); n.connect(g).connect(c.destination);
        const retired = new Promise((r) => { n.port.onmessage = (e) => { if (e.data.retired) r(); }; });
        await pause(30); n.port.postMessage("bye"); await retired;
        n.port.onmessage = null; n.port.close(); n.disconnect(); g.disconnect(); await c.close();""",
    # Teardown as the library's player does it: port.close(), disconnect, then context.close().
    "library-order": """
        const c = new AudioContext(); await c.resume(); await c.audioWorklet.addModule(workletUrl);
        const n = new AudioWorkletNode(c, "tap"); const g = new GainNode(c); n.connect(g).connect(c.destination);
        n.port.onmessage = () => {}; await pause(30);
        n.port.onmessage = null; n.port.close(); n.disconnect(); g.disconnect(); await c.close();""",
    # A microphone through a MediaStreamSource into a worklet; closed with the source connected, track stopped after.
    "mic-close-then-stop": """
        const s = await navigator.mediaDevices.getUserMedia({audio: true});
        const c = new AudioContext(); await c.resume(); await c.audioWorklet.addModule(workletUrl);
        const src = new MediaStreamAudioSourceNode(c, {mediaStream: s}); const n = new AudioWorkletNode(c, "tap");
        src.connect(n); n.port.onmessage = () => {}; await pause(30);
        await c.close(); for (const t of s.getTracks()) t.stop();""",
    # The same, the track stopped first (as the library's Capture.close does), then the context closed.
    "mic-stop-then-close": """
        const s = await navigator.mediaDevices.getUserMedia({audio: true});
        const c = new AudioContext(); await c.resume(); await c.audioWorklet.addModule(workletUrl);
        const src = new MediaStreamAudioSourceNode(c, {mediaStream: s}); const n = new AudioWorkletNode(c, "tap");
        src.connect(n); n.port.onmessage = () => {}; await pause(30);
        n.port.onmessage = null; n.port.close(); src.disconnect(n); n.disconnect();
        for (const t of s.getTracks()) t.stop(); await c.close();""",
    # The library's capture: a microphone into a worklet node without outputs (so it always renders),
    # the track stopped and the nodes disconnected, then the context closed.
    "mic-capture-close": """
        const s = await navigator.mediaDevices.getUserMedia({audio: true});
        const c = new AudioContext(); await c.resume(); await c.audioWorklet.addModule(workletUrl);
        const src = new MediaStreamAudioSourceNode(c, {mediaStream: s});
        const n = new AudioWorkletNode(c, "tap", {numberOfInputs: 1, numberOfOutputs: 0});
        src.connect(n); n.port.onmessage = () => {}; await pause(30);
        n.port.onmessage = null; n.port.close(); src.disconnect(n);
        for (const t of s.getTracks()) t.stop(); await c.close();""",
    # Only contexts with a worklet module, nothing else (the thread leak).
    "worklet-only": """
        const c = new AudioContext(); await c.audioWorklet.addModule(workletUrl); await c.close();""",
    # A context closed while addModule is still under way.
    "close-during-addmodule": """
        const c = new AudioContext(); const p = c.audioWorklet.addModule(workletUrl); await c.close();
        try { await p; } catch (e) {}""",
    # A node made, the context closed before it renders (no resume).
    "suspended-close": """
        const c = new AudioContext(); await c.audioWorklet.addModule(workletUrl);
        const n = new AudioWorkletNode(c, "tap"); n.connect(c.destination); await c.close();""",
}


def attach_gdb(pid: int, out: Path) -> subprocess.Popen[bytes]:
    script = out.with_suffix(".gdb.py")
    script.write_text(
        "import gdb\n"
        "def on_stop(ev):\n"
        "    if not isinstance(ev, gdb.SignalEvent) or ev.stop_signal != 'SIGSEGV':\n"
        "        gdb.post_event(lambda: gdb.execute('continue')); return\n"
        "    addr = int(gdb.parse_and_eval('$_siginfo._sifields._sigfault.si_addr'))\n"
        "    if addr >= 4096:\n"
        "        gdb.post_event(lambda: gdb.execute('continue')); return\n"
        "    gdb.write('CRASH addr=%#x\\n' % addr)\n"
        "    gdb.execute('info threads')\n"
        "    gdb.execute('bt 40')\n"
        "    gdb.execute('info registers rip')\n"
        "    gdb.execute('x/12i $pc-24')\n"
        "    gdb.post_event(lambda: gdb.execute('kill'))\n"
        "gdb.events.stop.connect(on_stop)\n"
    )
    return subprocess.Popen(
        ["gdb", "-q", "-p", str(pid), "-batch", "-ex", "set pagination off", "-ex", "handle all nostop noprint pass",
         "-ex", "handle SIGSEGV stop print pass", "-ex", f"source {script}", "-ex", "continue"],
        stdout=out.open("wb"), stderr=subprocess.STDOUT,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--gdb", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wkprobe-"))
    (work / "probe.html").write_text(PAGE)
    server = start_realtime_server(host="127.0.0.1", port=0, web_root=str(work), mounts={"/pyodide": ROOT / "dist" / "pyodide"})
    crashes = 0
    try:
        with open_engine("webkit", work) as engine:
            for run in range(args.runs):
                engine.renew()
                page = engine.open(f"{server.url.rstrip('/')}/probe.html", wait_for_pyodide=False)
                gdb = attach_gdb(engine.web_process_pid, work / f"gdb-{run}.txt") if args.gdb else None
                if gdb:
                    time.sleep(3)  # gdb attaches (stops the process) before the loop starts
                started = time.monotonic()
                done = 0
                try:
                    while done < args.rounds:
                        done += 1
                        page.click()
                        page.eval_js(SCENARIOS[args.scenario])
                    print(f"run {run}: {args.rounds} rounds, no crash, {time.monotonic() - started:.0f} s", flush=True)
                except EngineError as exc:
                    crashes += "crash" in str(exc)
                    print(f"run {run}: round {done}: {exc}", flush=True)
                if gdb:
                    gdb.wait(60) if engine.crashed else gdb.terminate()
                    text = (work / f"gdb-{run}.txt").read_text(errors="replace")
                    if "CRASH" in text:
                        print(text[text.index("CRASH"):], flush=True)
    finally:
        server.stop()
    print(f"{args.scenario}: {crashes} crash(es) in {args.runs} run(s) of {args.rounds} rounds; logs in {work}")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
