import t from 'tap';
import { LoginDeadline } from '../../src/proxy/login-deadline.js';

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('no whole message from the server: the first answer is missing', async (t) => {
  const stalls: boolean[] = [];
  const deadline = new LoginDeadline(50, (first) => stalls.push(first));
  deadline.serverOwes();
  await wait(300);
  t.same(stalls, [true]);
});

t.test("the client's turn stops the clock; its answer starts it again", async (t) => {
  const stalls: boolean[] = [];
  const deadline = new LoginDeadline(50, (first) => stalls.push(first));
  deadline.serverOwes();
  deadline.serverMessage(true, false); // e.g. AuthenticationSASL: the client must answer
  await wait(150);
  t.same(stalls, [], 'a slow client is not the server stalling');
  deadline.serverOwes(); // the client answered
  await wait(300);
  t.same(stalls, [false], 'the server stopped answering after its first message');
});

t.test('each message the server owes gets the whole timeout; ReadyForQuery ends the clock', async (t) => {
  const stalls: boolean[] = [];
  // Generous against a loaded machine: 4 × 50 ms of messages, each well within 400 ms.
  const deadline = new LoginDeadline(400, (first) => stalls.push(first));
  deadline.serverOwes();
  for (let i = 0; i < 4; i++) {
    await wait(50);
    deadline.serverMessage(false, false); // AuthenticationOk, ParameterStatus, BackendKeyData …
  }
  deadline.serverMessage(false, true);
  await wait(600);
  t.same(stalls, []);
});
