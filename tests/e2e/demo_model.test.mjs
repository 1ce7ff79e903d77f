// The bundled demo model through `loom serve` and the official OpenAI client, as a user of `make run` meets it:
// images sent as data URIs get the answers transformers gives for the same conversations (models/demo/testset/),
// also when the image sits in an earlier user turn than the question.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { OpenAI } from './deps.mjs';
import { dataUri } from './media.mjs';
import { demoModelDir, startServer } from './server.mjs';

const testset = join(demoModelDir, 'testset');
const cases = readFileSync(join(testset, 'cases.jsonl'), 'utf8')
  .split('\n')
  .filter((line) => line.trim())
  .map((line) => JSON.parse(line));

// The case's conversation in OpenAI form: its {"type": "image"} part becomes an image_url with the PNG as a data URI.
function openaiMessages(c) {
  const uri = dataUri(readFileSync(join(testset, c.image)));
  return c.messages.map((m) =>
    typeof m.content === 'string'
      ? m
      : {
          role: m.role,
          content: m.content.map((part) => (part.type === 'image' ? { type: 'image_url', image_url: { url: uri } } : part)),
        },
  );
}

describe('demo model over HTTP with the openai client', () => {
  let server;
  let client;
  before(async () => {
    server = await startServer({ model: demoModelDir });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused' });
  });
  after(async () => server?.stop());

  // A spread of the test set: single-turn questions of every kind and every multi-turn case.
  const chosen = cases.filter((c, k) => k % 6 === 0 || c.messages.length > 1);

  for (const c of chosen) {
    it(`${c.image}: ${c.messages.at(-1).content.at?.(-1)?.text ?? c.messages.at(-1).content}`, async () => {
      const reply = await client.chat.completions.create({
        model: 'demo',
        messages: openaiMessages(c),
        temperature: 0,
        max_tokens: 32,
      });
      assert.equal(reply.choices[0].message.content.trim(), c.transformers_answer);
      assert.equal(reply.choices[0].finish_reason, 'stop');
    });
  }

  it('answers without an image that it sees none', async () => {
    const reply = await client.chat.completions.create({
      model: 'demo',
      messages: [{ role: 'user', content: 'What colour is the star?' }],
      temperature: 0,
      max_tokens: 32,
    });
    assert.equal(reply.choices[0].message.content.trim(), 'I do not see an image. Please send one.');
  });
});
