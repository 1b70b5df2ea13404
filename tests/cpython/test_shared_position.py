"""The player's position shared with a worker (audio_shim.js: PositionWriter, readPosition), across threads.

A worker of a cross-origin isolated page reads the worklet's [frames consumed, render position] from
shared memory as its clock; the worklet writes them every quantum in Int32 words (no BigInt per
quantum). Here a writer thread (node's worker_threads: a real second thread on the same
SharedArrayBuffer, as the audio thread is) writes as the worklet does, through playing and idle
stretches and across the 2^32 boundary of each word pair, while the main thread reads as fast as it
can: every pair read must be one the writer wrote (never half of one update and half of another), and
neither figure may ever go back. The writer goes on until the reader has seen 10,000 updates (however
the two threads were scheduled), and before that every quantum around the boundaries reads back whole.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

SHIM = Path(__file__).resolve().parents[2] / "src" / "pyodide_realtime" / "audio_shim.js"

# The writer: quantum k renders up to at(k) = base + 128 k. In even stretches of STRETCH quanta a reply
# plays (consumed = at - 64: every word changes), in odd ones nothing does (consumed stays where the
# last playing quantum left it: only the position's low word moves, unless its high word turns over).
SCRIPT = r"""
import { Worker } from "node:worker_threads";
const [shimUrl, crossAt, quanta] = JSON.parse(process.argv[1]);
const STRETCH = 1000, W = 2 ** 32, base = W - 128 * crossAt;
const expected = (at) => {
  const k = (at - base) / 128, stretch = Math.floor(k / STRETCH);
  const last = stretch % 2 === 0 ? k : stretch * STRETCH - 1;  // the last quantum that played
  return last < 0 ? 0 : base + 128 * last - 64;
};
const buffer = new SharedArrayBuffer(5 * 4), flags = new Int32Array(new SharedArrayBuffer(12));  // [go, done, seen enough]
const writer = new Worker(`
  import { workerData, parentPort } from "node:worker_threads";
  const { PositionWriter } = await import(workerData.shimUrl);
  const { buffer, flags, base, quanta, STRETCH } = workerData, w = new PositionWriter(buffer);
  parentPort.postMessage("ready");
  Atomics.wait(flags, 0, 0);  // both threads start together
  let consumed = 0;
  for (let k = 0; k < quanta || !Atomics.load(flags, 2); k++) {  // on, until the reader saw it move enough
    const at = base + 128 * k;
    if (Math.floor(k / STRETCH) % 2 === 0) consumed = at - 64;
    w.write(consumed, at);
  }
  Atomics.store(flags, 1, 1);
`, { eval: true, workerData: { shimUrl, buffer, flags, base, quanta, STRETCH } });
const { readPosition, PositionWriter } = await import(shimUrl);
// First alone, quantum by quantum, across both boundaries: each write reads back whole.
const alone = new SharedArrayBuffer(5 * 4), mine = new PositionWriter(alone), aloneWords = new Int32Array(alone);
for (let k = crossAt - 3 * STRETCH; k < crossAt + 3 * STRETCH; k++) {
  const at = base + 128 * k;
  mine.write(expected(at), at);
  const [consumed, got] = readPosition(aloneWords);
  if (consumed !== expected(at) || got !== at) { console.log(JSON.stringify({ bad: { alone: true, k, consumed, got } })); process.exit(0); }
}
await new Promise((resolve, reject) => { writer.once("message", resolve); writer.once("error", reject); });
Atomics.store(flags, 0, 1);
Atomics.notify(flags, 0);
const words = new Int32Array(buffer);
let reads = 0, moved = 0, last = [0, 0], bad = null;
for (;;) {
  const finished = Atomics.load(flags, 1) === 1;
  const [consumed, at] = readPosition(words);
  reads++;
  if (at !== 0 || consumed !== 0) {
    if (consumed !== expected(at)) bad = bad || { consumed, at, expected: expected(at) };
    if (consumed < last[0] || at < last[1]) bad = bad || { back: true, consumed, at, last };
    if (at !== last[1] && ++moved === 10000) Atomics.store(flags, 2, 1);
    last = [consumed, at];
  }
  if (finished) break;
}
await writer.terminate();
console.log(JSON.stringify({ reads, moved, last, bad, crossed: last[1] > W }));
"""


@pytest.mark.parametrize("cross_in", ["playing", "idle"])
def test_a_reader_never_takes_half_an_update_nor_goes_back(cross_in: str) -> None:
    if shutil.which("node") is None:
        pytest.fail("node is needed (./build.sh setup installs it)")
    cross_at = 1_000_000 if cross_in == "playing" else 1_001_000  # the quantum whose position passes 2^32
    quanta = 2_000_000
    args = json.dumps([SHIM.as_uri(), cross_at, quanta])
    result = subprocess.run(["node", "--input-type=module", "-e", SCRIPT, args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["bad"] is None, report
    assert report["crossed"], report
