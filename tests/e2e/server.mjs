// Starts `loom serve` on the tiny chat snapshot for one test file and stops it at the end.
//
// The binary comes from LOOM_BINARY (ctest sets it to the built target), else build/release/loom. The server picks
// its own port (--port 0) and announces it on stderr as "loom: listening on http://HOST:PORT"; we read that line
// instead of guessing a free port, so parallel test files never collide. stderr is kept (a bounded tail) so that a
// failure can show what the server said.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
export const loomBinary = process.env.LOOM_BINARY || join(repoRoot, 'build', 'release', 'loom');
export const tinyModelDir = join(repoRoot, 'tests', 'golden', 'snapshots', 'tiny_chat');
export const imagesDir = join(repoRoot, 'tests', 'golden', 'images');
export const demoModelDir = join(repoRoot, 'models', 'demo');

const kListening = /loom: listening on (http:\/\/(\S+):(\d+))/;
const kStderrTail = 64 * 1024;

// The model's own numbers, read from its config.json (the reference the limits are checked against).
export function tinyModelConfig() {
  const config = JSON.parse(readFileSync(join(tinyModelDir, 'config.json'), 'utf8'));
  const text = config.text_config ?? config;
  const eos = config.eos_token_id ?? text.eos_token_id;
  return {
    vocabSize: text.vocab_size,
    contextLength: text.max_position_embeddings,
    mmTokensPerImage: config.mm_tokens_per_image ?? 1,
    eosTokenIds: Array.isArray(eos) ? eos : [eos],
  };
}

// token string → id, from the snapshot's tokenizer.json (the tiny tokenizer has one token per ASCII character).
export function tinyVocab() {
  return JSON.parse(readFileSync(join(tinyModelDir, 'tokenizer.json'), 'utf8')).model.vocab;
}

class LoomServer {
  constructor(proc, args) {
    this.proc = proc;
    this.args = args;
    this.stderr = '';
    this.exited = null; // {code, signal} once the process is gone
    this.stopping = false;
    this.exitPromise = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        this.exited = { code, signal };
        resolve(this.exited);
      });
    });
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk) => {
      this.stderr = (this.stderr + chunk).slice(-kStderrTail);
    });
    proc.stdout.resume(); // drained so a chatty server never blocks on a full pipe
  }

  describe() {
    return `loom ${this.args.join(' ')}\n--- server stderr (tail) ---\n${this.stderr.slice(-4000)}`;
  }

  async waitListening(timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const match = kListening.exec(this.stderr);
      if (match) {
        this.url = match[1];
        this.host = match[2];
        this.port = Number(match[3]);
        return;
      }
      if (this.exited) {
        throw new Error(`server exited before listening (${JSON.stringify(this.exited)})\n${this.describe()}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`server did not print "loom: listening on" within ${timeoutMs} ms\n${this.describe()}`);
  }

  // The model loads after the socket is bound; /health says 200 once it is ready (and needs no API key).
  async waitHealthy(timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      this.assertAlive();
      try {
        const res = await fetch(`${this.url}/health`);
        last = `${res.status} ${await res.text()}`;
        if (res.status === 200) return;
      } catch (e) {
        last = String(e);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`/health did not answer 200 within ${timeoutMs} ms (last: ${last})\n${this.describe()}`);
  }

  get baseURL() {
    return `${this.url}/v1`;
  }

  // Throws when the process is gone although nobody stopped it (a crash).
  assertAlive() {
    if (this.exited && !this.stopping) {
      throw new Error(`server died: ${JSON.stringify(this.exited)}\n${this.describe()}`);
    }
  }

  // SIGTERM, then wait: loom shuts down gracefully and exits 0. A server that crashed earlier, crashes on the way out,
  // dies of the signal itself (no graceful shutdown) or hangs fails the test.
  async stop(timeoutMs = 10000) {
    this.assertAlive();
    this.stopping = true;
    this.proc.kill('SIGTERM');
    const timer = new Promise((r) => setTimeout(() => r(null), timeoutMs));
    const result = await Promise.race([this.exitPromise, timer]);
    if (!result) {
      this.proc.kill('SIGKILL');
      await this.exitPromise;
      throw new Error(`server did not exit within ${timeoutMs} ms of SIGTERM\n${this.describe()}`);
    }
    const clean = result.code === 0;
    if (!clean) {
      throw new Error(`server ended badly on SIGTERM: ${JSON.stringify(result)}\n${this.describe()}`);
    }
  }
}

const running = new Set();
process.on('exit', () => {
  for (const server of running) if (!server.exited) server.proc.kill('SIGKILL');
});

// Starts a server on `model` (a snapshot folder; the tiny chat model unless said); `args` are extra `loom serve` flags
// (e.g. ['--api-key', 'k']).
export async function startServer({ model = tinyModelDir, args = [], timeoutMs = 30000 } = {}) {
  const fullArgs = ['serve', '--model', model, '--port', '0', ...args];
  const proc = spawn(loomBinary, fullArgs, { stdio: ['ignore', 'pipe', 'pipe'], cwd: repoRoot });
  const server = new LoomServer(proc, fullArgs);
  running.add(server);
  proc.on('error', (err) => {
    server.exited = { code: null, signal: null, error: String(err) };
  });
  await server.waitListening(timeoutMs);
  await server.waitHealthy(timeoutMs);
  server.exitPromise.then(() => running.delete(server));
  return server;
}
