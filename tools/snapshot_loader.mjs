// Start Pyodide from a memory snapshot that already holds pydantic and pyodide_realtime, imported.
// tools/make_snapshot.py makes the snapshot folder (this file, manifest.json, pyodide.snapshot and the
// native libraries); a page restores it with:
//
//   const { loadPyodideFromSnapshot } = await import("./snapshot/snapshot_loader.mjs");
//   const pyodide = await loadPyodideFromSnapshot({ indexURL: "./pyodide/", snapshotURL: "./snapshot/" });
//   pyodide.runPython("from pyodide_realtime import OpenAIRealtimeWebSocket");  // already in sys.modules
//
// Why more than Pyodide's own `_loadSnapshot` option: a snapshot is the wasm memory only. Three things
// live outside it and must be the same at restore as when the snapshot was made:
// - the memory's size: the wasm module defines its memory (Pyodide's INITIAL_MEMORY setting has no
//   effect), so a snapshot larger than the initial memory fails with "offset is out of bounds" unless
//   the memory is grown first;
// - native libraries (pydantic_core's .so): their code and function-table slots are JS-side state. They
//   are loaded here before the runtime starts, in the same order, both when the snapshot is made and at
//   restore, so they land at the same memory base and table slots; Python's dlopen later finds them
//   already loaded by path;
// - the file system: pure-Python wheels sit on sys.path as zip files (zipimport), so a restore only
//   writes the same wheel bytes back at the same paths (lazy imports, importlib.resources need them).
// Pyodide's `loadPackage` cannot be used before a snapshot: it leaves JS objects in the hiwire table
// ("Unexpected hiwire entry") and loads the .so after the runtime started, at addresses a fresh runtime
// would not reproduce.

export const WHEEL_DIR = "/snapshot/wheels";

/**
 * Wrap the factory exported by pyodide.asm.mjs: before the runtime starts, grow the memory to
 * `memoryBytes`, write `wheels` ({name, bytes}) into WHEEL_DIR and load `libraries` ({path, module:
 * WebAssembly.Module}) in order. Used both to make the snapshot and to restore it.
 */
export function withPreloadedLibraries(createPyodideModule, { libraries, wheels, memoryBytes = 0 }) {
  return (settings) => {
    const preload = (Module) => {
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
  const snapshot = bytes(new URL(manifest.snapshot, base));
  const libraries = Promise.all(manifest.libraries.map(async ({ path, file }) => ({
    path, module: await WebAssembly.compileStreaming(fetch(new URL(file, base))),
  })));
  const wheels = Promise.all(manifest.wheels.filter((w) => w.on_path).map(async ({ file }) => ({
    name: file, bytes: await bytes(new URL(file, index)),
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
    }),
  });
  restoreHandles(pyodide, manifest.handles);
  pyodide.runPython(AFTER_RESTORE);
  return pyodide;
}
