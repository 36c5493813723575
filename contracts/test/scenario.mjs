// End-to-end scenario test of the Marketplace on a local anvil: reservations (open to every address, at most 3 live,
// each live for a quarter of the expiry, expired ones displaced), fills, a missed proof and its slash, finish, failure, repair
// with the discount, and a fill at exactly expiresAt followed by cancellation (zero-length payout).
// Usage: node test/scenario.mjs (after ./build.sh); starts and stops its own anvil on a free port.
import { createRequire } from "node:module";
import { readFileSync, existsSync } from "node:fs";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const require = createRequire(join(root, "build.mjs"));
const keccak = require("js-sha3").keccak256;
const solc = require("solc");

function compileScenario() {
  const input = { language: "Solidity", sources: { "test/Scenario.sol": { content: readFileSync(join(here, "Scenario.sol"), "utf8") } },
    settings: { evmVersion: "paris", optimizer: { enabled: true, runs: 1000 }, outputSelection: { "*": { "*": ["evm.bytecode.object"] } } } };
  const out = JSON.parse(solc.compile(JSON.stringify(input), { import: (p) => {
    for (const r of [root, join(root, "node_modules")]) if (existsSync(join(r, p))) return { contents: readFileSync(join(r, p), "utf8") };
    return { error: `not found: ${p}` }; } }));
  const errors = (out.errors || []).filter((e) => e.severity === "error");
  if (errors.length) { for (const e of errors) console.error(e.formattedMessage); process.exit(1); }
  return out.contracts["test/Scenario.sol"].Scenario.evm.bytecode.object;
}
const port = await new Promise((ok) => { const s = createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => ok(p)); }); });
const anvil = spawn(join(root, "node_modules/.bin/anvil"), ["--port", String(port), "--silent"], { stdio: "ignore" });
process.on("exit", () => anvil.kill());
const URL = `http://127.0.0.1:${port}`;
let id = 0;
async function rpc(method, params = []) {
  const r = await (await fetch(URL, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ jsonrpc: "2.0", id: ++id, method, params }) })).json();
  if (r.error) { const e = new Error(`${method}: ${JSON.stringify(r.error)}`); e.rpc = r.error; throw e; }
  return r.result;
}
const hex = (b) => Buffer.from(b).toString("hex");
const sel = (sig) => keccak(sig).slice(0, 8);
const w = (v) => BigInt.asUintN(256, BigInt(v)).toString(16).padStart(64, "0");
const wb = (h) => h.replace(/^0x/, "").padStart(64, "0");
const kh = (h) => "0x" + keccak(Buffer.from(h.replace(/^0x/, ""), "hex"));
let failures = 0;
function ok(cond, msg) { console.log(`${cond ? "ok  " : "FAIL"} ${msg}`); if (!cond) failures++; }
for (let i = 0; ; i++) { try { await rpc("eth_blockNumber"); break; } catch (e) { if (i > 100) throw e; await new Promise((z) => setTimeout(z, 100)); } }
const [me, validator] = await rpc("eth_accounts");
await rpc("anvil_mine", ["0x12c"]);
async function at(ts) { await rpc("evm_setNextBlockTimestamp", [Number(ts)]); }
async function send(to, data, from = me) {
  const tx = await rpc("eth_sendTransaction", [{ from, to, data: "0x" + data, gas: "0x1c9c380" }]);
  for (let i = 0; i < 50; i++) { const r = await rpc("eth_getTransactionReceipt", [tx]); if (r) return r; await new Promise((z) => setTimeout(z, 100)); }
  throw new Error("no receipt");
}
async function call(to, data, from = me) { return await rpc("eth_call", [{ from, to, data: "0x" + data }, "latest"]); }
async function callErr(to, data, from = me) { try { await call(to, data, from); return null; } catch (e) { return e.rpc?.data ?? JSON.stringify(e.rpc); } }
const dep = await send(null, compileScenario());
ok(dep.status === "0x1", "deploy scenario");
const S = dep.contractAddress;
const M = "0x" + (await call(S, sel("market()"))).slice(26);
const T = "0x" + (await call(S, sel("token()"))).slice(26);
const bal = async (a) => BigInt(await call(T, sel("balanceOf(address)") + wb(a)));
const u = async (sig, ...args) => BigInt(await call(M, sel(sig) + args.map(wb).join("")));
const rid = async (k) => (await call(S, sel("ids(uint256)") + w(k)));
const slotIdOf = (r, i) => kh(wb(r) + w(i));
const latest = async () => await rpc("eth_getBlockByNumber", ["latest", false]);
const canReserve = async (r, i, from) => BigInt(await call(M, sel("canReserveSlot(bytes32,uint64)") + wb(r) + w(i), from)) === 1n;
const addr = (x) => "0x" + x.toString(16).padStart(40, "0");
const topic = (sig) => "0x" + keccak(sig);
const start0 = await bal(S);

