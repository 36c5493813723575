// Compiles every contract in src/ with the pinned solcjs (the original's settings: 0.8.28, evmVersion paris,
// optimizer 1000 runs) and writes one out/<Contract>.json per deployable contract: {contractName, abi, bytecode}.
// `node build.mjs --check` compiles into memory and fails when a committed artifact is missing or stale.
// Every run also checks the Marketplace's ABI against abi-expected.json (the original's selectors, event topics and
// custom errors) and that each deployed contract fits the EIP-170 code size limit.
import { createRequire } from "node:module";
import { readFileSync, readdirSync, writeFileSync, existsSync, mkdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const solc = require("solc");
const keccak256 = require("js-sha3").keccak256;
const check = process.argv.includes("--check");
const EIP170_LIMIT = 24576;

// The canonical type of an ABI parameter: tuples spelled out as (t1,t2,...) with any array suffix.
function canonicalType(param) {
  if (!param.type.startsWith("tuple")) return param.type;
  return `(${param.components.map(canonicalType).join(",")})${param.type.slice("tuple".length)}`;
}
const signature = (item) => `${item.name}(${item.inputs.map(canonicalType).join(",")})`;

// Compares the compiled Marketplace with abi-expected.json: the same external functions with the listed selectors
// (as computed by solc and by keccak256 of the signature), the same events with the listed topic0 (prefix…suffix)
// and indexed flags, and the same custom errors. Returns false (after printing every difference) on a mismatch.
function checkAbi(contract, expected) {
  const problems = [];
  if (!contract) {
    console.error("ABI check: no Marketplace artifact");
    return false;
  }
  const sameSets = (what, actual, wanted) => {
    for (const s of wanted) if (!actual.includes(s)) problems.push(`missing ${what} ${s}`);
    for (const s of actual) if (!wanted.includes(s)) problems.push(`unexpected ${what} ${s}`);
  };
  const ids = contract.evm.methodIdentifiers;
  sameSets("function", Object.keys(ids), Object.keys(expected.functions));
  for (const [sig, selector] of Object.entries(expected.functions)) {
    const computed = `0x${keccak256(sig).slice(0, 8)}`;
    if (computed !== selector) problems.push(`function ${sig}: listed selector ${selector}, keccak gives ${computed}`);
    if (ids[sig] !== undefined && `0x${ids[sig]}` !== selector) {
      problems.push(`function ${sig}: solc selector 0x${ids[sig]}, expected ${selector}`);
    }
  }
  const events = contract.abi.filter((item) => item.type === "event");
  sameSets("event", events.map(signature), Object.keys(expected.events));
  for (const event of events) {
    const sig = signature(event);
    const want = expected.events[sig];
    if (!want) continue;
    const topic = `0x${keccak256(sig)}`;
    const [prefix, suffix] = want.topic0.split("…");
    if (!topic.startsWith(prefix) || !topic.endsWith(suffix)) problems.push(`event ${sig}: topic0 ${topic}, expected ${want.topic0}`);
    const indexed = event.inputs.map((input) => input.indexed);
    if (JSON.stringify(indexed) !== JSON.stringify(want.indexed)) {
      problems.push(`event ${sig}: indexed ${JSON.stringify(indexed)}, expected ${JSON.stringify(want.indexed)}`);
    }
    if (event.anonymous) problems.push(`event ${sig} is anonymous`);
  }
  const errors = contract.abi.filter((item) => item.type === "error").map(signature);
  sameSets("error", errors, Object.keys(expected.errors));
  for (const [sig, selector] of Object.entries(expected.errors)) {
    const computed = `0x${keccak256(sig).slice(0, 8)}`;
    if (selector !== null && computed !== selector) problems.push(`error ${sig}: listed ${selector}, keccak gives ${computed}`);
  }
  for (const p of problems) console.error(`ABI check: ${p}`);
  if (problems.length === 0) {
    console.error(
      `ABI check: Marketplace matches abi-expected.json (${Object.keys(expected.functions).length} functions, ` +
        `${Object.keys(expected.events).length} events, ${Object.keys(expected.errors).length} errors)`,
    );
  }
  return problems.length === 0;
}

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
    outputSelection: {
      "*": {
        "": ["ast"],
        "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "evm.methodIdentifiers"],
      },
    },
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

// Libraries (Requests) have bytecode but are never deployed on their own: only internal functions.
const libraries = new Set();
for (const [file, source] of Object.entries(output.sources)) {
  for (const node of source.ast.nodes) {
    if (node.nodeType === "ContractDefinition" && node.contractKind === "library") libraries.add(`${file}:${node.name}`);
  }
}

const artifacts = {};
const compiled = {};
let failed = false;
for (const [file, contracts] of Object.entries(output.contracts)) {
  if (!file.startsWith("src/")) continue;
  for (const [name, c] of Object.entries(contracts)) {
    if (!c.evm.bytecode.object) continue; // interfaces and abstract contracts
    if (libraries.has(`${file}:${name}`)) continue;
    compiled[name] = c;
    const size = c.evm.deployedBytecode.object.length / 2;
    const fits = size <= EIP170_LIMIT;
    console.error(`${name}: deployed code ${size} bytes (EIP-170 limit ${EIP170_LIMIT})${fits ? "" : " TOO LARGE"}`);
    if (!fits) failed = true;
    artifacts[`${name}.json`] =
      JSON.stringify({ contractName: name, abi: c.abi, bytecode: `0x${c.evm.bytecode.object}` }, null, 1) + "\n";
  }
}
if (!checkAbi(compiled.Marketplace, JSON.parse(readFileSync(join(here, "abi-expected.json"), "utf8")))) failed = true;
if (failed) process.exit(1);

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
