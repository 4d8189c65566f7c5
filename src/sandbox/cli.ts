/**
 * `npm run sandbox`: starts the sandbox alone and prints the environment that points a
 * worker at it, e.g. `eval "$(npm run -s sandbox -- --export)"` in another shell is not
 * possible (it keeps running), so it prints the lines to copy, and writes them to
 * `$DATA_DIR/sandbox.env` for `npm run sandbox:send`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSandbox } from './index.js';

const dataDir = process.env.DATA_DIR ?? './data';
const sandbox = await startSandbox({ ports: { org: 4510, paubox: 4511, kms: 4512 } }).catch(() => startSandbox());
const lines = Object.entries(sandbox.env).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
mkdirSync(dataDir, { recursive: true, mode: 0o700 });
writeFileSync(join(dataDir, 'sandbox.env'), lines.join('\n') + '\n', { mode: 0o600 });
console.log('# Sandbox running (Salesforce org, Paubox, KMS on loopback). Point a worker at it with:');
console.log(lines.map((l) => `export ${l}`).join('\n'));
console.log(`# (also written to ${join(dataDir, 'sandbox.env')}; queue a message with: npm run sandbox:send)`);
const stop = () => void sandbox.close().then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