// ---------- request 0: reservations, fill, proof marking, finish ----------
let rc = await send(S, sel("req(uint256,uint64,uint64)") + w(0) + w(2) + w(1));
ok(rc.status === "0x1", "requestStorage (checks maxPrice pulled, unknown/out-of-range not reservable)");
const r0 = await rid(0);
const reqLog = rc.logs.find((l) => l.topics[0] === topic("StorageRequested(bytes32,(uint256,uint256,uint256,uint64,uint64,uint64,uint64),uint64)"));
ok(!!reqLog, "StorageRequested emitted");
const blk = await rpc("eth_getBlockByNumber", [rc.blockNumber, false]);
const ws = BigInt(blk.timestamp);
const accts = await rpc("eth_accounts");
const reserveFrom = (r, i, from) => send(M, sel("reserveSlot(bytes32,uint64)") + wb(r) + w(i), from);
const full = (rc) => rc.logs.some((l) => l.topics[0] === topic("SlotReservationsFull(bytes32,uint64)"));
ok(await canReserve(r0, 0, addr(1n)) && await canReserve(r0, 0, addr(1n << 159n)), "t=0: every address may reserve (original hosts)");
for (const [k, a] of [accts[2], accts[3], accts[4]].entries()) {
  await at(ws + 1n + BigInt(k)); rc = await reserveFrom(r0, 0, a);
  ok(rc.status === "0x1" && full(rc) === (k === 2), `reservation ${k + 1} of slot 0${k === 2 ? " (SlotReservationsFull)" : ""}`);
}
ok(!(await canReserve(r0, 0, accts[5])), "3 live reservations: full");
ok(!(await canReserve(r0, 0, accts[2])), "a live holder cannot reserve again");
await at(ws + 26n); await rpc("evm_mine");
ok(await canReserve(r0, 0, accts[5]), "t=26: the first reservation expired (ttl 100/4): a new host may take its place");
ok(await canReserve(r0, 0, accts[2]), "t=26: the expired holder may renew");
await at(ws + 27n); rc = await reserveFrom(r0, 0, accts[5]);
ok(rc.status === "0x1", "a new host displaces the expired reservations");
ok(await canReserve(r0, 0, accts[6]), "t=27: two live reservations, room for a third");
await at(ws + 30n); rc = await send(S, sel("reserve(uint256,uint64)") + w(0) + w(1)); ok(rc.status === "0x1", "reserve slot 1");
await at(ws + 31n); await reserveFrom(r0, 1, accts[2]);
await at(ws + 32n); rc = await reserveFrom(r0, 1, accts[3]); ok(full(rc), "slot 1 full");
await at(ws + 57n); rc = await reserveFrom(r0, 1, accts[4]); ok(rc.status === "0x1", "t=57: slot 1's reservations expired, a new host takes a place");
await at(ws + 58n); await rpc("evm_mine");
const fillErr = await callErr(S, sel("fillOnly(uint256,uint64)") + w(0) + w(1));
ok(String(fillErr).startsWith("0x" + sel("Marketplace_ReservationRequired()")), `a displaced holder cannot fill: ${fillErr}`);
ok(await canReserve(r0, 1, S), "the displaced holder may reserve again");
const T1 = ((ws + 60n + 9n) / 10n) * 10n;
await at(T1); rc = await send(S, sel("fill(uint256,uint64)") + w(0) + w(0)); ok(rc.status === "0x1", "fill slot 0");
await at(T1 + 1n); rc = await send(S, sel("fill(uint256,uint64)") + w(0) + w(1)); ok(rc.status === "0x1", "fill slot 1");
ok(rc.logs.some((l) => l.topics[0] === topic("RequestFulfilled(bytes32)") && l.topics[1] === r0), "RequestFulfilled");
ok((await u("requestState(bytes32)", r0)) === 1n, "request Started");
const s00 = slotIdOf(r0, 0), s01 = slotIdOf(r0, 1);
ok((await u("slotState(bytes32)", s00)) === 1n, "slot Filled");
ok((await bal(M)) === 2000000n + 2000n, "marketplace holds maxPrice + collateral");
ok(BigInt(await call(M, sel("getHost(bytes32)") + wb(s00))) === BigInt(S), "getHost");
const myslots = await call(M, sel("mySlots()"), S);
ok(BigInt("0x" + myslots.slice(2 + 64, 2 + 128)) === 2n, "mySlots has 2");
ok(!!(await callErr(S, sel("prove(bytes32)") + wb(s00))), "second proof in fill period rejected");
// mark a missed proof for period P = Pf + 1
const P = T1 / 10n + 1n, end = (P + 1n) * 10n;
let cur = BigInt((await latest()).number), plan = null;
for (let k = 1n; k < 256n && !plan; k++) for (const s of [s00, s01]) {
  const ptr = ((cur + k) % 256n + (P * 67n) % 256n + BigInt(s) % 256n) % 256n;
  if (ptr >= 64n && !plan) plan = { k, s };
}
// The blocks before the planned one share a timestamp, so any of the 256 pointers is reachable within the period.
let t = T1 + 2n;
if (plan.k > 1n) { await at(t++); await rpc("anvil_mine", ["0x" + (plan.k - 1n).toString(16), "0x0"]); }
ok(t < end, "planned marking");
const vBefore = await bal(validator);
await at(end + 1n);
rc = await send(M, sel("markProofAsMissing(bytes32,uint64)") + wb(plan.s) + w(P), validator);
ok(rc.status === "0x1", "markProofAsMissing");
ok((await bal(validator)) - vBefore === 20n, "validator reward 20 (10% of 1000, 20% of that)");
ok((await u("missingProofs(bytes32)", plan.s)) === 1n, "missingProofs 1");
ok((await u("currentCollateral(bytes32)", plan.s)) === 900n, "currentCollateral 900");
ok(!!(await callErr(M, sel("canMarkProofAsMissing(bytes32,uint64)") + wb(plan.s) + w(P), validator)), "cannot mark twice");
// finish
const endsAt0 = await u("requestEnd(bytes32)", r0);
ok(endsAt0 === ws + 1000n, "requestEnd = creation + duration");
await at(endsAt0 + 1n); await rpc("evm_mine");
ok((await u("requestState(bytes32)", r0)) === 3n, "request Finished");
let b = await bal(S);
rc = await send(S, sel("free(bytes32)") + wb(s00)); ok(rc.status === "0x1", "freeSlot finished 0");
rc = await send(S, sel("free(bytes32)") + wb(s01)); ok(rc.status === "0x1", "freeSlot finished 1");
const pay = (endsAt0 - T1) * 1000n + (endsAt0 - T1 - 1n) * 1000n;
ok((await bal(S)) - b === pay + 1900n, "host payouts + collateral (minus slash)");
ok(!!(await callErr(S, sel("free(bytes32)") + wb(s00))), "second freeSlot reverts (AlreadyPaid)");
ok((await u("slotState(bytes32)", s00)) === 4n, "slot Paid");
b = await bal(S);
rc = await send(S, sel("withdraw(uint256)") + w(0)); ok(rc.status === "0x1", "withdraw finished");
ok((await bal(S)) - b === 2000000n - pay, "client refund = maxPrice - host payments");
ok(!!(await callErr(S, sel("withdraw(uint256)") + w(0))), "second withdraw reverts");
ok((await bal(S)) === start0 - 100n && (await bal(M)) === 80n, "only the slash left the client/host; 80 stays in the contract");

