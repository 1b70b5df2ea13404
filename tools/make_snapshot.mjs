// Make the memory snapshot of a snapshot folder prepared by tools/make_snapshot.py, under Node, then
// restore it once in the same process to check it (tools/snapshot_loader.mjs explains the method).
// A snapshot made here restores under the same Node only: Node 20 has no wasm GC, so CPython's call
// trampoline is missing from the function table that a browser has (make_snapshot.py --in chromium).
//
//   node tools/make_snapshot.mjs PYODIDE_DIR SNAPSHOT_DIR
//
// Reads SNAPSHOT_DIR/manifest.json, writes SNAPSHOT_DIR/pyodide.snapshot, adds the libraries' dlopen
// handles to the manifest, and prints one JSON line of figures (milliseconds, bytes) on stdout.
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const [pyodideDir, outDir] = process.argv.slice(2).map((p) => path.resolve(p));
if (!pyodideDir || !outDir) {
  console.error("usage: node tools/make_snapshot.mjs PYODIDE_DIR SNAPSHOT_DIR");
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));
const { withPreloadedLibraries, makeSnapshot, restoreHandles, AFTER_RESTORE } = await import(
  pathToFileURL(path.join(here, "snapshot_loader.mjs")).href);
const { loadPyodide } = await import(pathToFileURL(path.join(pyodideDir, "pyodide.mjs")).href);
const { default: createPyodideModule } = await import(
  pathToFileURL(path.join(pyodideDir, "pyodide.asm.mjs")).href);

const manifestPath = path.join(outDir, "manifest.json");
const manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
const libraries = manifest.libraries.map(({ path: soPath, file }) => ({
  path: soPath, module: new WebAssembly.Module(readFileSync(path.join(outDir, file))),
}));
const wheelBytes = (wheel) => ({ name: wheel.file, bytes: readFileSync(path.join(pyodideDir, wheel.file)) });
const indexURL = pyodideDir + "/";
const quiet = { stdout: () => {}, stderr: (line) => console.error(line) };

// 1. A fresh runtime with the libraries preloaded and every wheel in WHEEL_DIR, snapshotted.
let t = performance.now();
const made = await makeSnapshot({
  ...quiet, loadPyodide, createPyodideModule, indexURL, manifest, libraries, wheels: manifest.wheels.map(wheelBytes),
});
const { snapshot } = made;
const makeMs = performance.now() - t;
Object.assign(manifest, { handles: made.handles, table_length: made.table_length, made_in: made.made_in,
  snapshot_bytes: snapshot.length });
writeFileSync(path.join(outDir, manifest.snapshot), snapshot);
writeFileSync(manifestPath, JSON.stringify(manifest, null, 1) + "\n");

// 2. Restore it here, as a page would (minus fetch), and use the restored client.
t = performance.now();
const restored = await loadPyodide({
  ...quiet, indexURL, _loadSnapshot: snapshot,
  createPyodideModule: withPreloadedLibraries(createPyodideModule, {
    libraries, wheels: manifest.wheels.filter((w) => w.on_path).map(wheelBytes), memoryBytes: snapshot.length,
    tableLength: manifest.table_length,
  }),
});
restoreHandles(restored, manifest.handles);
restored.runPython(AFTER_RESTORE);
const check = restored.runPython(manifest.check);
const restoreMs = performance.now() - t;
console.log(JSON.stringify({ make_ms: makeMs, node_restore_ms: restoreMs, snapshot_bytes: snapshot.length, check }));
