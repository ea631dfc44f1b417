// The real RxDB (memory storage, replicateRxCollection with HTTP handlers) against Outpost's RxDB endpoints.
//
//   OUTPOST_URL=http://127.0.0.1:8000 OUTPOST_KEY=... node rxdb_client.mjs
//
// Prints one JSON summary line on stdout; exits non-zero if any step fails.
import { createRxDatabase } from 'rxdb/plugins/core';
import { replicateRxCollection } from 'rxdb/plugins/replication';
import { getRxStorageMemory } from 'rxdb/plugins/storage-memory';

import { call, check, checkEqual, liveData, nativePush, run, serverDocuments, sleep, waitFor } from './lib.mjs';

const COLLECTION = 'todos';
const SCHEMA = {
  version: 0,
  primaryKey: 'id',
  type: 'object',
  properties: {
    id: { type: 'string', maxLength: 100 },
    title: { type: 'string' },
    done: { type: 'boolean' },
  },
  required: ['id', 'title'],
};

async function openDatabase(name) {
  const db = await createRxDatabase({ name, storage: getRxStorageMemory(), multiInstance: false });
  await db.addCollections({ [COLLECTION]: { schema: SCHEMA } });
  return db;
}

/** replicateRxCollection with the handlers from docs/compat.md; every error and conflict is recorded. */
function replicate(collection, { device, live }) {
  const path = `/api/v1/compat/rxdb/${COLLECTION}`;
  const record = { errors: [], conflicts: [], pulls: 0, pushes: 0, pushedRows: 0, conflictRows: 0 };
  const state = replicateRxCollection({
    collection,
    replicationIdentifier: `outpost-${COLLECTION}`,
    live,
    retryTime: 500,
    pull: {
      batchSize: 2, // small pages: the checkpoint is exercised, not just one answer
      handler: async (checkpoint, batchSize) => {
        record.pulls += 1;
        return call('POST', `${path}/pull`, { body: { checkpoint, batchSize }, device });
      },
    },
    push: {
      batchSize: 50,
      handler: async (rows) => {
        record.pushes += 1;
        record.pushedRows += rows.length;
        const conflicts = await call('POST', `${path}/push`, { body: rows, device });
        record.conflictRows += conflicts.length;
        return conflicts;
      },
    },
  });
  state.error$.subscribe((error) => record.errors.push(String(error && error.message ? error.message : error)));
  state.conflict$.subscribe((conflict) => record.conflicts.push(conflict));
  return { state, record };
}

async function localDocuments(collection) {
  const docs = await collection.find().exec();
  return Object.fromEntries(
    docs.map((d) => {
      const { id, ...data } = d.toJSON();
      return [id, data];
    }),
  );
}

function noErrors(record, where) {
  checkEqual(record.errors, [], `no replication errors (${where})`);
}

