/**
 * The process: configuration → (sandbox, when nothing is configured) → worker → signals.
 *
 * - A bad setting ends the process at once with a message naming the variable, exit 78
 *   (EX_CONFIG): the process manager should not restart into the same mistake.
 * - SIGTERM: stop taking work, finish or hand back what is in flight, exit 0 within 25 s.
 * - Anything unexpected is logged and exits 1, so the process manager restarts a clean
 *   worker; a half-alive process is worse than a restart (Salesforce is the truth).
 */
import tls from 'node:tls';
import { loadConfig, wantsSandbox, ConfigError, EX_CONFIG, LOG_LEVELS, type Env, type LogLevel } from './config.js';
import { createLogger, logProcessWarnings, safeError, type Log } from './log.js';
import { startWorker, isLoginRefused, type Worker } from './worker.js';
import { doctor } from './doctor.js';

// Every client (jsforce, faye, node-fetch, AWS SDK) inherits this floor, whatever
// NODE_OPTIONS says: TLS 1.2 or newer, or no connection.
tls.DEFAULT_MIN_VERSION = 'TLSv1.2';

const SHUTDOWN_BUDGET_MS = 25_000;

async function main(): Promise<void> {
  let env: Env = process.env;
  // A bad LOG_LEVEL must reach loadConfig (exit 78 naming it), not crash pino first.
  const log = createLogger((LOG_LEVELS as readonly string[]).includes(env.LOG_LEVEL ?? '') ? env.LOG_LEVEL as LogLevel : 'info');
  logProcessWarnings(log);
  const sandboxMode = wantsSandbox(env);
  let closeSandbox: (() => Promise<void>) | undefined;
  let sandboxDemo: (() => string) | undefined;
  if (sandboxMode) {
    log.info({
      event: 'sandbox.starting',
      msg: 'Nothing configured: running against the built-in sandbox (local Salesforce org, Paubox and KMS on loopback). ' +
        'Queue a message with: npm run sandbox:send',
    });
    const { startLocalSandbox } = await import('./sandbox/index.js');
    const sandbox = await startLocalSandbox(env.DATA_DIR ?? './data');
    closeSandbox = () => sandbox.close();
    sandboxDemo = () => sandbox.org.insert('Secure_EmailMessage__c', {
      Status__c: 'Queued', To_Address__c: 'open.patient@example.org', From_Address__c: 'care-team@clinic.example',
      From_Name__c: 'Sandbox Clinic', Subject__c: 'Welcome to the sandbox', Text_Body__c: 'This message went through the whole pipeline.',
    });
    env = { ...env, ...sandbox.env };
    log.info({ event: 'sandbox.started', org: sandbox.org.url, paubox: sandbox.paubox.url, kms: sandbox.kms.url });
  }

  const cfg = configOrExit(env, sandboxMode, log);
  if (process.argv.includes('--check')) {
    const ok = await doctor(cfg, log);
    await closeSandbox?.();
    return exit(log, ok ? 0 : 1);
  }

  // Signals are heard from here on: a dyno restarted while the worker is still starting
  // (recovery, first login) must stop cleanly too, not die mid-write.
  const stopping = onStopSignal(log);
  let worker: Worker;
  try {
    worker = await startWorker(cfg, log);
  } catch (err) {
    if (isLoginRefused(err)) {
      log.fatal({ event: 'config.invalid', variable: 'SF_CLIENT_ID', err, msg: 'Salesforce refused the login: check SF_CLIENT_ID, SF_USERNAME and the key or secret' });
      return exit(log, EX_CONFIG);
    }
    throw err;
  }

  if (sandboxDemo) {
    // A newcomer sees the whole flow at once: Queued → Sent → Delivered → opened.
    const id = sandboxDemo();
    log.info({ event: 'sandbox.demo_queued', recordId: id, msg: 'Queued one demo message in the sandbox org; watch for message.sent and receipt.merged' });
  }

  const signal = await stopping;
  try {
    await worker.stop();
    await closeSandbox?.();
  } catch (err) {
    log.error({ event: 'worker.stop_failed', signal, err });
    return exit(log, 1);
  }
  return exit(log, 0);
}

/**
 * Resolves on the first SIGTERM or SIGINT, and from then on holds the process to the
 * contract's budget: whatever is not finished or handed back within 25 s is abandoned
 * with exit 1 (the claims go stale and another worker takes them over).
 */
function onStopSignal(log: Log): Promise<string> {
  return new Promise((resolve) => {
    const stop = (signal: string) => {
      process.removeAllListeners('SIGTERM').removeAllListeners('SIGINT');
      process.on('SIGTERM', () => undefined).on('SIGINT', () => undefined); // one stop at a time
      log.info({ event: 'worker.stopping', signal });
      setTimeout(() => {
        log.error({ event: 'worker.stop_timeout', budgetMs: SHUTDOWN_BUDGET_MS });
        exit(log, 1);
      }, SHUTDOWN_BUDGET_MS - 1000).unref();
      resolve(signal);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

function configOrExit(env: Env, sandbox: boolean, log: Log) {
  try {
    return loadConfig(env, { sandbox });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    log.fatal({ event: 'config.invalid', variable: err.variable, msg: err.message });
    return exit(log, EX_CONFIG);
  }
}

function exit(log: Log, code: number): never {
  log.flush?.();
  // pino writes asynchronously: give the last line a moment to reach stdout.
  setTimeout(() => process.exit(code), 50).unref();
  process.exitCode = code;
  throw new ExitSignal();
}

class ExitSignal extends Error {}

process.on('uncaughtException', (err) => {
  if (err instanceof ExitSignal) return;
  process.stdout.write(JSON.stringify({ level: 'fatal', event: 'worker.crashed', err: safeError(err) }) + '\n');
  process.exit(1);
});
process.on('unhandledRejection', (err) => {
  if (err instanceof ExitSignal) return;
  process.stdout.write(JSON.stringify({ level: 'fatal', event: 'worker.crashed', err: safeError(err) }) + '\n');
  process.exit(1);
});

main().catch((err) => {
  if (err instanceof ExitSignal) return;
  process.stdout.write(JSON.stringify({ level: 'fatal', event: 'worker.crashed', err: safeError(err) }) + '\n');
  process.exit(1);
});
