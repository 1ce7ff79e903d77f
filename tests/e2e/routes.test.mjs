// The small routes over plain fetch: /health, /metrics, /v1/models, /tokenize and /detokenize. Token ids are checked
// against the snapshot's own tokenizer.json (the tiny tokenizer maps each printable ASCII character to one token),
// and the chat token count against what chat completions reports as usage.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startServer, tinyVocab } from './server.mjs';

const vocab = tinyVocab();

describe('routes', { timeout: 60000 }, () => {
  let server;
  let model;
  const post = async (route, body) => {
    const res = await fetch(server.url + route, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    assert.equal(res.status, 200, `${route}: ${text.slice(0, 300)}`);
    return JSON.parse(text);
  };

  before(async () => {
    server = await startServer();
    model = (await (await fetch(`${server.baseURL}/models`)).json()).data[0].id;
  });
  after(async () => {
    if (server) await server.stop();
  });

  it('reports health', async () => {
    const res = await fetch(`${server.url}/health`);
    assert.equal(res.status, 200);
  });

  it('lists the model in the OpenAI shape', async () => {
    const res = await fetch(`${server.baseURL}/models`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /application\/json/);
    const list = await res.json();
    assert.equal(list.object, 'list');
    assert.ok(list.data.some((m) => m.id === model && m.object === 'model'));
    const one = await fetch(`${server.baseURL}/models/${encodeURIComponent(model)}`);
    assert.equal(one.status, 200);
    assert.equal((await one.json()).id, model);
    const missing = await fetch(`${server.baseURL}/models/no-such-model`);
    assert.equal(missing.status, 404);
    assert.equal(typeof (await missing.json()).error.message, 'string');
  });

  it('serves Prometheus text on /metrics', async () => {
    const res = await fetch(`${server.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/plain/);
    const text = await res.text();
    for (const line of text.split('\n')) {
      if (!line || line.startsWith('#')) continue;
      assert.match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([^"}]|"([^"\\]|\\.)*")*\})? (-?[0-9.e+-]+|[+-]?Inf|NaN)$/, `metric line: ${line}`);
    }
    for (const name of ['loom_requests_running', 'loom_queue_depth', 'loom_kv_blocks_used', 'loom_kv_blocks_total']) {
      assert.match(text, new RegExp(`^# TYPE ${name} gauge$`, 'm'));
    }
  });

  it('tokenizes text as the tokenizer.json says and detokenizes back', async () => {
    const text = 'Hello,world!';
    const expected = [...text].map((c) => vocab[c]);
    assert.ok(expected.every((id) => Number.isInteger(id)));
    const plain = await post('/tokenize', { model, content: text, add_special_tokens: false });
    assert.deepEqual(plain.tokens, expected);
    assert.equal(plain.count, expected.length);
    assert.ok(plain.max_model_len > 0);
    const back = await post('/detokenize', { model, tokens: plain.tokens });
    assert.equal(back.prompt, text);
    const special = await post('/tokenize', { model, content: text });
    assert.deepEqual(special.tokens, [vocab['<bos>'], ...expected]);
  });

  it('counts chat messages the way chat completions bills them', async () => {
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hello there' },
    ];
    const counted = await post('/tokenize', { model, messages });
    const chat = await post('/v1/chat/completions', { model, messages, max_tokens: 1 });
    assert.equal(counted.count, chat.usage.prompt_tokens);
  });
});
