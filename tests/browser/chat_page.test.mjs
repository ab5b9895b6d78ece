// The chat page at GET / in headless Debian Chromium, driven by playwright-core (no browser
// download: executablePath). Run through tests/integration/test_chat_node.py.
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { after, before, test } from "node:test";

const BASE = process.env.CITELINE_URL;
const CHROMIUM = process.env.CITELINE_CHROMIUM || "/usr/bin/chromium";
const ARTIFACTS = process.env.CITELINE_ARTIFACTS || new URL("../../artifacts/", import.meta.url).pathname;
if (!BASE) throw new Error("CITELINE_URL unset: run via pytest");

// playwright-core is installed once, with the other Node test deps, in tests/node.
const { chromium } = createRequire(new URL("../node/package.json", import.meta.url))("playwright-core");

let browser;
let page;
const pageErrors = [];

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("pageerror", (err) => pageErrors.push(err.message));
  await page.goto(BASE + "/");
});

after(async () => {
  await browser?.close();
  assert.deepEqual(pageErrors, [], "the page threw");
});

async function ask(question) {
  const before = await page.locator("li.assistant").count();
  // Record the answer's text length on every DOM change, to see it grow while streaming.
  await page.evaluate(() => {
    window.__lengths = [];
    const list = document.getElementById("messages");
    new MutationObserver(() => {
      const bodies = list.querySelectorAll("li.assistant .body");
      const body = bodies[bodies.length - 1];
      if (body) window.__lengths.push(body.textContent.length);
    }).observe(list, { subtree: true, childList: true, characterData: true });
  });
  await page.fill("#question", question);
  await page.press("#question", "Enter");
  const answer = page.locator("li.assistant").nth(before);
  await answer.and(page.locator("[data-done=true]")).waitFor({ timeout: 30_000 });
  return answer;
}

test("a question streams an answer with numbered citations that open their passage", async () => {
  const answer = await ask("Which volcano in Sicily is most active?");
  const text = await answer.locator(".body").innerText();
  assert.match(text, /Etna/);
  const lengths = await page.evaluate(() => window.__lengths);
  const final = text.length;
  assert.ok(lengths.some((n) => n > 0 && n < final), `never saw partial text: ${lengths}`);
  assert.ok(new Set(lengths.filter((n) => n > 0)).size > 3, "text did not arrive in steps");
  assert.match(await answer.locator(".meta").innerText(), /extractive · [\d.]+ ms · \d+ tokens/);

  const cite = answer.locator("button.cite").last();
  assert.equal(await cite.innerText(), "[1]");
  await cite.click();
  const passage = page.locator("#passage");
  await passage.waitFor({ state: "visible" });
  assert.match(await page.locator("#passage-title").innerText(), /\[1\] Volcanoes/);
  assert.match(await page.locator("#passage-meta").innerText(), /characters \d+–\d+/);
  const marked = await page.locator("#passage-text mark").innerText();
  const passageText = await page.locator("#passage-text").innerText();
  assert.ok(marked.length > 10 && marked.length < passageText.length, `marked: ${marked}`);
  assert.ok(text.replace(/\s+/g, " ").includes(marked.replace(/\s+/g, " ")), "highlight is not the cited claim");

  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: `${ARTIFACTS}/chat-page.png`, fullPage: true });
});

test("a pasted document is indexed, then answers", async () => {
  await page.fill("#doc-title", "Okavango");
  await page.fill("#doc-text", "The Okavango Delta in Botswana floods every winter with rain from Angola.");
  await page.evaluate(() => { document.getElementById("index-status").textContent = ""; });
  await page.click("#index-button");
  await page.locator("#index-status", { hasText: /^Indexed / }).waitFor({ timeout: 30_000 });
  const answer = await ask("Where does the Okavango Delta flood water come from?");
  assert.match(await answer.locator(".body").innerText(), /Angola/);
  assert.match(await answer.locator("ol.sources").innerText(), /Okavango/);
});

test("an uploaded file is indexed", async () => {
  await page.setInputFiles("#doc-file", {
    name: "tea.txt", mimeType: "text/plain",
    buffer: Buffer.from("Oolong tea is partially oxidised before it is rolled and dried."),
  });
  await page.evaluate(() => { document.getElementById("index-status").textContent = ""; });
  await page.click("#index-button");
  await page.locator("#index-status", { hasText: /^Indexed / }).waitFor({ timeout: 30_000 });
  const answer = await ask("How is oolong tea made?");
  assert.match(await answer.locator("ol.sources").innerText(), /tea\.txt/);
});

test("an uploaded PDF is cited with its page, which opens the file there", async () => {
  await page.setInputFiles("#doc-file", {
    name: "landforms.pdf", mimeType: "application/pdf",
    buffer: readFileSync(`${ARTIFACTS}/landforms.pdf`),
  });
  await page.evaluate(() => { document.getElementById("index-status").textContent = ""; });
  await page.click("#index-button");
  await page.locator("#index-status", { hasText: /^Indexed / }).waitFor({ timeout: 30_000 });
  const answer = await ask("How do basalt columns form when lava cools?");
  const sources = answer.locator("ol.sources");
  assert.match(await sources.innerText(), /Volcanic landforms p\. 2 \(iv\)/);
  await sources.locator("button.source").first().click();
  assert.match(await page.locator("#passage-meta").innerText(), /^p\. 2 \(iv\) · Chapter Two · /);
  const href = await page.locator("#passage-file").getAttribute("href");
  assert.match(href, /^\/v1\/documents\/doc_[0-9a-f]+\/file#page=2$/);
  const file = await page.request.get(BASE + href.split("#")[0]);
  assert.equal(file.headers()["content-type"], "application/pdf");
  await page.screenshot({ path: `${ARTIFACTS}/chat-page-pdf.png`, fullPage: true });
});
