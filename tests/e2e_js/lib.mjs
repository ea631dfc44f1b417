// Shared helpers for the client scripts: configuration, HTTP calls to Outpost, checks, the JSON summary.
//
// Library logging goes to stderr so that stdout carries exactly one line: the JSON summary.
import { isDeepStrictEqual } from 'node:util';

for (const level of ['log', 'info', 'warn', 'debug']) {
  console[level] = (...args) => console.error(...args);
}

export const BASE_URL = (process.env.OUTPOST_URL || '').replace(/\/+$/, '');
export const API_KEY = process.env.OUTPOST_KEY || '';
if (!BASE_URL || !API_KEY) {
  console.error('OUTPOST_URL and OUTPOST_KEY must be set');
  process.exit(2);
}

/** An HTTP error with the status and parsed body, so the scenario can inspect what the server answered. */
export class HttpError extends Error {
  constructor(method, path, status, body) {
    super(`${method} ${path} -> ${status} ${typeof body === 'string' ? body : JSON.stringify(body)}`);
    this.status = status;
    this.body = body;
  }
}

export const requests = [];

/** One request with the API key; returns the parsed JSON body, throws HttpError on a non-2xx answer. */
export async function call(method, path, { body, device } = {}) {
  const headers = { Authorization: `Bearer ${API_KEY}`, Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (device) headers['X-Outpost-Device'] = device;
  const response = await fetch(`${BASE_URL}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // keep the raw text
  }
  requests.push({ method, path: path.split('?')[0], status: response.status });
  if (!response.ok) throw new HttpError(method, path, response.status, parsed);
  return parsed;
}

let mutationNumber = 0;

/** Write through the native protocol, as another (native) device would. Every mutation must be applied. */
export async function nativePush(mutations) {
  const body = {
    device_id: 'e2e-native',
    mutations: mutations.map((m) => ({ mutation_id: `e2e-${process.pid}-${++mutationNumber}`, ...m })),
  };
  const { results } = await call('POST', '/api/v1/sync/push', { body });
  for (const result of results) {
    check(result.status === 'applied', `native push not applied: ${JSON.stringify(result)}`);
  }
  return results;
}

/** The server's documents of a collection (tombstones included), by id: {id: {version, deleted, data}}. */
export async function serverDocuments(collection) {
  const documents = {};
  let after = null;
  for (;;) {
    const query = `include_deleted=true&limit=1000${after ? `&after=${encodeURIComponent(after)}` : ''}`;
    let page;
    try {
      page = await call('GET', `/api/v1/collections/${collection}/documents?${query}`);
    } catch (error) {
      if (error instanceof HttpError && error.status === 404) return documents; // no collection yet
      throw error;
    }
    for (const d of page.documents) documents[d.id] = { version: d.version, deleted: d.deleted, data: d.data };
    if (!page.next) return documents;
    after = page.next;
  }
}

/** Live server documents as {id: data}. */
export function liveData(documents) {
  return Object.fromEntries(
    Object.entries(documents)
      .filter(([, d]) => !d.deleted)
      .map(([id, d]) => [id, d.data]),
  );
}

export function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

export function checkEqual(actual, expected, what) {
  if (!isDeepStrictEqual(actual, expected)) {
    throw new Error(`check failed: ${what}\n  expected: ${JSON.stringify(expected)}\n  actual:   ${JSON.stringify(actual)}`);
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Poll an async condition until it holds (or fail after timeoutMs). */
export async function waitFor(what, condition, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Sort an object's keys recursively, so summaries are stable. */
export function sorted(value) {
  if (Array.isArray(value)) return value.map(sorted);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sorted(value[k])]));
  }
  return value;
}

/**
 * Run a scenario: print {"ok": true, ...summary} on stdout and exit 0, or {"ok": false, "error", "step"} and exit 1.
 * `steps` is filled by the scenario as it goes, so a failure names the last step reached.
 */
export async function run(name, scenario) {
  const steps = [];
  const timer = setTimeout(() => {
    finish(1, { ok: false, client: name, error: 'scenario timed out', steps });
  }, 100_000);
  try {
    const summary = await scenario(steps);
    clearTimeout(timer);
    finish(0, sorted({ ok: true, client: name, steps, requests: requests.length, ...summary }));
  } catch (error) {
    clearTimeout(timer);
    console.error(error);
    finish(1, {
      ok: false,
      client: name,
      step: steps[steps.length - 1] ?? null,
      steps,
      error: String(error && error.stack ? error.stack : error),
      status: error instanceof HttpError ? error.status : undefined,
      body: error instanceof HttpError ? error.body : undefined,
    });
  }
}

function finish(code, summary) {
  process.stdout.write(`${JSON.stringify(summary)}\n`, () => process.exit(code));
}
