// citeline chat page: streams /api/chat (AI SDK UI message stream) with plain fetch, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const chatId = "page-" + Math.random().toString(36).slice(2, 12);
const conversation = []; // UIMessages sent back on every turn, as useChat does

// The API key a protected server wants: typed by the user, kept for this tab only.
const keyInput = $("api-key");
keyInput.value = sessionStorage.getItem("citeline-key") || "";
keyInput.addEventListener("change", () => sessionStorage.setItem("citeline-key", keyInput.value.trim()));
$("key-form").addEventListener("submit", (e) => e.preventDefault());
function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  const key = keyInput.value.trim();
  if (key) headers.authorization = "Bearer " + key;
  return fetch(path, { ...options, headers });
}

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// Parse an SSE body into JSON chunks; yields each `data:` payload except [DONE].
async function* sseChunks(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    const events = buffer.split(/\r?\n\r?\n/);
    buffer = events.pop();
    for (const event of events) {
      const data = event.split(/\r?\n/).filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (data && data !== "[DONE]") yield JSON.parse(data);
    }
  }
}

// "p. 5" (or "pp. 5–6", and the printed label where the file has one) for a paged source.
function pageText(s) {
  if (s.page == null) return "";
  const range = s.page_end != null ? `pp. ${s.page}–${s.page_end}` : `p. ${s.page}`;
  return s.page_label && s.page_label !== String(s.page) ? `${range} (${s.page_label})` : range;
}

function renderAnswer(turn) {
  // Markers become buttons only when they point at a source of this answer.
  const html = escapeHtml(turn.text).replace(/\[(\d{1,3})\]/g, (m, n) =>
    turn.sources[n] ? `<button type="button" class="cite" data-n="${n}" aria-label="Citation ${n}">[${n}]</button>` : m);
  turn.body.innerHTML = html;
  const cited = new Set(turn.cited || []);
  turn.list.innerHTML = Object.values(turn.sources).map((s) => {
    const page = pageText(s);
    const where = page ? ` <span class="page">${escapeHtml(page)}</span>` : "";
    return `<li><button type="button" class="source${cited.has(s.n) ? " cited" : ""}" data-n="${s.n}">[${s.n}] ${escapeHtml(s.title || s.document_id)}${where}</button></li>`;
  }).join("");
}

// The answer's sentence that ends at the clicked marker: what the passage should support.
function claimBefore(text, markerIndex) {
  const before = text.slice(0, markerIndex).replace(/(\s*\[\d{1,3}\])+\s*$/, "");
  const start = Math.max(before.lastIndexOf("]") + 1, 0);
  return before.slice(start).trim();
}

function openPassage(turn, n, markerIndex) {
  const s = turn.sources[n];
  if (!s) return;
  $("passage-title").textContent = `[${n}] ${s.title || s.document_id}`;
  const place = [pageText(s), s.section].filter(Boolean).join(" · ");
  $("passage-meta").textContent = (place ? place + " · " : "") +
    `${s.source || s.document_id} · characters ${s.start}–${s.end} · chunk ${s.chunk_id} · score ${Number(s.score).toFixed(2)}`;
  const link = $("passage-file");
  if (s.page != null) {
    link.href = `/v1/documents/${encodeURIComponent(s.document_id)}/file#page=${s.page}`;
    link.hidden = false;
  } else {
    link.hidden = true;
  }
  const claim = markerIndex == null ? "" : claimBefore(turn.text, markerIndex);
  let start = 0, end = s.text.length; // default: the whole cited span
  if (claim) {
    const words = claim.split(/\s+/).map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    const found = new RegExp(words.join("\\s+")).exec(s.text);
    if (found) { start = found.index; end = found.index + found[0].length; }
  }
  $("passage-text").innerHTML = escapeHtml(s.text.slice(0, start)) + "<mark>" +
    escapeHtml(s.text.slice(start, end)) + "</mark>" + escapeHtml(s.text.slice(end));
  $("passage").hidden = false;
}

function addTurn(role, text) {
  const li = document.createElement("li");
  li.className = role;
  const body = document.createElement("div");
  body.className = "body";
  body.textContent = text;
  li.append(body);
  $("messages").append(li);
  return { li, body };
}

