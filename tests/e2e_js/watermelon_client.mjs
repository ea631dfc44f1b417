// The real WatermelonDB (LokiJS adapter, in memory, no decorators) with synchronize() against Outpost.
//
//   OUTPOST_URL=http://127.0.0.1:8000 OUTPOST_KEY=... node watermelon_client.mjs
//
// Prints one JSON summary line on stdout; exits non-zero if any step fails.
import { createRequire } from 'node:module';

import { HttpError, call, check, checkEqual, liveData, nativePush, run, serverDocuments } from './lib.mjs';

const require = createRequire(import.meta.url);
const { Database, Model, appSchema, tableSchema } = require('@nozbe/watermelondb');
const LokiJSAdapter = require('@nozbe/watermelondb/adapters/lokijs').default;
const { synchronize } = require('@nozbe/watermelondb/sync');
const logger = require('@nozbe/watermelondb/utils/common/logger').default;

// Watermelon reports protocol problems it recovers from ("This could be a serious bug") through its
// logger, not by failing: record them, per device, so the test can check that there are none.
const diagnostics = [];
let loggingDevice = null;
for (const level of ['error', 'warn']) {
  const original = logger[level].bind(logger);
  logger[level] = (...messages) => {
    const text = messages.map((m) => (m instanceof Error ? m.message : String(m))).join(' ');
    diagnostics.push({ device: loggingDevice, level, message: text });
    original(...messages);
  };
}

// The synchronize() flags docs/compat.md prescribes (with ?created_as_updated=true on pulls).
const DOCUMENTED_FLAGS = { sendCreatedAsUpdated: true };

const TABLE = 'todos';
const SYNC_URL = '/api/v1/compat/watermelondb/sync';

const schema = appSchema({
  version: 1,
  tables: [
    tableSchema({
      name: TABLE,
      columns: [
        { name: 'title', type: 'string' },
        { name: 'done', type: 'boolean' },
      ],
    }),
  ],
});

// A model without decorators: columns are read from and written to the raw record.
class Todo extends Model {
  static table = TABLE;

  get title() {
    return this._getRaw('title');
  }

  get done() {
    return this._getRaw('done');
  }
}

function openDatabase(name) {
  const adapter = new LokiJSAdapter({
    schema,
    dbName: name,
    useWebWorker: false,
    // Node has no IndexedDB: the adapter keeps the database in memory either way.
    useIncrementalIndexedDB: true,
    onSetUpError: (error) => {
      throw error;
    },
  });
  return new Database({ adapter, modelClasses: [Todo] });
}

/** A client: one database, synchronize() with the handlers from docs/compat.md, and what each sync did. */
function client(name, device, flags = DOCUMENTED_FLAGS) {
  const database = openDatabase(name);
  const history = [];
  let beforePush = null; // a hook run between this sync's pull and its push (another device writing)

  async function sync() {
    const entry = { pulls: [], pushes: [], log: {} };
    history.push(entry);
    loggingDevice = device;
    try {
      await synchronize({
        ...flags,
        database,
        log: entry.log,
        pullChanges: async ({ lastPulledAt, schemaVersion, migration }) => {
          const query =
            `last_pulled_at=${lastPulledAt}&schema_version=${schemaVersion}` +
            `&migration=${encodeURIComponent(JSON.stringify(migration))}` +
            (flags.sendCreatedAsUpdated ? '&created_as_updated=true' : '');
          const { changes, timestamp } = await call('GET', `${SYNC_URL}?${query}`, { device });
          entry.pulls.push({ lastPulledAt, timestamp, tables: Object.keys(changes) });
          return { changes, timestamp };
        },
        pushChanges: async ({ changes, lastPulledAt }) => {
          if (beforePush) {
            const hook = beforePush;
            beforePush = null;
            await hook();
          }
          const push = { lastPulledAt, tables: Object.keys(changes), status: null };
          entry.pushes.push(push);
          try {
            await call('POST', SYNC_URL, { body: { changes, lastPulledAt }, device });
            push.status = 200;
          } catch (error) {
            push.status = error instanceof HttpError ? error.status : 'error';
            push.body = error instanceof HttpError ? error.body : String(error);
            throw error;
          }
        },
      });
      entry.ok = true;
    } catch (error) {
      entry.ok = false;
      entry.error = error;
    } finally {
      loggingDevice = null;
    }
    return entry;
  }

  async function syncOk(what) {
    const entry = await sync();
    if (!entry.ok) throw new Error(`synchronize() failed (${what}): ${entry.error && entry.error.message}`);
    return entry;
  }

  async function records() {
    const all = await database.get(TABLE).query().fetch();
    return Object.fromEntries(all.map((r) => [r.id, { title: r.title, done: r.done }]));
  }

  async function raw(id) {
    const found = await database.get(TABLE).query().fetch();
    const record = found.find((r) => r.id === id);
    return record ? { ...record._raw } : null;
  }

  return {
    database,
    history,
    sync,
    syncOk,
    records,
    raw,
    setBeforePush(hook) {
      beforePush = hook;
    },
  };
}

