// The real AI SDK client (DefaultChatTransport + readUIMessageStream) against a live citeline.
// Run through tests/integration/test_chat_node.py, which starts the server and sets CITELINE_URL.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { describe, test } from "node:test";

const BASE = process.env.CITELINE_URL;
const FAIL_WORD = process.env.CITELINE_FAIL_WORD;
if (!BASE || !FAIL_WORD) throw new Error("CITELINE_URL / CITELINE_FAIL_WORD unset: run via pytest");

const require = createRequire(import.meta.url);

// ai 5 is the pin for Node 20; the newest major runs when this Node satisfies its engines field.
function nodeTooOld(pkg) {
  const { engines, version } = JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), "utf8"));
  const min = /^>=\s*(\d+)/.exec(engines?.node ?? "")?.[1];
  const major = Number(process.versions.node.split(".")[0]);
  return min && major < Number(min) ? `ai ${version} needs Node >= ${min}, this is ${process.versions.node}` : false;
}

const userMessage = (id, text) => ({ id, role: "user", parts: [{ type: "text", text }] });
const textOf = (message) => message.parts.filter((p) => p.type === "text").map((p) => p.text).join("");

for (const pkg of ["ai5", "ai6", "ai7"]) {
  describe(pkg, { skip: nodeTooOld(pkg) }, () => {
    let ai;
    const load = async () => (ai ??= await import(pkg));

    async function send(chatId, messages, { terminateOnError = true, onError } = {}) {
      await load();
      const transport = new ai.DefaultChatTransport({ api: `${BASE}/api/chat` });
      const stream = await transport.sendMessages({
        chatId, messages, trigger: "submit-message", messageId: undefined, abortSignal: undefined,
      });
      let last;
      for await (const message of ai.readUIMessageStream({ stream, terminateOnError, onError })) last = message;
      return last;
    }

    test("answer: text, source-document parts, citations and metadata", async () => {
      const message = await send(`${pkg}-one`, [userMessage("u1", "Which volcano in Sicily is most active?")]);
      assert.equal(message.role, "assistant");
      assert.match(message.id, /^msg_/);
      const text = textOf(message);
      assert.match(text, /Etna/);
      assert.match(text, /\[1\]/);
      const sources = message.parts.filter((p) => p.type === "source-document");
      assert.ok(sources.length >= 1);
      const first = sources[0];
      const meta = first.providerMetadata.citeline;
      assert.equal(first.title, "Volcanoes");
      assert.equal(first.filename, "https://example.org/volcano");
      assert.equal(first.sourceId, `volcano#${meta.chunk_id}`);
      assert.equal(meta.n, 1);
      assert.equal(meta.end - meta.start, meta.text.length);
      assert.ok(meta.score > 0);
      const citations = message.parts.find((p) => p.type === "data-citations");
      assert.ok(citations.data.cited.includes(1));
      for (const span of citations.data.spans ?? []) assert.equal(text.slice(span.start, span.end), `[${span.n}]`);
      assert.equal(message.metadata.model, "extractive");
      assert.ok(message.metadata.latency_ms > 0);
      assert.ok(message.metadata.usage.completion_tokens > 0);
      assert.equal(message.metadata.usage.total_tokens, message.metadata.tokens_used);
      // sources before text, as streamed
      const kinds = message.parts.map((p) => p.type);
      assert.ok(kinds.indexOf("source-document") < kinds.indexOf("text"));
    });

    test("multi-turn: the follow-up is answered with the history sent back", async () => {
      const chatId = `${pkg}-multi`;
      const q1 = userMessage("u1", "Which volcano is in Sicily?");
      const a1 = await send(chatId, [q1]);
      const q2 = userMessage("u2", "What does a glacier carve?");
      const a2 = await send(chatId, [q1, a1, q2]); // a1 carries every part it streamed
      assert.match(textOf(a2), /valleys/);
      const docs = a2.parts.filter((p) => p.type === "source-document").map((p) => p.providerMetadata.citeline.document_id);
      assert.equal(docs[0], "glacier");
      assert.notEqual(a2.id, a1.id);
    });

    test("an error mid-stream surfaces as an error", async () => {
      const errors = [];
      await assert.rejects(
        send(`${pkg}-err`, [userMessage("u1", `Which volcano ${FAIL_WORD}?`)], { onError: (e) => errors.push(e) }),
        (err) => err instanceof Error && /the answer stream failed: ConnectionError/.test(err.message),
      );
      assert.equal(errors.length, 1);
    });

    test("a refused request surfaces as an error with the problem detail", async () => {
      await assert.rejects(
        send(`${pkg}-bad`, [{ id: "u1", role: "user", parts: [{ type: "file", url: "x", mediaType: "image/png" }] }]),
        (err) => err instanceof Error && /no text/.test(err.message) && /"status":400/.test(err.message),
      );
    });

    test("reconnectToStream: no active stream is null (204)", async () => {
      await load();
      const transport = new ai.DefaultChatTransport({ api: `${BASE}/api/chat` });
      assert.equal(await transport.reconnectToStream({ chatId: `${pkg}-one` }), null);
    });
  });
}