// ---------- request 1: abandon -> Failed ----------
const now1 = BigInt((await latest()).timestamp) + 1n;
await at(now1); rc = await send(S, sel("req(uint256,uint64,uint64)") + w(1) + w(2) + w(0)); ok(rc.status === "0x1", "request 1");
const r1 = await rid(1);
await at(now1 + 50n); await send(S, sel("fill(uint256,uint64)") + w(1) + w(0));
await at(now1 + 51n); rc = await send(S, sel("fill(uint256,uint64)") + w(1) + w(1)); ok(rc.status === "0x1", "request 1 filled");
await at(now1 + 60n); rc = await send(S, sel("free(bytes32)") + wb(slotIdOf(r1, 0)));
ok(rc.logs.some((l) => l.topics[0] === topic("RequestFailed(bytes32)")), "abandoning with maxSlotLoss 0 fails the request");
ok((await u("requestState(bytes32)", r1)) === 4n && (await u("slotState(bytes32)", slotIdOf(r1, 0))) === 3n, "Failed states");
ok(!(await canReserve(r1, 0, S)), "failed request's slot not reservable");
b = await bal(S);
rc = await send(S, sel("withdraw(uint256)") + w(1)); ok(rc.status === "0x1" && (await bal(S)) - b === 2000000n, "failed withdraw = maxPrice");
rc = await send(S, sel("free(bytes32)") + wb(slotIdOf(r1, 1))); ok(rc.status === "0x1" && (await bal(S)) - b === 2000000n, "failed slot free pays nothing");

