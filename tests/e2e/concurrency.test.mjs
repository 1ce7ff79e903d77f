// Many streaming clients at once, a quarter of them hanging up mid-stream. Every surviving stream must finish
// properly (one finish_reason, then data: [DONE]), the process must stay up, and once the dust settles the engine
// must hold nothing: no running or queued request and no KV block in use (read from /metrics).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startServer } from './server.mjs';

const kClients = 32;
const kAborting = kClients / 4;
const kSurvivorTokens = 16;
const kAbortingTokens = 1500;
// Metric names as the server publishes them (docs/API.md lists them).
const kMetricRunning = 'loom_requests_running';
const kMetricQueued = 'loom_queue_depth';
const kMetricKvUsed = 'loom_kv_blocks_used';

// Reads an SSE response; returns the data payloads in order. Stops early (aborting the request) once `abortAfter`
// chunks with content have arrived.
async function readSse(res, controller, abortAfter) {
  const decoder = new TextDecoder();
  const data = [];
  let buffer = '';
  let contentChunks = 0;
  for await (const bytes of res.body) {
    buffer += decoder.decode(bytes, { stream: true });
    let end;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
      const lines = event.split(/\r?\n/).filter((l) => l.startsWith('data:'));
      if (lines.length === 0) continue; // comments / keep-alives
      const payload = lines.map((l) => l.slice(5).replace(/^ /, '')).join('\n');
      data.push(payload);
      if (payload !== '[DONE]' && JSON.parse(payload).choices?.[0]?.delta?.content) contentChunks++;
    }
    if (abortAfter && contentChunks >= abortAfter) {
      controller.abort();
      return { data, aborted: true };
    }
  }
  assert.equal(buffer.trim(), '', 'the stream ends on an event boundary');
  return { data, aborted: false };
}

function parseMetrics(text) {
  const values = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^"}]|"([^"\\]|\\.)*")*\})?\s+(\S+)/.exec(line);
    if (m) values.set(m[1], (values.get(m[1]) ?? 0) + Number(m.at(-1)));
  }
  return values;
}

describe('concurrency', { timeout: 120000 }, () => {
  let server;
  let model;

  before(async () => {
    server = await startServer();
    model = (await (await fetch(`${server.baseURL}/models`)).json()).data[0].id;
  });
  after(async () => {
    if (server) await server.stop();
  });

  it(`serves ${kClients} parallel streams with ${kAborting} clients hanging up`, async () => {
    const client = async (i) => {
      const aborting = i % 4 === 0;
      const controller = new AbortController();
      const res = await fetch(`${server.baseURL}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        signal: controller.signal,
        body: JSON.stringify({
          model,
          messages: [{ role: 'user', content: `Client ${i} says hello. Tell me something.` }],
          stream: true,
          temperature: 1,
          seed: i,
          // The ones that hang up ask for a long answer: it must be cancelled, not run to the end.
          max_tokens: aborting ? kAbortingTokens : kSurvivorTokens,
        }),
      });
      assert.equal(res.status, 200, `client ${i}`);
      assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
      try {
        return { i, aborting, ...(await readSse(res, controller, aborting ? 2 : 0)) };
      } catch (e) {
        if (aborting && e.name === 'AbortError') return { i, aborting, aborted: true, data: [] };
        throw e;
      }
    };
    const engineCounters = async () =>
      (await (await fetch(`${server.baseURL}/models/${encodeURIComponent(model)}/status`)).json()).engine;
    const before = await engineCounters();
    const results = await Promise.all(Array.from({ length: kClients }, (_, i) => client(i)));

    let survivors = 0;
    for (const r of results) {
      if (r.aborting) {
        // A client that hangs up after two content chunks: unless the answer ended first, the stream was cut.
        continue;
      }
      survivors++;
      assert.ok(!r.aborted);
      assert.equal(r.data.at(-1), '[DONE]', `client ${r.i}: the stream ends with [DONE]`);
      const chunks = r.data.slice(0, -1).map((d) => JSON.parse(d));
      assert.ok(chunks.length >= 2, `client ${r.i}: got ${chunks.length} chunks`);
      const id = chunks[0].id;
      for (const c of chunks) {
        assert.equal(c.object, 'chat.completion.chunk');
        assert.equal(c.id, id);
      }
      const finishes = chunks.map((c) => c.choices[0]?.finish_reason).filter((f) => f != null);
      assert.equal(finishes.length, 1, `client ${r.i}: exactly one finish_reason`);
      assert.ok(['stop', 'length'].includes(finishes[0]), `client ${r.i}: finish_reason ${finishes[0]}`);
      assert.equal(chunks.at(-1).choices[0]?.finish_reason, finishes[0], 'finish_reason is on the last chunk');
    }
    assert.equal(survivors, kClients - kAborting);
    server.assertAlive();

    const health = await fetch(`${server.url}/health`);
    assert.equal(health.status, 200);

    // The engine drains: hung-up requests are cancelled and every KV block comes back.
    let metrics;
    const deadline = Date.now() + 5000;
    for (;;) {
      const res = await fetch(`${server.url}/metrics`);
      assert.equal(res.status, 200);
      metrics = parseMetrics(await res.text());
      for (const name of [kMetricRunning, kMetricQueued, kMetricKvUsed]) assert.ok(metrics.has(name), `/metrics has ${name}`);
      const busy = metrics.get(kMetricRunning) + metrics.get(kMetricQueued) + metrics.get(kMetricKvUsed);
      if (busy === 0 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(metrics.get(kMetricRunning), 0, 'no running request');
    assert.equal(metrics.get(kMetricQueued), 0, 'no queued request');
    assert.equal(metrics.get(kMetricKvUsed), 0, 'no KV block in use');
    // Cancelled, not run to the end: the hung-up requests sampled far fewer than their max_tokens (the engine's own
    // counter, GET /v1/models/{id}/status, counts every sampled token, cancelled requests' included).
    const generated = (await engineCounters()).generated_tokens - before.generated_tokens;
    const bound = (kClients - kAborting) * kSurvivorTokens + (kAborting * kAbortingTokens) / 2;
    assert.ok(generated < bound, `sampled ${generated} tokens; without cancellation it would be over ${bound}`);

    // And it still answers.
    const res = await fetch(`${server.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'still there?' }], max_tokens: 2 }),
    });
    assert.equal(res.status, 200);
    server.assertAlive();
  });
});
