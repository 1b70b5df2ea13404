// Precompile wheels (or python_stdlib.zip) inside Pyodide under Node (tools/precompile.py does the work): the
// bytecode must come from Pyodide's own CPython (3.14), the one the browser runs.
//
//   node tools/precompile.mjs [--keep-source] PYODIDE_DIR ARCHIVE...   (rewritten in place)
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const args = process.argv.slice(2);
const keepSource = args[0] === "--keep-source";
const [pyodideDir, ...wheels] = keepSource ? args.slice(1) : args;
if (!pyodideDir || wheels.length === 0) {
  console.error("usage: node tools/precompile.mjs [--keep-source] PYODIDE_DIR WHEEL...");
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));
const { loadPyodide } = await import(path.resolve(pyodideDir, "pyodide.mjs"));
const pyodide = await loadPyodide({ indexURL: path.resolve(pyodideDir) + "/" });
const MOUNT = "/wheels";
const dirs = [...new Set(wheels.map((w) => path.dirname(path.resolve(w))))];
const inPyodide = [];
dirs.forEach((dir, i) => {
  pyodide.FS.mkdirTree(`${MOUNT}/${i}`);
  pyodide.FS.mount(pyodide.FS.filesystems.NODEFS, { root: dir }, `${MOUNT}/${i}`);
});
for (const wheel of wheels) {
  const abs = path.resolve(wheel);
  inPyodide.push(`${MOUNT}/${dirs.indexOf(path.dirname(abs))}/${path.basename(abs)}`);
}
pyodide.FS.writeFile("/tmp/precompile.py", readFileSync(path.join(here, "precompile.py")));
pyodide.globals.set("wheel_paths", pyodide.toPy(inPyodide));
pyodide.globals.set("keep_source", keepSource);
try {
  pyodide.runPython(
    "import sys; sys.path.insert(0, '/tmp'); import precompile; precompile.main(list(wheel_paths), keep_source)");
} catch (error) {
  console.error(String(error.message ?? error));
  process.exit(1);
}
