import http from 'node:http';
import https from 'node:https';
import net from 'node:net';

/**
 * Transport policy for every outside service (contract §4): HTTPS with TLS 1.2 or newer;
 * plain `http://` only to loopback (the sandbox and tests).
 */

/**
 * A bad service URL in the configuration. `name` is 'ConfigError' and `variable` names the
 * setting, so the config loader can report it and exit with EX_CONFIG (78).
 */
export class ServiceUrlError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly variable: string, reason: string) {
    super(`${variable} ${reason}`);
  }
}

/** localhost, 127.0.0.0/8 and ::1 (also as an IPv4-mapped address or in brackets). */
export function isLoopback(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (net.isIPv4(host)) return host.startsWith('127.');
  if (net.isIPv6(host)) {
    if (host === '::1' || /^(0{1,4}:){7}0{0,3}1$/.test(host) || host === '0:0:0:0:0:0:0:1') return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(host);
    return mapped !== null && mapped[1]!.startsWith('127.');
  }
  return false;
}

/** Parses a service URL, refusing malformed ones and `http://` to anything but loopback. */
export function checkServiceUrl(url: string, variable: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ServiceUrlError(variable, 'is not a valid URL');
  }
  if (parsed.protocol === 'https:') return parsed;
  if (parsed.protocol !== 'http:') throw new ServiceUrlError(variable, `must be an https:// URL (got ${parsed.protocol}//)`);
  if (!isLoopback(parsed.hostname)) {
    throw new ServiceUrlError(variable, 'must use https:// (plain http:// is allowed only for loopback hosts)');
  }
  return parsed;
}

export interface AgentOptions {
  maxSockets?: number;
  /** extra trusted CAs (tests, private endpoints); the system store otherwise */
  ca?: string | Buffer | Array<string | Buffer>;
  /**
   * Idle keep-alive sockets are closed after this. Kept below common server keep-alive
   * timeouts (5 s in Node): a request written to a socket the server just closed fails
   * with ECONNRESET, an outcome we must treat as unknown for a POST.
   */
  freeSocketTimeoutMs?: number;
}

const DEFAULT_MAX_SOCKETS = 16;
const DEFAULT_FREE_SOCKET_TIMEOUT_MS = 4_000;

/** Keep-alive HTTPS agent that refuses anything older than TLS 1.2. */
export function httpsAgent(opts: AgentOptions = {}): https.Agent {
  return new https.Agent({
    minVersion: 'TLSv1.2',
    keepAlive: true,
    maxSockets: opts.maxSockets ?? DEFAULT_MAX_SOCKETS,
    timeout: opts.freeSocketTimeoutMs ?? DEFAULT_FREE_SOCKET_TIMEOUT_MS,
    ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
  });
}

/** Keep-alive agent for plain http (loopback only: callers check the URL first). */
export function httpAgent(opts: AgentOptions = {}): http.Agent {
  return new http.Agent({
    keepAlive: true,
    maxSockets: opts.maxSockets ?? DEFAULT_MAX_SOCKETS,
    timeout: opts.freeSocketTimeoutMs ?? DEFAULT_FREE_SOCKET_TIMEOUT_MS,
  });
}

/** The agent a URL needs: plain keep-alive for loopback http, TLS ≥ 1.2 otherwise. */
export function agentFor(url: string | URL, opts: AgentOptions = {}): http.Agent | https.Agent {
  const parsed = typeof url === 'string' ? new URL(url) : url;
  if (parsed.protocol === 'http:') {
    if (!isLoopback(parsed.hostname)) throw new ServiceUrlError('URL', 'must use https:// for non-loopback hosts');
    return httpAgent(opts);
  }
  return httpsAgent(opts);
}
