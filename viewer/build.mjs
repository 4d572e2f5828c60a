// Bundles the page into dist/: hashed JS, CSS and wasm (cached for long by nginx), and an
// index.html naming them (never cached). Every asset is local: nothing is loaded from a CDN.
import { build } from "esbuild";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";

const outdir = "dist";
await rm(outdir, { recursive: true, force: true });
await mkdir(outdir, { recursive: true });
const result = await build({
    entryPoints: { main: "src/main.js" },
    bundle: true,
    format: "esm",
    target: "es2022",
    minify: true,
    sourcemap: false,
    outdir,
    entryNames: "[name]-[hash]",
    assetNames: "[name]-[hash]",
    loader: { ".wasm": "file", ".woff": "file", ".woff2": "file", ".ttf": "file", ".svg": "file" },
    metafile: true,
    logLevel: "warning",
});
const outputs = Object.keys(result.metafile.outputs).map((file) => path.basename(file));
const js = outputs.find((file) => /^main-.*\.js$/.test(file));
const css = outputs.find((file) => /^main-.*\.css$/.test(file));
const page = (await readFile("src/index.html", "utf8"))
    .replace("{{MAIN_JS}}", js)
    .replace("{{MAIN_CSS}}", css);
await writeFile(path.join(outdir, "index.html"), page);
console.log(`built ${outputs.length} assets: ${outputs.join(", ")}`);
