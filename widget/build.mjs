// Builds src/ into ../service/static/widget/instagift-claim-code.<contenthash>.js, one file per other language
// (instagift-claim-code.<language>.<contenthash>.js), their .gz/.br twins, and manifest.json.
// The manifest records a hash of the sources so a test fails when src/ changes without a rebuild.
import { build, transform } from "esbuild";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync, mkdirSync, rmSync } from "node:fs";
import zlib, { brotliCompressSync, gzipSync } from "node:zlib";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const outDir = join(here, "..", "service", "static", "widget");
const NAME = "instagift-claim-code";

// Same algorithm as tests/test_widget_build.py::source_hash: sorted src/ file names, each name, NUL,
// bytes, NUL, then build.mjs the same way.
export function sourceHash() {
  const hash = createHash("sha256");
  const files = readdirSync(join(here, "src")).sort().map((f) => [`src/${f}`, join(here, "src", f)]);
  files.push(["build.mjs", join(here, "build.mjs")]);
  for (const [name, path] of files) {
    hash.update(name).update("\0").update(readFileSync(path)).update("\0");
  }
  return hash.digest("hex");
}

// CSS is imported as a string for the shadow root; minify it first (esbuild's text loader would not).
const minifiedCssAsText = {
  name: "minified-css-as-text",
  setup(b) {
    b.onLoad({ filter: /\.css$/ }, async ({ path }) => {
      const { code } = await transform(readFileSync(path, "utf8"), { loader: "css", minify: true });
      return { contents: code.trim(), loader: "text" };
    });
  },
};

const common = { bundle: true, minify: true, target: ["es2020"], legalComments: "none", write: false };
const hashed = (code) => createHash("sha256").update(code).digest("hex");
const BUDGET_GZIP_BYTES = 6144;

// Each other language (src/strings.<language>.js) becomes its own small ES module, loaded only when needed.
const languages = {};
for (const source of readdirSync(join(here, "src")).filter((f) => /^strings\.[a-z]{2}\.js$/.test(f)).sort()) {
  const lang = source.split(".")[1];
  const out = await build({ ...common, entryPoints: [join(here, "src", source)], format: "esm" });
  const code = out.outputFiles[0].contents;
  languages[lang] = { code, file: `${NAME}.${lang}.${hashed(code).slice(0, 12)}.js` };
}

const result = await build({
  ...common,
  entryPoints: [join(here, "src", `${NAME}.js`)],
  format: "iife",
  plugins: [minifiedCssAsText],
  // Private members (a leading underscore) get short names: the budget is 6,144 bytes gzipped.
  mangleProps: /^_/,
  define: {
    __LANGUAGE_FILES__: JSON.stringify(Object.fromEntries(Object.entries(languages).map(([l, v]) => [l, v.file]))),
  },
});
const code = result.outputFiles[0].contents;
const contentHash = hashed(code);
const file = `${NAME}.${contentHash.slice(0, 12)}.js`;
rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });

// Every file is written with precompressed twins (.gz, .br) that the service sends to browsers asking for them.
function write(name, bytes) {
  writeFileSync(join(outDir, name), bytes);
  const gzip = gzipSync(bytes, { level: 9 });
  writeFileSync(join(outDir, name + ".gz"), gzip);
  writeFileSync(join(outDir, name + ".br"), brotliCompressSync(bytes, {
    params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: bytes.length },
  }));
  return { sha256: hashed(bytes), integrity: "sha384-" + createHash("sha384").update(bytes).digest("base64"),
    bytes: bytes.length, gzip_bytes: gzip.length };
}

const manifest = { name: NAME, file, ...write(file, code), languages: {}, source_sha256: sourceHash() };
for (const [lang, { code: langCode, file: langFile }] of Object.entries(languages)) {
  manifest.languages[lang] = { file: langFile, ...write(langFile, langCode) };
}
writeFileSync(join(outDir, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
console.log(`${file}: ${manifest.bytes} bytes, ${manifest.gzip_bytes} bytes gzipped (budget ${BUDGET_GZIP_BYTES})`);
for (const [lang, entry] of Object.entries(manifest.languages)) {
  console.log(`${entry.file}: ${entry.bytes} bytes, ${entry.gzip_bytes} bytes gzipped (${lang}, loaded when needed)`);
}
if (manifest.gzip_bytes > BUDGET_GZIP_BYTES) {
  console.error(`over budget: ${manifest.gzip_bytes} > ${BUDGET_GZIP_BYTES} bytes gzipped`);
  process.exit(1);
}