async function create(database, rows) {
  const collection = database.get(TABLE);
  await database.write(async () => {
    await database.batch(
      ...rows.map((row) =>
        collection.prepareCreate((record) => {
          record._raw.id = row.id;
          record._setRaw('title', row.title);
          record._setRaw('done', row.done);
        }),
      ),
    );
  });
}

async function update(database, id, columns) {
  const record = await database.get(TABLE).find(id);
  await database.write(() =>
    record.update((r) => {
      for (const [column, value] of Object.entries(columns)) r._setRaw(column, value);
    }),
  );
}

async function markAsDeleted(database, id) {
  const record = await database.get(TABLE).find(id);
  await database.write(() => record.markAsDeleted());
}

await run('watermelondb', async (steps) => {
  const a = client('device-a', 'e2e-watermelon-a');

  // 1. Records created offline reach the server on the first synchronize().
  steps.push('local creates are pushed');
  await create(a.database, [
    { id: 'w1', title: 'Milk', done: false },
    { id: 'w2', title: 'Eggs', done: false },
    { id: 'w3', title: 'Bread', done: true },
  ]);
  const first = await a.syncOk('first sync');
  checkEqual(first.pulls, [{ lastPulledAt: null, timestamp: 1, tables: [] }], 'first pull of an empty server');
  checkEqual(first.pushes, [{ lastPulledAt: 1, tables: [TABLE], status: 200 }], 'first push');
  let server = await serverDocuments(TABLE);
  checkEqual(
    liveData(server),
    { w1: { title: 'Milk', done: false }, w2: { title: 'Eggs', done: false }, w3: { title: 'Bread', done: true } },
    'the server stores the records without id, _status, _changed',
  );
  checkEqual((await a.raw('w1'))._status, 'synced', 'w1 is marked synced after the push');

  // 2. A record written by a native device arrives on the next synchronize().
  steps.push('server-side create is pulled');
  await nativePush([{ collection: TABLE, id: 'n1', op: 'put', data: { title: 'From native', done: false } }]);
  const second = await a.syncOk('pull n1');
  checkEqual(second.pushes, [], 'nothing to push');
  checkEqual((await a.records()).n1, { title: 'From native', done: false }, 'n1 locally');

  // 3. Deletes, both ways.
  steps.push('local delete reaches the server');
  await markAsDeleted(a.database, 'w3');
  await a.syncOk('push the delete of w3');
  server = await serverDocuments(TABLE);
  checkEqual(server.w3, { version: 2, deleted: true, data: { title: 'Bread', done: true } }, 'w3 tombstone');
  checkEqual(await a.raw('w3'), null, 'w3 is destroyed locally once the delete is pushed');

  steps.push('server-side delete is pulled');
  await nativePush([{ collection: TABLE, id: 'n1', op: 'delete', base_version: server.n1.version }]);
  await a.syncOk('pull the delete of n1');
  checkEqual(await a.raw('n1'), null, 'n1 is gone locally');

  // 4. A conflict: another device changes w2 after this client's pull and before its push.
  //    The push is refused with 409 and synchronize() fails; the next synchronize() pulls, merges
  //    (locally changed columns win) and pushes again.
  steps.push('a push conflicting with a newer server change is refused');
  await update(a.database, 'w2', { title: 'Eggs (client)' });
  const w2Version = (await serverDocuments(TABLE)).w2.version;
  a.setBeforePush(() =>
    nativePush([
      { collection: TABLE, id: 'w2', op: 'put', base_version: w2Version, data: { title: 'Eggs (server)', done: true } },
    ]),
  );
  const refused = await a.sync();
  check(!refused.ok, 'synchronize() fails when the push is refused');
  checkEqual(refused.pushes.length, 1, 'one push attempted');
  const refusedPush = refused.pushes[0];
  checkEqual(refusedPush.status, 409, 'the conflicting push is answered 409');
  checkEqual(refusedPush.body?.error?.code, 'conflict', 'error code');
  checkEqual(refusedPush.body?.error?.details?.conflicts, [{ table: TABLE, id: 'w2' }], 'the conflict names w2');
  server = await serverDocuments(TABLE);
  checkEqual(server.w2, { version: w2Version + 1, deleted: false, data: { title: 'Eggs (server)', done: true } }, 'w2');
  const pending = await a.raw('w2');
  checkEqual([pending._status, pending._changed, pending.title], ['updated', 'title', 'Eggs (client)'], 'w2 pending');

  steps.push('the next synchronize() merges and pushes');
  const retry = await a.syncOk('sync after the conflict');
  checkEqual(
    retry.pushes.map((p) => p.status),
    [200],
    'the retried push is accepted',
  );
  check(retry.pulls[0].tables.includes(TABLE), 'the retry pulled the server change');
  checkEqual((await a.records()).w2, { title: 'Eggs (client)', done: true }, 'merged w2 locally');
  server = await serverDocuments(TABLE);
  checkEqual(server.w2, { version: w2Version + 2, deleted: false, data: { title: 'Eggs (client)', done: true } }, 'w2');

  // 5. Both sides agree; syncing again changes nothing; a new device gets the same records.
  steps.push('final states agree');
  const settle = await a.syncOk('settle');
  checkEqual(settle.pushes, [], 'nothing left to push');
  const local = await a.records();
  checkEqual(local, liveData(server), 'device A and the server hold the same live records');
  for (const id of Object.keys(local)) {
    const record = await a.raw(id);
    checkEqual([record._status, record._changed], ['synced', ''], `${id} is synced`);
  }

  steps.push('a new device syncs from scratch');
  const b = client('device-b', 'e2e-watermelon-b');
  const fresh = await b.syncOk('device B first sync');
  checkEqual(fresh.pushes, [], 'device B has nothing to push');
  const localB = await b.records();
  checkEqual(localB, local, 'device B and device A hold the same records');

  // The same from-scratch sync without the flag (the protocol's plain contract: `created` on a first
  // sync): it converges too; its diagnostics are reported apart.
  steps.push('a new device syncs from scratch without sendCreatedAsUpdated');
  const c = client('device-c', 'e2e-watermelon-c', {});
  await c.syncOk('device C first sync');
  checkEqual(await c.records(), local, 'device C and device A hold the same records');

  return {
    local,
    server,
    device_b: localB,
    conflict: { status: refusedPush.status, body: refusedPush.body },
    syncs: a.history.map((entry) => ({
      ok: entry.ok,
      pulls: entry.pulls,
      pushes: entry.pushes.map(({ lastPulledAt, status }) => ({ lastPulledAt, status })),
      resolved_conflicts: (entry.log.resolvedConflicts || []).length,
    })),
    final_timestamp: a.history.at(-1).pulls.at(-1).timestamp,
    device_b_timestamp: fresh.pulls[0].timestamp,
    diagnostics,
  };
});
