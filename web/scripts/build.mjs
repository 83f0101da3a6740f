// Builds web/dist: the page `keras-transformer web` serves.
//
//   dist/index.html, dist/style.css     copied from src/
//   dist/app.js                         src/main.js bundled by esbuild (tokenizers.js included)
//   dist/ort/                           onnxruntime-web's WebAssembly build, served as is: ort.wasm.min.mjs
//                                       loads ort-wasm-simd-threaded.{mjs,wasm} next to itself and starts
//                                       its thread workers from them, so it stays out of app.js.
//   *.gz                                gzip copies of the larger files (the .wasm: 14 MB -> 3.7 MB), which the
//                                       server sends to browsers that accept gzip
import { build } from "esbuild";
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { constants, gzipSync } from "node:zlib";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
const ortDist = join(root, "node_modules", "onnxruntime-web", "dist");
const ORT_FILES = ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"];

rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, "ort"), { recursive: true });

const ortExternal = {
  name: "onnxruntime-web-external",
  setup(b) {
    b.onResolve({ filter: /^onnxruntime-web(\/wasm)?$/ }, () => ({ path: "./ort/ort.wasm.min.mjs", external: true }));
  },
};

await build({
  entryPoints: [join(root, "src", "main.js")],
  outfile: join(dist, "app.js"),
  bundle: true,
  format: "esm",
  target: ["chrome111", "firefox115", "safari16.4"],
  minify: true,
  sourcemap: true,
  legalComments: "linked",
  plugins: [ortExternal],
  logLevel: "warning",
});

for (const name of ["index.html", "style.css"]) cpSync(join(root, "src", name), join(dist, name));
for (const name of ORT_FILES) cpSync(join(ortDist, name), join(dist, "ort", name));
cpSync(join(root, "node_modules", "onnxruntime-web", "README.md"), join(dist, "ort", "README.md"));
for (const name of ["app.js", ...ORT_FILES.map((f) => `ort/${f}`)]) {
  const path = join(dist, name);
  writeFileSync(`${path}.gz`, gzipSync(readFileSync(path), { level: constants.Z_BEST_COMPRESSION }));
}
console.log(`built ${dist}`);
