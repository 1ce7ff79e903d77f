// The official API clients, loaded from LOOM_NODE_MODULES (ctest passes it) or the repository's node_modules.
// ESM ignores NODE_PATH, so the packages' ESM entry files are imported by path.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from './server.mjs';

const nodeModules = process.env.LOOM_NODE_MODULES || join(repoRoot, 'node_modules');
const load = async (name) => (await import(pathToFileURL(join(nodeModules, name, 'index.mjs')).href)).default;

export const OpenAI = await load('openai');
export const Anthropic = await load('@anthropic-ai/sdk');
