// The docs page and the chat page with API keys, in headless Debian Chromium: the docs load
// nothing from another origin and break no CSP rule; the chat page asks with the key pasted.
// Run through tests/integration/security/test_browser_pages.py.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { after, before, test } from "node:test";

const BASE = process.env.CITELINE_URL;
const KEY = process.env.CITELINE_TEST_KEY;
const CHROMIUM = process.env.CITELINE_CHROMIUM || "/usr/bin/chromium";
if (!BASE || !KEY) throw new Error("CITELINE_URL or CITELINE_TEST_KEY unset: run via pytest");
const { chromium } = createRequire(new URL("../node/package.json", import.meta.url))("playwright-core");

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});
after(async () => { await browser?.close(); });

async function watched() {
  const page = await browser.newPage();
  const seen = { foreign: [], console: [], errors: [] };
  page.on("request", (r) => { if (!r.url().startsWith(BASE) && !r.url().startsWith("data:")) seen.foreign.push(r.url()); });
  page.on("console", (m) => { if (m.type() === "error") seen.console.push(m.text()); });
  page.on("pageerror", (e) => seen.errors.push(e.message));
  return { page, seen };
}

test("the docs page renders from this origin only, within its CSP", async () => {
  const { page, seen } = await watched();
  await page.goto(BASE + "/docs");
  await page.locator(".swagger-ui .info .title").waitFor({ timeout: 20_000 });
  assert.match(await page.locator(".swagger-ui .info .title").innerText(), /citeline/);
  await page.locator(".opblock").first().waitFor();
  assert.ok(await page.locator(".opblock").count() > 10, "operations listed");
  assert.ok(await page.locator(".authorize").count() >= 1, "the Authorize button for keys");
  assert.deepEqual(seen.foreign, [], "requests to another origin");
  assert.deepEqual(seen.errors, []);
  assert.deepEqual(seen.console.filter((t) => /Content Security Policy|Refused/.test(t)), []);
  await page.close();
});

test("the chat page answers once the key is pasted", async () => {
  const { page, seen } = await watched();
  await page.goto(BASE + "/");
  await page.fill("#question", "Which volcano in Sicily is most active?");
  await page.press("#question", "Enter");
  const first = page.locator("li.assistant").first();
  await first.and(page.locator("[data-done=true]")).waitFor({ timeout: 30_000 });
  assert.match(await first.locator(".meta").innerText(), /API key is required/);
  await page.fill("#api-key", KEY);
  await page.dispatchEvent("#api-key", "change");
  await page.fill("#question", "Which volcano in Sicily is most active?");
  await page.press("#question", "Enter");
  const second = page.locator("li.assistant").nth(1);
  await second.and(page.locator("[data-done=true]")).waitFor({ timeout: 30_000 });
  assert.match(await second.locator(".body").innerText(), /Etna/);
  assert.ok(await second.locator("button.cite").count() >= 1, "a clickable citation");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("citeline-key")), KEY);
  assert.deepEqual(seen.foreign, []);
  assert.deepEqual(seen.errors, []);
  assert.deepEqual(seen.console.filter((t) => /Content Security Policy|Refused to/.test(t)), []);
  await page.close();
});
