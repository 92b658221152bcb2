// Builds src/ into ../service/static/widget/instagift-claim-code.<contenthash>.js plus manifest.json.
// The manifest records a hash of the sources so a test fails when src/ changes without a rebuild.
import { build, transform } from "esbuild";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync, mkdirSync, rmSync } from "node:fs";
import { gzipSync } from "node:zlib";
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

const result = await build({
  entryPoints: [join(here, "src", `${NAME}.js`)],
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020"],
  plugins: [minifiedCssAsText],
  legalComments: "none",
  write: false,
});
const code = result.outputFiles[0].contents;
const contentHash = createHash("sha256").update(code).digest("hex");
const file = `${NAME}.${contentHash.slice(0, 12)}.js`;
rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, file), code);
const manifest = {
  name: NAME,
  file,
  sha256: contentHash,
  integrity: "sha384-" + createHash("sha384").update(code).digest("base64"),
  bytes: code.length,
  gzip_bytes: gzipSync(code, { level: 9 }).length,
  source_sha256: sourceHash(),
};
writeFileSync(join(outDir, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
console.log(`${file}: ${manifest.bytes} bytes, ${manifest.gzip_bytes} bytes gzipped`);
