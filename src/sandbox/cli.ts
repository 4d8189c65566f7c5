/**
 * `npm run sandbox`: starts the sandbox alone and prints the environment that points a
 * worker at it (also written to `$DATA_DIR/sandbox.env` for `npm run sandbox:send`).
 */
import { sandboxEnvFile, startLocalSandbox } from './index.js';

const dataDir = process.env.DATA_DIR ?? './data';
const sandbox = await startLocalSandbox(dataDir);
console.log('# Sandbox running (Salesforce org, Paubox, KMS on loopback). Point a worker at it with:');
console.log(Object.entries(sandbox.env).map(([k, v]) => `export ${k}=${JSON.stringify(v)}`).join('\n'));
console.log(`# (also written to ${sandboxEnvFile(dataDir)}; queue a message with: npm run sandbox:send)`);
const stop = () => void sandbox.close().then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