async function ask(question) {
  conversation.push({ id: "u" + conversation.length, role: "user", parts: [{ type: "text", text: question }] });
  addTurn("user", question);
  const { li, body } = addTurn("assistant", "");
  li.classList.add("streaming");
  const list = document.createElement("ol");
  list.className = "sources";
  const meta = document.createElement("p");
  meta.className = "meta";
  li.append(list, meta);
  const turn = { li, body, list, text: "", sources: {}, cited: [] };
  li.addEventListener("click", (e) => {
    const b = e.target.closest("button[data-n]");
    if (!b) return;
    const index = b.classList.contains("cite") ? [...li.querySelectorAll("button.cite")].indexOf(b) : -1;
    const markers = [...turn.text.matchAll(/\[(\d{1,3})\]/g)].filter((m) => turn.sources[m[1]]);
    openPassage(turn, b.dataset.n, index >= 0 && markers[index] ? markers[index].index : null);
  });
  try {
    const response = await api("/api/chat", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ id: chatId, messages: conversation, trigger: "submit-message" }),
    });
    if (!response.ok) {
      const problem = await response.json().catch(() => ({}));
      throw new Error(problem.detail || `HTTP ${response.status}`);
    }
    const parts = [];
    for await (const chunk of sseChunks(response)) {
      if (chunk.type === "source-document") {
        const s = chunk.providerMetadata?.citeline;
        if (s) turn.sources[s.n] = s;
        parts.push(chunk);
      } else if (chunk.type === "text-delta") {
        turn.text += chunk.delta;
        renderAnswer(turn);
      } else if (chunk.type === "data-citations") {
        turn.cited = chunk.data.cited || [];
      } else if (chunk.type === "finish") {
        const m = chunk.messageMetadata || {};
        meta.textContent = `${m.model} · ${m.latency_ms} ms · ${m.tokens_used} tokens`;
      } else if (chunk.type === "error") {
        throw new Error(chunk.errorText);
      }
    }
    renderAnswer(turn);
    conversation.push({ id: "a" + conversation.length, role: "assistant", parts: [{ type: "text", text: turn.text }] });
  } catch (err) {
    li.classList.add("error");
    meta.textContent = "Error: " + err.message;
    conversation.pop();
  } finally {
    li.classList.remove("streaming");
    li.dataset.done = "true";
  }
}

async function indexDocument(event) {
  event.preventDefault();
  const status = $("index-status");
  const file = $("doc-file").files[0];
  const text = $("doc-text").value;
  if (!file && !text.trim()) { status.textContent = "Paste some text or choose a file."; return; }
  status.textContent = "Uploading…";
  let request;
  if (file) { // a file goes as it is (PDF, DOCX, PPTX, HTML, Markdown, text): the server parses it
    const form = new FormData();
    form.append("file", file, file.name);
    if ($("doc-title").value) form.append("title", $("doc-title").value);
    request = { method: "POST", body: form };
  } else {
    const doc = { text, title: $("doc-title").value || undefined };
    request = { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(doc) };
  }
  const r = await api("/v1/documents", request);
  const body = await r.json();
  if (!r.ok) { status.textContent = "Refused: " + (body.detail || r.status); return; }
  status.textContent = `Indexing ${body.document_id}…`;
  for (let i = 0; i < 600; i++) {
    const job = await (await api(`/v1/jobs/${body.job_id}`)).json();
    if (job.status === "completed") { status.textContent = `Indexed ${body.document_id}.`; $("index").reset(); return; }
    if (job.status === "failed") { status.textContent = `Failed: ${job.error || "unknown error"}`; return; }
    await new Promise((done) => setTimeout(done, 250));
  }
  status.textContent = "Still indexing; check again later.";
}

$("ask").addEventListener("submit", (event) => {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  $("question").value = "";
  ask(question);
});
$("question").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("ask").requestSubmit(); }
});
$("close-passage").addEventListener("click", () => { $("passage").hidden = true; });
$("index").addEventListener("submit", indexDocument);