// ---------- request 2: repair reservations and discount ----------
const now2 = BigInt((await latest()).timestamp) + 1n;
await at(now2); await send(S, sel("req(uint256,uint64,uint64)") + w(2) + w(2) + w(1));
const r2 = await rid(2);
await at(now2 + 50n); await send(S, sel("fill(uint256,uint64)") + w(2) + w(0));
await at(now2 + 51n); await send(S, sel("fill(uint256,uint64)") + w(2) + w(1));
await at(now2 + 60n); rc = await send(S, sel("free(bytes32)") + wb(slotIdOf(r2, 0)));
const freed = rc.logs.find((l) => l.topics[0] === topic("SlotFreed(bytes32,uint64)"));
ok(!!freed && (await u("slotState(bytes32)", slotIdOf(r2, 0))) === 6n && (await u("requestState(bytes32)", r2)) === 1n, "forced free -> Repair, request still Started");
const fb = await rpc("eth_getBlockByNumber", [rc.blockNumber, false]);
ok(await canReserve(r2, 0, addr(1n)) && await canReserve(r2, 0, addr(1n << 159n)), "repair: every address may reserve at once");
ok(await canReserve(r2, 0, S), "repair: the forced free cleared the slot's reservations (the old host's too)");
await at(BigInt(fb.timestamp) + 50n); b = await bal(S);
rc = await send(S, sel("fill(uint256,uint64)") + w(2) + w(0)); ok(rc.status === "0x1", "repair fill");
ok(b - (await bal(S)) === 900n, "repair deposit 900 (10% discount)");
ok((await u("currentCollateral(bytes32)", slotIdOf(r2, 0))) === 1000n, "credited full collateral");

