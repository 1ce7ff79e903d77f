// The official `openai` client against `loom serve`: every response must parse in the SDK and follow the
// chat-completions contract (shapes, finish reasons, usage, streaming frames, error classes).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { OpenAI } from './deps.mjs';
import { dataUri, goldenImage, gradientPng } from './media.mjs';
import { startServer, tinyModelConfig, tinyVocab } from './server.mjs';

const config = tinyModelConfig();
const kPrompts = ['Tell me a story.', 'Hello there', 'Write a poem about the sea', 'abc', 'Why is the sky blue?'];
const kLongTokens = 24;
// The random tiny model repeats one character when decoding greedily; a strong repetition penalty (a loom and vLLM
// extension the SDK passes through) makes its greedy text vary, so that stop strings and prefixes mean something.
const kVaried = { repetition_penalty: 10 };

describe('openai SDK', { timeout: 120000 }, () => {
  let server;
  let client;
  let model;
  let prompt; // a prompt whose greedy answer runs kLongTokens tokens without an end-of-turn
  let greedy; // that answer

  const user = (text) => [{ role: 'user', content: text }];
  const greedyChat = (extra = {}) =>
    client.chat.completions.create({
      model,
      messages: user(prompt),
      temperature: 0,
      max_tokens: kLongTokens,
      ...kVaried,
      ...extra,
    });

  before(async () => {
    server = await startServer();
    client = new OpenAI({ apiKey: 'unused', baseURL: server.baseURL, maxRetries: 0, timeout: 30000 });
    const list = await client.models.list();
    model = list.data[0].id;
    for (const candidate of kPrompts) {
      const r = await client.chat.completions.create({
        model,
        messages: user(candidate),
        temperature: 0,
        max_tokens: kLongTokens,
        ...kVaried,
      });
      const text = r.choices[0].message.content;
      if (r.choices[0].finish_reason === 'length' && new Set(text).size >= 8) {
        prompt = candidate;
        greedy = r;
        break;
      }
    }
    assert.ok(prompt, 'no prompt gives a varied greedy answer of 24 tokens: cannot test stop/length behaviour');
  });

  after(async () => {
    if (server) await server.stop();
  });

  it('lists and retrieves the served model', async () => {
    const list = await client.models.list();
    assert.ok(list.data.length >= 1);
    for (const m of list.data) {
      assert.equal(typeof m.id, 'string');
      assert.equal(m.object, 'model');
      assert.ok(Number.isInteger(m.created), 'created is an integer timestamp');
      assert.equal(typeof m.owned_by, 'string');
    }
    const one = await client.models.retrieve(model);
    assert.equal(one.id, model);
    assert.equal(one.object, 'model');
  });

  it('answers a chat completion with the documented shape', async () => {
    const r = greedy;
    assert.equal(typeof r.id, 'string');
    assert.ok(r.id.length > 0);
    assert.equal(r.object, 'chat.completion');
    assert.ok(Number.isInteger(r.created));
    assert.ok(Math.abs(r.created - Date.now() / 1000) < 3600, 'created is in seconds, now');
    assert.equal(r.model, model);
    assert.equal(r.choices.length, 1);
    const choice = r.choices[0];
    assert.equal(choice.index, 0);
    assert.equal(choice.message.role, 'assistant');
    assert.equal(typeof choice.message.content, 'string');
    assert.equal(choice.finish_reason, 'length');
    assert.equal(r.usage.completion_tokens, kLongTokens);
    assert.ok(r.usage.prompt_tokens > 0);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  });

  it('is deterministic when greedy', async () => {
    const again = await greedyChat();
    assert.equal(again.choices[0].message.content, greedy.choices[0].message.content);
    assert.deepEqual(again.usage, greedy.usage);
  });

  it('stops at max_tokens with finish_reason "length", and the text is the greedy prefix', async () => {
    for (const field of ['max_tokens', 'max_completion_tokens']) {
      const r = await client.chat.completions.create({
        model,
        messages: user(prompt),
        temperature: 0,
        ...kVaried,
        [field]: 5,
      });
      assert.equal(r.choices[0].finish_reason, 'length', field);
      assert.equal(r.usage.completion_tokens, 5, field);
      assert.ok(
        greedy.choices[0].message.content.startsWith(r.choices[0].message.content),
        `${field}: ${JSON.stringify(r.choices[0].message.content)} is not a prefix of the 24-token answer`,
      );
    }
  });

  it('is deterministic for a seed at temperature 1, and the seed matters', async () => {
    const sampled = (seed) =>
      client.chat.completions
        .create({ model, messages: user(prompt), temperature: 1, seed, max_tokens: 16 })
        .then((r) => r.choices[0].message.content);
    const first = await sampled(1234);
    assert.equal(await sampled(1234), first);
    const others = await Promise.all([1, 2, 3, 4].map(sampled));
    assert.ok(
      others.some((t) => t !== first),
      'four other seeds all gave the same text as seed 1234',
    );
  });

  it('streams the same text, a role chunk first, one finish_reason and a usage chunk', async () => {
    const stream = await greedyChat({ stream: true, stream_options: { include_usage: true } });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.ok(chunks.length >= 3);
    const id = chunks[0].id;
    for (const c of chunks) {
      assert.equal(c.object, 'chat.completion.chunk');
      assert.equal(c.id, id, 'every chunk carries the same id');
      assert.equal(c.model, model);
    }
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, [], 'the usage chunk has no choices');
    assert.deepEqual(last.usage, greedy.usage);
    const body = chunks.slice(0, -1);
    for (const c of body) assert.ok(c.usage == null, 'only the last chunk carries usage');
    const finishes = body.map((c) => c.choices[0].finish_reason).filter((f) => f != null);
    assert.deepEqual(finishes, ['length']);
    const text = body.map((c) => c.choices[0].delta.content ?? '').join('');
    assert.equal(text, greedy.choices[0].message.content);
  });

  it('streams without usage unless asked', async () => {
    const stream = await greedyChat({ stream: true, max_tokens: 4 });
    let sawFinish = false;
    for await (const c of stream) {
      assert.ok(c.usage == null);
      assert.equal(c.choices.length, 1);
      if (c.choices[0].finish_reason) sawFinish = true;
    }
    assert.ok(sawFinish);
  });

  it('cuts the text before the earliest stop string (plain and streamed)', async () => {
    const full = greedy.choices[0].message.content;
    // Two stop strings taken from the greedy answer; the one that appears first must win.
    const late = full.slice(6, 8);
    const early = full.slice(2, 4);
    const expected = full.slice(0, Math.min(full.indexOf(late), full.indexOf(early)));
    const r = await greedyChat({ stop: [late, early] });
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.equal(r.choices[0].message.content, expected);

    const single = await greedyChat({ stop: early });
    assert.equal(single.choices[0].message.content, full.slice(0, full.indexOf(early)));

    const stream = await greedyChat({ stream: true, stop: [late, early] });
    let text = '';
    let finish = null;
    for await (const c of stream) {
      text += c.choices[0]?.delta?.content ?? '';
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(text, expected, 'no part of the stop string leaks into the stream');
    assert.equal(finish, 'stop');
  });

  it('returns logprobs with top_logprobs consistent with the text', async () => {
    // Plain greedy (no penalty): the chosen token is then the most likely one.
    const r = await client.chat.completions.create({
      model,
      messages: user(prompt),
      temperature: 0,
      max_tokens: 8,
      logprobs: true,
      top_logprobs: 3,
    });
    const content = r.choices[0].logprobs.content;
    assert.equal(content.length, r.usage.completion_tokens);
    const bytes = [];
    for (const entry of content) {
      assert.equal(typeof entry.token, 'string');
      assert.ok(entry.logprob <= 0);
      assert.ok(Array.isArray(entry.bytes));
      bytes.push(...entry.bytes);
      assert.equal(entry.top_logprobs.length, 3);
      for (let i = 1; i < 3; i++) assert.ok(entry.top_logprobs[i - 1].logprob >= entry.top_logprobs[i].logprob);
      const mass = entry.top_logprobs.reduce((s, t) => s + Math.exp(t.logprob), 0);
      assert.ok(mass <= 1 + 1e-4, 'top probabilities sum to at most 1');
      assert.equal(entry.token, entry.top_logprobs[0].token);
      assert.ok(Math.abs(entry.logprob - entry.top_logprobs[0].logprob) < 1e-4);
    }
    assert.equal(new TextDecoder().decode(Uint8Array.from(bytes)), r.choices[0].message.content);

    const stream = await client.chat.completions.create({
      model,
      messages: user(prompt),
      temperature: 0,
      max_tokens: 8,
      logprobs: true,
      top_logprobs: 3,
      stream: true,
    });
    const streamed = [];
    for await (const c of stream) streamed.push(...(c.choices[0]?.logprobs?.content ?? []));
    assert.equal(streamed.length, content.length, 'one streamed logprobs entry per token');
    streamed.forEach((entry, i) => {
      assert.equal(entry.token, content[i].token);
      assert.ok(Math.abs(entry.logprob - content[i].logprob) < 1e-4);
      assert.deepEqual(
        entry.top_logprobs.map((t) => t.token),
        content[i].top_logprobs.map((t) => t.token),
      );
    });

    const plain = await greedyChat({ max_tokens: 4 });
    assert.ok(plain.choices[0].logprobs == null, 'no logprobs unless asked');
  });

  it('applies logit_bias: a forced character repeats, a forced end of turn stops at once', async () => {
    const vocab = tinyVocab();
    const forced = await greedyChat({ max_tokens: 6, logit_bias: { [vocab.Q]: 100 }, repetition_penalty: 1 });
    assert.equal(forced.choices[0].message.content, 'QQQQQQ');
    const eos = config.eosTokenIds.find((id) => id !== vocab['<eos>']) ?? config.eosTokenIds[0];
    const ended = await greedyChat({ logit_bias: { [eos]: 100 } });
    assert.equal(ended.choices[0].finish_reason, 'stop');
    assert.equal(ended.choices[0].message.content, '');
    assert.equal(ended.usage.completion_tokens, 1, 'the end-of-turn token is counted');
  });

  it('takes images as data URIs (generated PNG and a committed JPEG)', async () => {
    const text = { type: 'text', text: 'Describe the image.' };
    const without = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: [text] }],
      temperature: 0,
      max_tokens: 4,
    });
    for (const url of [dataUri(gradientPng()), dataUri(goldenImage('photo_121x89_q90.jpg'), 'image/jpeg')]) {
      const r = await client.chat.completions.create({
        model,
        messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }, text] }],
        temperature: 0,
        max_tokens: 4,
      });
      assert.equal(r.object, 'chat.completion');
      const added = r.usage.prompt_tokens - without.usage.prompt_tokens;
      assert.ok(added >= config.mmTokensPerImage, `the image adds ${added} prompt tokens`);
    }
  });

  it('raises the SDK error classes', async () => {
    await assert.rejects(greedyChat({ temperature: 5 }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `got ${e.constructor.name}`);
      assert.equal(e.status, 400);
      assert.equal(e.type, 'invalid_request_error');
      assert.equal(e.param, 'temperature');
      return true;
    });
    await assert.rejects(greedyChat({ model: 'no-such-model' }), (e) => {
      assert.ok(e instanceof OpenAI.NotFoundError, `got ${e.constructor.name}`);
      assert.equal(e.status, 404);
      assert.equal(e.code, 'model_not_found');
      return true;
    });
    const huge = 'the quick brown fox '.repeat(config.contextLength);
    await assert.rejects(greedyChat({ messages: user(huge) }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, `got ${e.constructor.name}`);
      assert.equal(e.code, 'context_length_exceeded');
      return true;
    });
  });

  it('answers legacy completions with text and with token ids', async () => {
    const r = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 4, temperature: 0 });
    assert.equal(r.object, 'text_completion');
    assert.equal(r.model, model);
    assert.equal(r.choices.length, 1);
    assert.equal(typeof r.choices[0].text, 'string');
    assert.equal(r.choices[0].index, 0);
    assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
    const stream = await client.completions.create({
      model,
      prompt: 'Once upon a time',
      max_tokens: 4,
      temperature: 0,
      stream: true,
    });
    let streamed = '';
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'text_completion');
      streamed += chunk.choices[0]?.text ?? '';
    }
    assert.equal(streamed, r.choices[0].text);
    const ids = await client.completions.create({ model, prompt: [10, 20, 30, 40], max_tokens: 3, temperature: 0 });
    assert.equal(ids.usage.prompt_tokens, 4);
    assert.ok(ids.usage.completion_tokens <= 3);
  });
});

describe('openai SDK against a server with --api-key', { timeout: 60000 }, () => {
  let server;
  before(async () => {
    server = await startServer({ args: ['--api-key', 'sekrit-key'] });
  });
  after(async () => {
    if (server) await server.stop();
  });

  it('refuses a wrong key with AuthenticationError and accepts the right one', async () => {
    const wrong = new OpenAI({ apiKey: 'not-the-key', baseURL: server.baseURL, maxRetries: 0 });
    await assert.rejects(wrong.models.list(), (e) => {
      assert.ok(e instanceof OpenAI.AuthenticationError, `got ${e.constructor.name}`);
      assert.equal(e.status, 401);
      return true;
    });
    const right = new OpenAI({ apiKey: 'sekrit-key', baseURL: server.baseURL, maxRetries: 0 });
    const list = await right.models.list();
    const r = await right.chat.completions.create({
      model: list.data[0].id,
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 2,
    });
    assert.equal(r.object, 'chat.completion');
  });
});
