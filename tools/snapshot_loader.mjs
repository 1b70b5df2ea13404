// Start Pyodide from a memory snapshot that already holds pydantic and pyodide_realtime, imported.
// tools/make_snapshot.py makes the snapshot folder (this file, manifest.json, pyodide.snapshot and the
// native libraries); a page restores it with:
//
//   const { loadPyodideFromSnapshot } = await import("./snapshot/snapshot_loader.mjs");
//   const pyodide = await loadPyodideFromSnapshot({ indexURL: "./pyodide/", snapshotURL: "./snapshot/" });
//   pyodide.runPython("from pyodide_realtime import OpenAIRealtimeWebSocket");  // already in sys.modules
//
// and falls back to loadPyodide + loadPackage when it throws (a snapshot made in another engine).
//
// Why more than Pyodide's own `_loadSnapshot` option: a snapshot is the wasm memory only. What lives
// outside it must be the same at restore as when the snapshot was made:
// - the memory's size: the wasm module defines its memory (Pyodide's INITIAL_MEMORY setting has no
//   effect), so a snapshot larger than the initial memory fails with "offset is out of bounds" unless
//   the memory is grown first;
// - native libraries (pydantic_core's .so): their code and function-table slots are JS-side state. They
//   are loaded here before the runtime starts, in the same order, both when the snapshot is made and at
//   restore, so they land at the same memory base and table slots; Python's dlopen later finds them
//   already loaded by path;
// - the function table before them: CPython adds a wasm call trampoline to it where the engine has wasm
//   GC (Chromium, Node >= 22; not Node 20 nor iOS) and keeps its slot in memory. A snapshot therefore
//   restores only where the table had the same length when the libraries were loaded: checked here;
// - the file system: pure-Python wheels sit on sys.path as zip files (zipimport), so a restore only
//   writes the same wheel bytes back at the same paths (lazy imports, importlib.resources need them).
// Pyodide's `loadPackage` cannot be used before a snapshot: it records packages in `loadedPackages`, a
// JS object the snapshot requires empty ("Unexpected hiwire entry at index 6"), and loads the .so after
// the runtime started, at addresses a fresh runtime would not reproduce.

export const WHEEL_DIR = "/snapshot/wheels";

/**
 * Wrap the factory exported by pyodide.asm.mjs: before the runtime starts, grow the memory to
 * `memoryBytes`, write `wheels` ({name, bytes}) into WHEEL_DIR and load `libraries` ({path, module:
 * WebAssembly.Module}) in order. `tableLength`, when restoring, is the function table's length the
 * snapshot was made with. Used both to make the snapshot and to restore it.
 */
export function withPreloadedLibraries(createPyodideModule, { libraries, wheels, memoryBytes = 0, tableLength }) {
  return (settings) => {
    const preload = (Module) => {
      Module.snapshotTableLength = Module.wasmTable.length;
      if (tableLength !== undefined && tableLength !== Module.wasmTable.length) {
        throw new Error(`this snapshot was made where the function table had ${tableLength} slots, here it has `
          + `${Module.wasmTable.length}: it does not fit this engine (remake it here, or load normally)`);
      }
      if (memoryBytes > Module.HEAP8.length && !Module.growMemory(memoryBytes)) {
        throw new Error(`could not grow the wasm memory to ${memoryBytes} bytes for the snapshot`);
      }
      Module.FS.mkdirTree(WHEEL_DIR);
      for (const { name, bytes } of wheels) {
        Module.FS.writeFile(`${WHEEL_DIR}/${name}`, bytes);
      }
      for (const { path, module } of libraries) {
        // What Emscripten's loadDynamicLibrary does, with a module compiled ahead (a large module may
        // not be compiled synchronously on a page's main thread).
        const dso = Module.newDSO(path, undefined, "loading");
        dso.refcount = Infinity;
        dso.global = false;
        dso.exports = Module.loadWebAssemblyModule(
          module, { loadAsync: false, nodelete: true, allowUndefined: true }, path, {});
      }
      if (libraries.length) {
        Module.reportUndefinedSymbols();
      }
    };
    // The same settings object: Pyodide keeps it and Emscripten makes it the Module.
    settings.preRun = [...(settings.preRun ?? []), preload];
    return createPyodideModule(settings);
  };
}

/**
 * Make the snapshot (Node or a page): boot with the libraries preloaded and every wheel of
 * `manifest.wheels` in WHEEL_DIR, install them (pure-Python ones on sys.path as zips, the others
 * extracted into site-packages), run `manifest.warm_up`, and return the snapshot with what a restore
 * needs besides it.
 */