await run('rxdb', async (steps) => {
  const db = await openDatabase('device-a');
  const todos = db[COLLECTION];

  // 1. Documents written offline reach the server on the first replication.
  steps.push('local inserts are pushed');
  await todos.bulkInsert([
    { id: 't1', title: 'Milk', done: false },
    { id: 't2', title: 'Eggs', done: false },
    { id: 't3', title: 'Bread', done: true },
  ]);
  const { state, record } = replicate(todos, { device: 'e2e-rxdb-a', live: true });
  await state.awaitInitialReplication();
  await state.awaitInSync();
  noErrors(record, 'initial replication');
  let server = await serverDocuments(COLLECTION);
  checkEqual(
    liveData(server),
    { t1: { title: 'Milk', done: false }, t2: { title: 'Eggs', done: false }, t3: { title: 'Bread', done: true } },
    'the server stores the RxDB documents without id, _rev, _meta, _attachments',
  );
  check(
    Object.values(server).every((d) => d.version === 1),
    'each pushed document is at version 1',
  );
  const afterInitial = { pulls: record.pulls, pushes: record.pushes };

  // 2. A document written by another (native) device arrives after reSync().
  steps.push('server-side create is pulled after reSync');
  await nativePush([{ collection: COLLECTION, id: 'n1', op: 'put', data: { title: 'From native', done: false } }]);
  state.reSync();
  await waitFor('n1 to arrive', async () => (await todos.findOne('n1').exec()) !== null);
  await state.awaitInSync();
  checkEqual((await todos.findOne('n1').exec()).toJSON(), { id: 'n1', title: 'From native', done: false }, 'n1 locally');

  // 3. Deletes, both ways: a local remove becomes a server tombstone, a server delete removes the local document.
  steps.push('local delete reaches the server');
  await (await todos.findOne('t3').exec()).remove();
  await state.awaitInSync();
  await waitFor('the t3 tombstone on the server', async () => (await serverDocuments(COLLECTION)).t3?.deleted === true);
  server = await serverDocuments(COLLECTION);
  checkEqual(server.t3, { version: 2, deleted: true, data: { title: 'Bread', done: true } }, 't3 tombstone');

  steps.push('server-side delete is pulled after reSync');
  await nativePush([{ collection: COLLECTION, id: 'n1', op: 'delete', base_version: server.n1.version }]);
  state.reSync();
  await waitFor('n1 to be deleted locally', async () => (await todos.findOne('n1').exec()) === null);
  await state.awaitInSync();

  // 4. A conflicting update: the server changed t2 while this client changed it too, without pulling in between.
  //    The push answers the server's document; RxDB's default conflict handler keeps it (master wins).
  steps.push('conflicting update resolves to the server state');
  server = await serverDocuments(COLLECTION);
  await nativePush([
    {
      collection: COLLECTION,
      id: 't2',
      op: 'put',
      base_version: server.t2.version,
      data: { title: 'Eggs (server)', done: true },
    },
  ]);
  const conflictsBefore = record.conflictRows;
  await (await todos.findOne('t2').exec()).incrementalPatch({ title: 'Eggs (client)' });
  await waitFor('the conflict to be answered', async () => record.conflictRows > conflictsBefore);
  await state.awaitInSync();
  await waitFor(
    't2 to take the server state locally',
    async () => (await todos.findOne('t2').exec())?.title === 'Eggs (server)',
  );
  checkEqual((await todos.findOne('t2').exec()).toJSON(), { id: 't2', title: 'Eggs (server)', done: true }, 't2');
  server = await serverDocuments(COLLECTION);
  checkEqual(server.t2, { version: 2, deleted: false, data: { title: 'Eggs (server)', done: true } }, 'server t2');
  // Pull once more: nothing changes, and nothing more is pushed.
  state.reSync();
  await sleep(200);
  await state.awaitInSync();
  checkEqual((await serverDocuments(COLLECTION)).t2.version, 2, 't2 has no new version after the conflict');
  noErrors(record, 'live replication');

  // 5. Both sides agree; a second device replicating from scratch (live: false) gets the same documents.
  steps.push('final states agree');
  const local = await localDocuments(todos);
  server = await serverDocuments(COLLECTION);
  checkEqual(local, liveData(server), 'device A and the server hold the same live documents');
  await state.cancel();

  steps.push('a new device replicates from scratch');
  const dbB = await openDatabase('device-b');
  const fresh = replicate(dbB[COLLECTION], { device: 'e2e-rxdb-b', live: false });
  await fresh.state.awaitInitialReplication();
  await fresh.state.awaitInSync();
  noErrors(fresh.record, 'device B');
  const localB = await localDocuments(dbB[COLLECTION]);
  checkEqual(localB, local, 'device B and device A hold the same documents');
  const directPull = await call('POST', `/api/v1/compat/rxdb/${COLLECTION}/pull`, { body: { batchSize: 1000 } });

  await dbB.close();
  await db.close();
  return {
    local,
    server: Object.fromEntries(Object.entries(server).map(([id, d]) => [id, d])),
    device_b: localB,
    replication: {
      initial: afterInitial,
      pulls: record.pulls,
      pushes: record.pushes,
      pushed_rows: record.pushedRows,
      conflict_rows: record.conflictRows,
      resolved_conflicts: record.conflicts.length,
      device_b_pulls: fresh.record.pulls,
    },
    final_checkpoint: directPull.checkpoint,
  };
});
