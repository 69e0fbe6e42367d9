/**
 * LoginGate: authentication answers pass, everything from the first other
 * message on is held until the session is ready — wherever the chunks are
 * split — and held messages go to the server only when it waits for an
 * answer they cannot be.
 */
import t from 'tap';
import { LoginGate } from '../../src/proxy/login-gate.js';
import { serialize } from '../helpers/messages.js';

const scramFinal = serialize.sendSCRAMClientFinalMessage('c=biws,r=nonce,p=proof');
const password = serialize.password('md5' + 'a'.repeat(32));
const query = serialize.query("INSERT INTO t VALUES ('x')");
const terminate = serialize.end();

/** Feeds `bytes` in the given chunks; returns what passed and what is held. */
function feed(gate: LoginGate, bytes: Buffer, cuts: number[]): { passed: Buffer; held: Buffer } {
  const passed: Buffer[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    // A reused read buffer: the gate must copy what it keeps.
    const chunk = Buffer.from(bytes.subarray(from, cut));
    passed.push(Buffer.from(gate.push(chunk)));
    chunk.fill(0xee);
    from = cut;
  }
  return { passed: Buffer.concat(passed), held: gate.take() };
}

t.test('authentication answers pass, the messages behind them are held: split at every offset', async (t) => {
  const answers = Buffer.concat([password, scramFinal]);
  const behind = Buffer.concat([query, terminate]);
  const stream = Buffer.concat([answers, behind]);
  for (let cut = 0; cut <= stream.length; cut++) {
    const gate = new LoginGate();
    const { passed, held } = feed(gate, stream, [cut]);
    t.same(passed, answers, `cut at ${cut}: the answers passed`);
    t.same(held, behind, `cut at ${cut}: the rest was held`);
  }
  for (let a = 1; a < stream.length; a++) {
    for (let b = a; b < stream.length; b++) {
      const gate = new LoginGate();
      const { passed, held } = feed(gate, stream, [a, b]);
      if (!passed.equals(answers) || !held.equals(behind)) t.fail(`cuts at ${a}, ${b}`);
    }
  }
});

t.test('messages behind a StartupMessage under trust are all held', async (t) => {
  const gate = new LoginGate();
  const { passed, held } = feed(gate, Buffer.concat([query, terminate]), [3]);
  t.same(passed, Buffer.alloc(0));
  t.same(held, Buffer.concat([query, terminate]));
  t.notOk(gate.holding, 'taken');
});

t.test('holding is reported until the held bytes are taken', async (t) => {
  const gate = new LoginGate();
  gate.push(query);
  t.ok(gate.holding);
  t.same(gate.push(password), Buffer.alloc(0), 'an answer behind a held message is held too: order is kept');
  t.same(gate.take(), Buffer.concat([query, password]));
});

t.test('while the server waits for an answer, a message that is not one goes straight on', async (t) => {
  const gate = new LoginGate();
  t.same(gate.serverAsked(), Buffer.alloc(0));
  t.same(gate.push(query), query, 'the server will refuse it');
  t.notOk(gate.holding);
  t.same(gate.push(terminate), terminate, 'the rest of the login passes as it comes');
});

t.test('held messages go to the server when it asks for an answer no message gave', async (t) => {
  const gate = new LoginGate();
  t.same(gate.push(Buffer.concat([password, query])), password);
  gate.serverAsked(); // answered by the password that passed
  t.ok(gate.holding, 'the password answered that request: the query stays held');
  t.same(gate.serverAsked(), query, 'a second request finds the query where its answer should be');
  t.notOk(gate.holding);
});

t.test('an answer sent ahead of its request (a cleartext password) still counts', async (t) => {
  const gate = new LoginGate();
  t.same(gate.push(Buffer.concat([password, query])), password);
  t.same(gate.serverAsked(), Buffer.alloc(0), 'the early password is the answer: nothing is released');
  t.same(gate.take(), query);
});
