/**
 * Cancel keys and backends: in transaction pooling several clients may
 * have been given the same backend pid (with different keys), and a
 * session's backend changes from one transaction to the next.
 */
import t from 'tap';
import { BackendKeyRegistry, type BackendOwner } from '../../src/proxy/backend-keys.js';

function owner(keyPid: number, key: number, backendPid = keyPid): BackendOwner & { backendPid: number } {
  return { keyPid, backendPid, backendKey: Buffer.from([0, 0, 0, key]) };
}

t.test('two clients given the same pid: each cancel key finds its own session', async (t) => {
  const keys = new BackendKeyRegistry();
  const a = owner(100, 1);
  const b = owner(100, 2);
  keys.register(a);
  keys.register(b);
  t.equal(keys.match(100, Buffer.from([0, 0, 0, 1])), a);
  t.equal(keys.match(100, Buffer.from([0, 0, 0, 2])), b);
  t.equal(keys.match(100, Buffer.from([0, 0, 0, 3])), undefined, 'a wrong key matches nobody');
  t.equal(keys.match(100, Buffer.from([0, 0, 1])), undefined, 'nor a key of another length');
  keys.unregister(a);
  t.equal(keys.match(100, Buffer.from([0, 0, 0, 1])), undefined);
  t.equal(keys.match(100, Buffer.from([0, 0, 0, 2])), b, 'the other stays');
  t.equal(keys.size, 1);
});

t.test('the session on a backend follows the moves between backends', async (t) => {
  const keys = new BackendKeyRegistry();
  const a = owner(100, 1);
  keys.register(a);
  t.equal(keys.get(100), a);
  keys.onServer(a, 100, 0);
  t.equal(keys.get(100), undefined, 'between transactions it is on no backend');
  const b = owner(200, 2);
  keys.register(b);
  keys.onServer(b, 200, 0);
  keys.onServer(a, 0, 200);
  a.backendPid = 200;
  t.equal(keys.get(200), a, 'now on the backend B logged in on');
  keys.onServer(b, 0, 100);
  t.equal(keys.get(100), b);
  keys.unregister(a);
  t.equal(keys.get(200), undefined);
  t.equal(keys.get(100), b, "unregistering A leaves B's backend alone");
});