// ---------- request 3: fill at exactly expiresAt, then cancelled: zero-length payout ----------
const now3 = BigInt((await latest()).timestamp) + 1n;
await at(now3); await send(S, sel("req(uint256,uint64,uint64)") + w(3) + w(2) + w(1));
const r3 = await rid(3), s30 = slotIdOf(r3, 0);
await at(now3 + 50n); rc = await send(S, sel("reserve(uint256,uint64)") + w(3) + w(0)); ok(rc.status === "0x1", "reserve");
ok(!(await canReserve(r3, 0, S)), "cannot reserve twice");
await at(now3 + 100n); b = await bal(S);
rc = await send(S, sel("fillOnly(uint256,uint64)") + w(3) + w(0)); ok(rc.status === "0x1", "fill at expiresAt");
await at(now3 + 101n); await rpc("evm_mine");
ok((await u("requestState(bytes32)", r3)) === 2n && (await u("slotState(bytes32)", s30)) === 5n, "Cancelled");
ok(!(await canReserve(r3, 1, S)), "cancelled request's free slot not reservable");
rc = await send(S, sel("free(bytes32)") + wb(s30)); ok(rc.status === "0x1", "freeSlot with zero-length payout succeeds");
rc = await send(S, sel("withdraw(uint256)") + w(3)); ok(rc.status === "0x1", "withdraw cancelled");
ok(rc.logs.some((l) => l.topics[0] === topic("RequestCancelled(bytes32)")), "RequestCancelled");
ok((await bal(S)) === b + 2000000n, "cancelled: collateral back, client gets all of maxPrice");
const myreq = await call(M, sel("myRequests()"), S);
ok(BigInt("0x" + myreq.slice(66, 130)) === 1n, "myRequests keeps only request 2");

// ---------- constructor checks ----------
const creation = JSON.parse(readFileSync(join(root, "out/Marketplace.json"), "utf8")).bytecode.slice(2);
function ctorArgs([repair, slashes, slash, validatorPct], period, token) {
  const zk = Buffer.from("zk").toString("hex").padEnd(64, "0");
  const proofs = w(period) + w(5) + w(64) + w(67) + w(0xa0) + w(2) + zk;
  const config = w(repair) + w(slashes) + w(slash) + w(validatorPct) + w(0xe0) + w(3) + w(30 * 86400) + proofs;
  return w(0x60) + wb(token) + wb(token) + config;
}
async function deployError(collateral, period = 10) {
  try { await rpc("eth_call", [{ from: me, data: "0x" + creation + ctorArgs(collateral, period, T) }, "latest"]); return null; }
  catch (e) { return e.rpc?.data ?? "?"; }
}
const errSel = (n) => "0x" + sel(n);
ok((await deployError([10, 2, 20, 20])) === null, "constructor accepts the default config");
ok((await deployError([101, 0, 0, 0])) === errSel("Marketplace_RepairRewardPercentageTooHigh()"), "repair > 100");
ok((await deployError([10, 1, 101, 0])) === errSel("Marketplace_SlashPercentageTooHigh()"), "slash > 100");
ok((await deployError([10, 6, 20, 20])) === errSel("Marketplace_MaximumSlashingTooHigh()"), "slashes x slash > 100");
ok((await deployError([10, 2, 20, 20], 0)) === errSel("Periods_InvalidSecondsPerPeriod()"), "period 0");
ok(String(await deployError([0, 2, 20, 101])).startsWith("0x08c379a0"), "validator > 100: Error(string)");
ok(String(await deployError([50, 2, 20, 60])).startsWith("0x08c379a0"), "repair + validator > 100: Error(string)");
console.log(failures ? `${failures} FAILED` : "all passed");
process.exit(failures ? 1 : 0);
