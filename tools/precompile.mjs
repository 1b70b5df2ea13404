// Precompile wheels (or python_stdlib.zip) inside Pyodide under Node (tools/precompile.py does the work): the
// bytecode must come from Pyodide's own CPython (3.14), the one the browser runs.
//
//   node tools/precompile.mjs [--keep-source] PYODIDE_DIR ARCHIVE... [--keep-source ARCHIVE...]
//
// Rewritten in place; the archives after --keep-source keep their sources beside the bytecode. One run
// boots Pyodide once, however many archives (of either kind) it is given.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const USAGE = "usage: node tools/precompile.mjs [--keep-source] PYODIDE_DIR ARCHIVE... [--keep-source ARCHIVE...]";
let pyodideDir = null, keepSource = false;
const groups = { false: [], true: [] };  // keep_source -> archives
for (const arg of process.argv.slice(2)) {
  if (arg === "--keep-source") keepSource = true;
  else if (arg.startsWith("-")) { console.error(`unknown option ${arg}\n${USAGE}`); process.exit(2); }
  else if (pyodideDir === null) pyodideDir = arg;
  else groups[keepSource].push(arg);
}
const wheels = [...groups.false, ...groups.true];
if (!pyodideDir || wheels.length === 0) {
  console.error(USAGE);
  process.exit(2);
}
const here = path.dirname(fileURLToPath(import.meta.url));
const { loadPyodide } = await import(path.resolve(pyodideDir, "pyodide.mjs"));
const pyodide = await loadPyodide({ indexURL: path.resolve(pyodideDir) + "/" });
const MOUNT = "/wheels";
const dirs = [...new Set(wheels.map((w) => path.dirname(path.resolve(w))))];
dirs.forEach((dir, i) => {
  pyodide.FS.mkdirTree(`${MOUNT}/${i}`);
  pyodide.FS.mount(pyodide.FS.filesystems.NODEFS, { root: dir }, `${MOUNT}/${i}`);
});
const inPyodide = (wheel) => {
  const abs = path.resolve(wheel);
  return `${MOUNT}/${dirs.indexOf(path.dirname(abs))}/${path.basename(abs)}`;
};
pyodide.FS.writeFile("/tmp/precompile.py", readFileSync(path.join(here, "precompile.py")));
try {
  pyodide.runPython("import sys; sys.path.insert(0, '/tmp'); import precompile");
  for (const keep of [false, true]) {
    if (groups[keep].length === 0) continue;
    pyodide.globals.set("wheel_paths", pyodide.toPy(groups[keep].map(inPyodide)));
    pyodide.runPython(`precompile.main(list(wheel_paths), ${keep ? "True" : "False"})`);
  }
} catch (error) {
  console.error(String(error.message ?? error));
  process.exit(1);
}