export async function makeSnapshot({ loadPyodide, createPyodideModule, indexURL, manifest, libraries, wheels, ...options }) {
  const pyodide = await loadPyodide({
    ...options, indexURL, _makeSnapshot: true,
    createPyodideModule: withPreloadedLibraries(createPyodideModule, { libraries, wheels }),
  });
  // Python gets its arguments as JSON text inside the code: a JS object handed over would leave a
  // reference in the hiwire table, which the snapshot refuses.
  const settings = JSON.stringify({ wheels: manifest.wheels, wheel_dir: WHEEL_DIR, site: manifest.site_packages,
    libraries: manifest.libraries.map((l) => l.path), warm_up: manifest.warm_up });
  pyodide.runPython(`
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
  const snapshot = pyodide.makeMemorySnapshot();
  const { LDSO, snapshotTableLength } = pyodide._module;
  const names = new Set(manifest.libraries.map((l) => l.path));
  const handles = Object.entries(LDSO.loadedLibsByHandle)
    .filter(([handle, dso]) => Number(handle) !== 0 && names.has(dso.name))
    .map(([handle, dso]) => [Number(handle), dso.name]);
  const runtime = globalThis.navigator?.userAgent ?? `Node.js ${globalThis.process?.version}`;
  return { snapshot, handles, table_length: snapshotTableLength, made_in: runtime };
}

/** Give the libraries back their dlopen handles (Python's dlsym on them would fail otherwise). */
export function restoreHandles(pyodide, handles) {
  const { LDSO } = pyodide._module;
  for (const [handle, path] of handles) {
    LDSO.loadedLibsByHandle[handle] = LDSO.loadedLibsByName[path];
  }
}

/**
 * Every restore would otherwise replay the snapshot's `random` state: the same reconnect jitter in
 * every page. (The str hash seed stays the snapshot's: it cannot change under live dicts.)
 */
export const AFTER_RESTORE = "import sys\nif 'random' in sys.modules: sys.modules['random'].seed()\ndel sys";

/**
 * In a page: fetch the snapshot folder's manifest, the snapshot, its libraries and wheels (in
 * parallel with Pyodide's own files), restore, and return the `pyodide` object.
 */
export async function loadPyodideFromSnapshot({ indexURL, snapshotURL, ...options }) {
  const base = new URL(snapshotURL, globalThis.location?.href);
  const index = new URL(indexURL, globalThis.location?.href);
  const manifest = await (await fetch(new URL("manifest.json", base))).json();
  const bytes = async (url) => {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return new Uint8Array(await response.arrayBuffer());
  };
  const compile = async (url) => {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    // compileStreaming compiles while downloading, but only from a response typed application/wasm.
    return response.headers.get("Content-Type")?.startsWith("application/wasm")
      ? WebAssembly.compileStreaming(response) : WebAssembly.compile(await response.arrayBuffer());
  };
  const snapshot = bytes(new URL(manifest.snapshot, base));
  const libraries = Promise.all(manifest.libraries.map(async ({ path, file }) => ({
    path, module: await compile(new URL(file, base)),
  })));
  // zipimport keeps offsets into each wheel in the snapshot: another build of a wheel must not pass.
  // (crypto.subtle exists only in secure contexts: https, localhost.) Pyodide itself refuses a snapshot
  // of another Pyodide build.
  const checked = async (file, sha256) => {
    const data = await bytes(new URL(file, index));
    if (globalThis.crypto?.subtle) {
      const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
      const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
      if (hex !== sha256) throw new Error(`${file} is not the wheel this snapshot was made with: remake the snapshot`);
    }
    return data;
  };
  const wheels = Promise.all(manifest.wheels.filter((w) => w.on_path).map(async ({ file, sha256 }) => ({
    name: file, bytes: await checked(file, sha256),
  })));
  const [{ loadPyodide }, { default: createPyodideModule }] = await Promise.all([
    import(new URL("pyodide.mjs", index).href), import(new URL("pyodide.asm.mjs", index).href),
  ]);
  const snapshotBytes = await snapshot;
  const pyodide = await loadPyodide({
    ...options,
    indexURL: index.href,
    _loadSnapshot: snapshotBytes,
    createPyodideModule: withPreloadedLibraries(createPyodideModule, {
      libraries: await libraries, wheels: await wheels, memoryBytes: snapshotBytes.length,
      tableLength: manifest.table_length,
    }),
  });
  restoreHandles(pyodide, manifest.handles);
  pyodide.runPython(AFTER_RESTORE);
  return pyodide;
}
