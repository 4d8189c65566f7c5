/**
 * `npm run sandbox:send [-- --count N --to a@x.example]`: queues messages in the sandbox
 * org that a running `npm start` (or `npm run sandbox`) serves, as a Salesforce user
 * clicking Send would: a `Secure_EmailMessage__c` created with `Status__c = Queued`.
 * Reads the sandbox's address and credentials from `$DATA_DIR/sandbox.env`.
 */
import { parseArgs } from 'node:util';
import { connectAsUser } from './user.js';
import { readSandboxEnv, sandboxEnvFile } from './index.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '1' },
    to: { type: 'string', default: 'open.patient@example.org' },
    from: { type: 'string', default: 'care-team@clinic.example' },
  },
});
const dataDir = process.env.DATA_DIR ?? './data';
let env: Record<string, string>;
try {
  env = readSandboxEnv(dataDir);
} catch {
  console.error(`No sandbox found (${sandboxEnvFile(dataDir)}): start one with "npm start" or "npm run sandbox" first.`);
  process.exit(1);
}
const conn = await connectAsUser({
  loginUrl: env.SF_LOGIN_URL!, version: env.SF_API_VERSION!, clientId: env.SF_CLIENT_ID!, clientSecret: env.SF_CLIENT_SECRET!,
});
const count = Math.max(1, Number(values.count));
const records = Array.from({ length: count }, (_, i) => ({
  Status__c: 'Queued', To_Address__c: values.to, From_Address__c: values.from, From_Name__c: 'Sandbox Clinic',
  Subject__c: `Your appointment reminder ${i + 1}`, Text_Body__c: 'See you on Monday at 9:00.',
  Html_Body__c: '<p>See you on <b>Monday at 9:00</b>.</p>',
}));
const results = await conn.sobject('Secure_EmailMessage__c').create(records, { allOrNone: true, allowRecursive: true });
const ids = results.map((r) => (r.success ? r.id : `error: ${JSON.stringify(r.errors)}`));
console.log(`Queued ${ids.length} message(s): ${ids.slice(0, 5).join(', ')}${ids.length > 5 ? ', …' : ''}`);
console.log(`Watch the worker's log for message.sent and receipt.merged with these ids.`);
