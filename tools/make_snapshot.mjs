// Make the memory snapshot of a snapshot folder prepared by tools/make_snapshot.py, under Node, then
// restore it once in the same process to check it (tools/snapshot_loader.mjs explains the method).
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
const { withPreloadedLibraries, restoreHandles, AFTER_RESTORE, WHEEL_DIR } = await import(
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

// 1. A fresh runtime with the libraries preloaded and every wheel in WHEEL_DIR.
let t = performance.now();
const maker = await loadPyodide({
  ...quiet, indexURL, _makeSnapshot: true,
  createPyodideModule: withPreloadedLibraries(createPyodideModule, {
    libraries, wheels: manifest.wheels.map(wheelBytes),
  }),
});
// Python gets its arguments as JSON text inside the code: a JS object handed over would leave a
// reference in the hiwire table, which the snapshot refuses.
const settings = JSON.stringify({ wheels: manifest.wheels, wheel_dir: WHEEL_DIR, site: manifest.site_packages,
  libraries: manifest.libraries.map((l) => l.path), warm_up: manifest.warm_up });
maker.runPython(`
import json as _json
def _prepare(settings):
    import gc, importlib, os, sys, zipfile
    s = _json.loads(settings)
    if s["site"] not in sys.path:
        raise RuntimeError(f"site-packages is not {s['site']!r}: {sys.path}")
    for wheel in s["wheels"]:
        where = f"{s['wheel_dir']}/{wheel['file']}"
        if wheel["on_path"]:
            sys.path.append(where)  # zipimport: a restore only needs the same file back
        else:
            with zipfile.ZipFile(where) as archive:  # native code: extracted, as loadPackage does
                archive.extractall(s["site"])
    for library in s["libraries"]:
        if not os.path.exists(library):
            raise RuntimeError(f"{library} is not where the wheel puts it")
    importlib.invalidate_caches()
    exec(s["warm_up"], {})
    gc.collect()
_prepare(${JSON.stringify(settings)})
del _prepare, _json
`);
const snapshot = maker.makeMemorySnapshot();
const makeMs = performance.now() - t;
const names = new Set(manifest.libraries.map((l) => l.path));
manifest.handles = Object.entries(maker._module.LDSO.loadedLibsByHandle)
  .filter(([handle, dso]) => Number(handle) !== 0 && names.has(dso.name))
  .map(([handle, dso]) => [Number(handle), dso.name]);
manifest.snapshot_bytes = snapshot.length;
writeFileSync(path.join(outDir, manifest.snapshot), snapshot);
writeFileSync(manifestPath, JSON.stringify(manifest, null, 1) + "\n");

// 2. Restore it here, as a page would (minus fetch), and use the restored client.
t = performance.now();
const restored = await loadPyodide({
  ...quiet, indexURL, _loadSnapshot: snapshot,
  createPyodideModule: withPreloadedLibraries(createPyodideModule, {
    libraries, wheels: manifest.wheels.filter((w) => w.on_path).map(wheelBytes), memoryBytes: snapshot.length,
  }),
});
restoreHandles(restored, manifest.handles);
restored.runPython(AFTER_RESTORE);
const check = restored.runPython(manifest.check);
const restoreMs = performance.now() - t;
console.log(JSON.stringify({ make_ms: makeMs, node_restore_ms: restoreMs, snapshot_bytes: snapshot.length, check }));
