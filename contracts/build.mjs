// Compiles every contract in src/ with the pinned solcjs (the original's settings: 0.8.28, evmVersion paris,
// optimizer 1000 runs) and writes one out/<Contract>.json per deployable contract: {contractName, abi, bytecode}.
// `node build.mjs --check` compiles into memory and fails when a committed artifact is missing or stale.
import { createRequire } from "node:module";
import { readFileSync, readdirSync, writeFileSync, existsSync, mkdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const solc = require("solc");
const check = process.argv.includes("--check");

const sources = {};
for (const name of readdirSync(join(here, "src")).filter((f) => f.endsWith(".sol")).sort()) {
  sources[`src/${name}`] = { content: readFileSync(join(here, "src", name), "utf8") };
}
const input = {
  language: "Solidity",
  sources,
  settings: {
    evmVersion: "paris",
    optimizer: { enabled: true, runs: 1000 },
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
  },
};
function findImports(path) {
  for (const root of [here, join(here, "node_modules")]) {
    const file = join(root, path);
    if (existsSync(file)) return { contents: readFileSync(file, "utf8") };
  }
  return { error: `not found: ${path}` };
}
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length > 0) process.exit(1);

const artifacts = {};
for (const [file, contracts] of Object.entries(output.contracts)) {
  if (!file.startsWith("src/")) continue;
  for (const [name, c] of Object.entries(contracts)) {
    if (!c.evm.bytecode.object) continue; // interfaces and abstract contracts
    artifacts[`${name}.json`] =
      JSON.stringify({ contractName: name, abi: c.abi, bytecode: `0x${c.evm.bytecode.object}` }, null, 1) + "\n";
  }
}
const out = join(here, "out");
if (check) {
  const stale = Object.entries(artifacts)
    .filter(([f, text]) => !existsSync(join(out, f)) || readFileSync(join(out, f), "utf8") !== text)
    .map(([f]) => f);
  const extra = existsSync(out) ? readdirSync(out).filter((f) => !(f in artifacts)) : [];
  if (stale.length + extra.length > 0) {
    console.error(`contracts/out is stale (run contracts/build.sh): ${[...stale, ...extra].join(", ")}`);
    process.exit(1);
  }
  console.error(`contracts/out is up to date (${Object.keys(artifacts).length} artifacts, solc ${solc.version()})`);
} else {
  mkdirSync(out, { recursive: true });
  for (const [f, text] of Object.entries(artifacts)) writeFileSync(join(out, f), text);
  console.error(`wrote ${Object.keys(artifacts).length} artifacts to contracts/out (solc ${solc.version()})`);
}
