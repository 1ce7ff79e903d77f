// The official `@anthropic-ai/sdk` client against `loom serve`: Messages API shapes, the SDK's stream helper,
// stop reasons, images, system prompts and error classes. Where both APIs render the same chat, they must agree.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Anthropic } from './deps.mjs';
import { gradientPng } from './media.mjs';
import { startServer, tinyModelConfig } from './server.mjs';

const config = tinyModelConfig();
const kPrompts = ['Tell me a story.', 'Hello there', 'Write a poem about the sea', 'abc', 'Why is the sky blue?'];
const kLongTokens = 24;

describe('anthropic SDK', { timeout: 120000 }, () => {
  let server;
  let client;
  let model;
  let prompt; // a prompt whose greedy answer runs kLongTokens tokens without an end-of-turn
  let greedy;

  const user = (content) => [{ role: 'user', content }];
  const greedyMessage = (extra = {}) =>
    client.messages.create({ model, max_tokens: kLongTokens, temperature: 0, messages: user(prompt), ...extra });
  const openaiChat = async (body) => {
    const res = await fetch(`${server.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, temperature: 0, ...body }),
    });
    assert.equal(res.status, 200);
    return res.json();
  };

  before(async () => {
    server = await startServer();
    client = new Anthropic({ apiKey: 'unused', baseURL: server.url, maxRetries: 0, timeout: 30000 });
    const models = await (await fetch(`${server.baseURL}/models`)).json();
    model = models.data[0].id;
    for (const candidate of kPrompts) {
      const m = await client.messages.create({ model, max_tokens: kLongTokens, temperature: 0, messages: user(candidate) });
      if (m.stop_reason === 'max_tokens' && m.content[0]?.text?.length >= 8) {
        prompt = candidate;
        greedy = m;
        break;
      }
    }
    assert.ok(prompt, 'no prompt gives a greedy answer of 24 tokens: cannot test stop behaviour');
  });

  after(async () => {
    if (server) await server.stop();
  });

  it('answers a message with the documented shape', () => {
    const m = greedy;
    assert.equal(typeof m.id, 'string');
    assert.ok(m.id.startsWith('msg_'), `id ${m.id}`);
    assert.equal(m.type, 'message');
    assert.equal(m.role, 'assistant');
    assert.equal(m.model, model);
    assert.equal(m.content.length, 1);
    assert.equal(m.content[0].type, 'text');
    assert.equal(typeof m.content[0].text, 'string');
    assert.equal(m.stop_reason, 'max_tokens');
    assert.equal(m.stop_sequence, null);
    assert.equal(m.usage.output_tokens, kLongTokens);
    assert.ok(m.usage.input_tokens > 0);
  });

  it('gives the same greedy text and token counts as chat completions', async () => {
    const r = await openaiChat({ messages: [{ role: 'user', content: prompt }], max_tokens: kLongTokens });
    assert.equal(r.choices[0].message.content, greedy.content[0].text);
    assert.equal(r.usage.prompt_tokens, greedy.usage.input_tokens);
    assert.equal(r.usage.completion_tokens, greedy.usage.output_tokens);
  });

  it('stops at max_tokens with stop_reason "max_tokens", and the text is the greedy prefix', async () => {
    const m = await greedyMessage({ max_tokens: 5 });
    assert.equal(m.stop_reason, 'max_tokens');
    assert.equal(m.usage.output_tokens, 5);
    assert.ok(greedy.content[0].text.startsWith(m.content[0].text));
  });

  it('streams through the SDK helper: text deltas add up to the final message', async () => {
    const stream = client.messages.stream({ model, max_tokens: kLongTokens, temperature: 0, messages: user(prompt) });
    let text = '';
    stream.on('text', (delta) => {
      text += delta;
    });
    const final = await stream.finalMessage();
    assert.equal(text, greedy.content[0].text);
    assert.equal(final.content[0].text, greedy.content[0].text);
    assert.equal(final.stop_reason, 'max_tokens');
    assert.equal(final.usage.output_tokens, kLongTokens);
    assert.equal(final.usage.input_tokens, greedy.usage.input_tokens);
    assert.ok(final.id.startsWith('msg_'));
  });

  it('streams the events in the documented order', async () => {
    const stream = await greedyMessage({ stream: true, max_tokens: 6 });
    const types = [];
    let stop = null;
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === 'message_start') {
        assert.equal(event.message.role, 'assistant');
        assert.deepEqual(event.message.content, []);
        assert.equal(event.message.model, model);
      }
      if (event.type === 'content_block_start') assert.deepEqual(event.content_block, { type: 'text', text: '' });
      if (event.type === 'content_block_delta') assert.equal(event.delta.type, 'text_delta');
      if (event.type === 'message_delta') {
        stop = event.delta.stop_reason;
        assert.equal(event.usage.output_tokens, 6);
      }
    }
    const squashed = types.filter((t) => t !== 'ping').filter((t, i, a) => t !== 'content_block_delta' || a[i - 1] !== t);
    assert.deepEqual(squashed, [
      'message_start',
      'content_block_start',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    assert.equal(stop, 'max_tokens');
  });

  it('stops at stop_sequences and names the one that matched', async () => {
    // The Messages API has no seed or repetition penalty, so this is the tiny model's greedy text, which tends to
    // repeat one character; the stop matcher itself is covered with varied text by the chat-completions tests.
    const full = greedy.content[0].text;
    const late = full.slice(6, 8);
    const early = full.slice(2, 4);
    const first = full.indexOf(early) <= full.indexOf(late) ? early : late;
    const m = await greedyMessage({ stop_sequences: [late, early] });
    assert.equal(m.stop_reason, 'stop_sequence');
    assert.equal(m.stop_sequence, first);
    assert.equal(m.content[0]?.text ?? '', full.slice(0, full.indexOf(first)));

    const stream = client.messages.stream({
      model,
      max_tokens: kLongTokens,
      temperature: 0,
      messages: user(prompt),
      stop_sequences: [late, early],
    });
    let text = '';
    stream.on('text', (delta) => {
      text += delta;
    });
    const final = await stream.finalMessage();
    assert.equal(text, full.slice(0, full.indexOf(first)));
    assert.equal(final.stop_reason, 'stop_sequence');
    assert.equal(final.stop_sequence, first);
  });

  it('takes a system prompt as a string or as text blocks, like a system message in chat completions', async () => {
    const system = 'You are terse.';
    const plain = await greedyMessage({ max_tokens: 4 });
    const withString = await greedyMessage({ max_tokens: 4, system });
    const withBlocks = await greedyMessage({ max_tokens: 4, system: [{ type: 'text', text: system }] });
    assert.ok(withString.usage.input_tokens > plain.usage.input_tokens, 'the system prompt reaches the model');
    assert.equal(withBlocks.usage.input_tokens, withString.usage.input_tokens);
    assert.equal(withBlocks.content[0]?.text, withString.content[0]?.text);
    const chat = await openaiChat({
      messages: [
        { role: 'system', content: system },
        { role: 'user', content: prompt },
      ],
      max_tokens: 4,
    });
    assert.equal(chat.usage.prompt_tokens, withString.usage.input_tokens);
    assert.equal(chat.choices[0].message.content, withString.content[0]?.text ?? '');
  });

  it('takes a base64 image block', async () => {
    const data = gradientPng().toString('base64');
    const text = { type: 'text', text: 'What is this?' };
    const without = await greedyMessage({ max_tokens: 3, messages: user([text]) });
    const m = await greedyMessage({
      max_tokens: 3,
      messages: user([{ type: 'image', source: { type: 'base64', media_type: 'image/png', data } }, text]),
    });
    assert.equal(m.type, 'message');
    const added = m.usage.input_tokens - without.usage.input_tokens;
    assert.ok(added >= config.mmTokensPerImage, `the image adds ${added} input tokens`);
  });

  it('raises the SDK error classes with the Anthropic error envelope', async () => {
    await assert.rejects(greedyMessage({ temperature: 1.5 }), (e) => {
      assert.ok(e instanceof Anthropic.BadRequestError, `got ${e.constructor.name}`);
      assert.equal(e.status, 400);
      assert.equal(e.error.type, 'error');
      assert.equal(e.error.error.type, 'invalid_request_error');
      return true;
    });
    await assert.rejects(greedyMessage({ model: 'no-such-model' }), (e) => {
      assert.ok(e instanceof Anthropic.NotFoundError, `got ${e.constructor.name}`);
      assert.equal(e.error.error.type, 'not_found_error');
      return true;
    });
  });
});

describe('anthropic SDK against a server with --api-key', { timeout: 60000 }, () => {
  let server;
  before(async () => {
    server = await startServer({ args: ['--api-key', 'sekrit-key'] });
  });
  after(async () => {
    if (server) await server.stop();
  });

  it('refuses a wrong x-api-key with AuthenticationError and accepts the right one', async () => {
    const models = await (
      await fetch(`${server.baseURL}/models`, { headers: { authorization: 'Bearer sekrit-key' } })
    ).json();
    const body = { model: models.data[0].id, max_tokens: 2, messages: [{ role: 'user', content: 'hi' }] };
    const wrong = new Anthropic({ apiKey: 'not-the-key', baseURL: server.url, maxRetries: 0 });
    await assert.rejects(wrong.messages.create(body), (e) => {
      assert.ok(e instanceof Anthropic.AuthenticationError, `got ${e.constructor.name}`);
      assert.equal(e.error.error.type, 'authentication_error');
      return true;
    });
    const right = new Anthropic({ apiKey: 'sekrit-key', baseURL: server.url, maxRetries: 0 });
    const m = await right.messages.create(body);
    assert.equal(m.type, 'message');
  });
});
