// Browser test of the medtune chat page (issue 7, point 8): starts `medtune serve` on a free
// 127.0.0.1 port, opens the page in headless Chromium, asks a question, waits for the streamed
// answer and the disclaimer, and saves a screenshot. Usage:
//   node test.mjs --bin PATH/medtune --model MODEL_DIR --out OUT_DIR
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { mkdirSync, mkdtempSync, createWriteStream, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const BIN = arg("--bin");
const MODEL = arg("--model");
const OUT = arg("--out", "target/browser-test");
const CHROMIUM = arg("--chromium", "/usr/bin/chromium");
const QUESTION = arg("--question", "What are common symptoms of type 2 diabetes?");
const TIMEOUT_MS = Number(arg("--timeout-ms", "300000"));
const MAX_TOKENS = arg("--max-tokens", "48");
if (!BIN || !MODEL) {
  console.error("usage: node test.mjs --bin MEDTUNE --model MODEL_DIR [--out DIR]");
  process.exit(2);
}
mkdirSync(OUT, { recursive: true });

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitHealthy(base, server) {
  const until = Date.now() + TIMEOUT_MS;
  while (Date.now() < until) {
    if (server.exitCode !== null) throw new Error(`medtune serve exited early with ${server.exitCode}`);
    try {
      const res = await fetch(base + "/health");
      if (res.ok) return res.json();
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error("server did not become healthy in time");
}

function check(cond, message) {
  if (!cond) throw new Error("check failed: " + message);
}

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const log = createWriteStream(join(OUT, "server.log"));
const server = spawn(BIN, ["serve", "--model", MODEL, "--host", "127.0.0.1", "--port", String(port)], {
  stdio: ["ignore", "pipe", "pipe"],
});
server.stdout.pipe(log);
server.stderr.pipe(log);
const serverExit = new Promise((resolve) => server.on("exit", (code, signal) => resolve({ code, signal })));

const profile = mkdtempSync(join(tmpdir(), "medtune-chromium-"));
let context;
let failed = 0;
try {
  const health = await waitHealthy(base, server);
  console.log(`server up on ${base}: model ${health.model}, adapter ${health.adapter ?? "none"}`);
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1200, height: 800 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const foreign = [];
  page.on("request", (req) => {
    if (!req.url().startsWith(base) && !req.url().startsWith("data:")) foreign.push(req.url());
  });
  const consoleErrors = [];
  page.on("pageerror", (err) => consoleErrors.push(String(err)));

  await page.goto(base + "/");
  await page.waitForFunction(() => document.getElementById("model-name").textContent !== "loading…");
  const modelShown = await page.textContent("#model-name");
  check(modelShown === health.model, `page names the model (${modelShown})`);

  // Count answer updates while it streams.
  await page.evaluate(() => {
    window.__updates = 0;
    new MutationObserver(() => window.__updates++).observe(document.getElementById("log"), {
      subtree: true,
      childList: true,
      characterData: true,
    });
  });
  await page.fill("#max-tokens", MAX_TOKENS);
  await page.fill("#question", QUESTION);
  await page.click("#send");
  await page.waitForSelector(".turn.assistant.done", { timeout: TIMEOUT_MS });
  const answer = (await page.textContent(".turn.assistant .answer")).trim();
  const disclaimer = await page.textContent(".turn.assistant .disclaimer").catch(() => null);
  const errorText = await page.textContent(".turn.assistant .error").catch(() => null);
  const updates = await page.evaluate(() => window.__updates);
  await page.screenshot({ path: join(OUT, "screenshot.png"), fullPage: true });
  console.log(`answer (${answer.length} chars, ${updates} DOM updates): ${answer.slice(0, 160)}`);
  console.log(`disclaimer: ${disclaimer}`);
  check(!errorText, `no error shown (${errorText})`);
  check(answer.length > 0, "answer is not empty");
  check(updates > 3, `answer arrived in several streamed pieces (${updates} updates)`);
  check(disclaimer && disclaimer.toLowerCase().includes("not medical advice"), "disclaimer is shown");
  check(foreign.length === 0, `no external requests (${foreign.join(", ")})`);
  check(consoleErrors.length === 0, `no page errors (${consoleErrors.join("; ")})`);
  console.log(`screenshot: ${join(OUT, "screenshot.png")}`);
} catch (err) {
  failed = 1;
  console.error(String(err && err.stack ? err.stack : err));
} finally {
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
  server.kill("SIGTERM");
  const { code, signal } = await serverExit;
  if (code !== 0) {
    console.error(`medtune serve did not shut down cleanly (code ${code}, signal ${signal}); see ${OUT}/server.log`);
    failed = 1;
  }
}
console.log(`browser test: ${1 - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
