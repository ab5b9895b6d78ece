// The v4 data stream read by the AI SDK 4 parser (@ai-sdk/ui-utils processDataStream).
import assert from "node:assert/strict";
import { test } from "node:test";
import { processDataStream } from "@ai-sdk/ui-utils";

const BASE = process.env.CITELINE_URL;
const FAIL_WORD = process.env.CITELINE_FAIL_WORD;
if (!BASE || !FAIL_WORD) throw new Error("CITELINE_URL / CITELINE_FAIL_WORD unset: run via pytest");

async function read(body, query = "") {
  const response = await fetch(`${BASE}/api/chat${query}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("x-vercel-ai-data-stream"), "v1");
  const got = { order: [], text: "", toolCalls: [], toolResults: [], sources: [], annotations: [], errors: [], finish: null, steps: [] };
  await processDataStream({
    stream: response.body,
    onStartStepPart: (v) => { got.order.push("start_step"); got.steps.push(v); },
    onToolCallPart: (v) => { got.order.push("tool_call"); got.toolCalls.push(v); },
    onToolResultPart: (v) => { got.order.push("tool_result"); got.toolResults.push(v); },
    onSourcePart: (v) => { got.order.push("source"); got.sources.push(v); },
    onTextPart: (v) => { got.order.push("text"); got.text += v; },
    onMessageAnnotationsPart: (v) => { got.order.push("annotations"); got.annotations.push(...v); },
    onErrorPart: (v) => { got.order.push("error"); got.errors.push(v); },
    onFinishStepPart: () => got.order.push("finish_step"),
    onFinishMessagePart: (v) => { got.order.push("finish"); got.finish = v; },
    onDataPart: () => got.order.push("data"),
  });
  return got;
}

const GUIDE = {
  messages: [{ role: "user", content: "Which volcano in Sicily is most active?" }],
  model: "gpt-4o-mini",
  temperature: 0.2,
  stream: true,
};

test("tool call, tool result, sources, text and finish", async () => {
  const got = await read(GUIDE);
  assert.deepEqual(got.order.slice(0, 3), ["start_step", "tool_call", "tool_result"]);
  assert.equal(got.order.at(-1), "finish");
  assert.ok(got.order.indexOf("source") < got.order.indexOf("text"));
  const [call] = got.toolCalls;
  assert.equal(call.toolName, "retrieve");
  assert.equal(call.args.query, "Which volcano in Sicily is most active?");
  assert.equal(got.toolResults[0].toolCallId, call.toolCallId);
  assert.equal(got.toolResults[0].result.sources[0].document_id, "volcano");
  assert.equal(got.sources[0].sourceType, "url");
  assert.equal(got.sources[0].url, "https://example.org/volcano");
  assert.equal(got.sources[0].title, "Volcanoes");
  assert.match(got.text, /Etna.*\[1\]/);
  assert.equal(got.annotations.length, 1);
  assert.equal(got.annotations[0].type, "citations");
  assert.deepEqual(got.annotations[0].cited, [1]);
  for (const span of got.annotations[0].spans ?? []) {
    assert.equal(got.text.slice(span.start, span.end), `[${span.n}]`);
  }
  assert.equal(got.finish.finishReason, "stop");
  assert.ok(got.finish.usage.completionTokens > 0);
  assert.equal(got.errors.length, 0);
});

test("an AI SDK 4 useChat body (content and parts) gets the data stream", async () => {
  const got = await read({
    id: "v4-chat",
    messages: [{ id: "m1", role: "user", content: "What does a glacier carve?", parts: [{ type: "text", text: "What does a glacier carve?" }] }],
  });
  assert.match(got.text, /valleys/);
});

test("?protocol=data on a UI-message body", async () => {
  const got = await read(
    { id: "c", trigger: "submit-message", messages: [{ id: "u", role: "user", parts: [{ type: "text", text: "How does sourdough rise?" }] }] },
    "?protocol=data",
  );
  assert.match(got.text, /yeast/);
});

test("an error mid-stream is an error part, and finish still comes last", async () => {
  const got = await read({ messages: [{ role: "user", content: `Which volcano ${FAIL_WORD}?` }] });
  assert.equal(got.errors.length, 1);
  assert.match(got.errors[0], /ConnectionError/);
  assert.equal(got.order.at(-1), "finish");
  assert.equal(got.finish.finishReason, "error");
});
