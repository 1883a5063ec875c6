// ws_client.js - a WebSocket client built on the npm package `ws`, the peer
// that tests/test_interop.c runs against our server.
//
//   node ws_client.js --version
//   node ws_client.js URL [--protocols a,b] ACTION...
//
// Connects to URL, then does the actions in order and prints one line for
// each result; exits 0 when every check passed, 1 otherwise.
//   echo:TYPE:SIZE            send the test payload, expect it back byte for byte
//   frag:TYPE:SIZE:FRAG       the same, sent as frames of FRAG bytes (fin=false but the last)
//   fragping:TYPE:SIZE:FRAG   the same with a ping "mid" between the first two frames
//   recv:TYPE:SIZE            expect the test payload from the server
//   ping:PAYLOAD              ping, expect the pong with the same payload
//   send:TEXT                 send a text message
//   close:CODE:REASON         close with CODE REASON, wait for the close to finish
//   wait-close                wait until the server closes
//   drop                      drop the TCP connection without a close frame
// TYPE is text or binary. The test payload of SIZE bytes is, for binary, the
// 251 bytes (7i+3) mod 256 repeated; for text "aé€😀" (10 bytes of UTF-8)
// repeated, then 'x' up to SIZE. tests/test_interop.c makes the same.
// Lines: OPEN "<subprotocol>", ECHO|FRAG|RECV ... ok|bad, PONG "<payload>",
// CLOSE <code> "<reason>" (as the server sent it; 1006 when it sent none),
// ERROR "<message>", and DONE last.
'use strict';
const WebSocket = require('ws');

const out = (line) => process.stdout.write(line + '\n');
const q = (s) => JSON.stringify(s);

function payload(type, size) {
  const unit = Buffer.from(type === 'text' ? 'a\u00e9\u20ac\u{1F600}' : Array.from({ length: 251 }, (_, i) => (i * 7 + 3) & 255));
  const b = Buffer.alloc(size, 'x');
  const whole = type === 'text' ? size - (size % unit.length) : size;
  for (let i = 0; i < whole; i += unit.length) unit.copy(b, i, 0, Math.min(unit.length, whole - i));
  return b;
}

const argv = process.argv.slice(2);
if (argv[0] === '--version') {
  out(`VERSION node=${process.version} ws=${require('ws/package.json').version}`);
  process.exit(0);
}
const url = argv.shift();
let protocols = [];
if (argv[0] === '--protocols') { argv.shift(); protocols = argv.shift().split(',').map((s) => s.trim()); }
const actions = argv;

let failed = false;
const bad = (line) => { failed = true; out(line); };
setTimeout(() => { bad('ERROR "timed out after 120 s"'); process.exit(1); }, 120000).unref();

const ws = new WebSocket(url, protocols, { maxPayload: 64 * 1024 * 1024 });
const inbox = [];
let wake = null;
let closed = null;
const poke = () => { if (wake) { const w = wake; wake = null; w(); } };
ws.on('message', (data, isBinary) => { inbox.push({ data, isBinary }); poke(); });
ws.on('pong', (data) => { inbox.push({ pong: data }); poke(); });
ws.on('close', (code, reason) => {
  closed = { code, reason: reason.toString('utf8') };
  out(`CLOSE ${code} ${q(closed.reason)}`);
  poke();
});
ws.on('error', (e) => { bad(`ERROR ${q(e.message)}`); poke(); });

// The next inbound event that `pick` accepts (messages and pongs are kept in
// order; others wait for later actions), or null once the connection closed.
function next(pick) {
  return new Promise((resolve) => {
    const look = () => {
      const i = inbox.findIndex(pick);
      if (i >= 0) resolve(inbox.splice(i, 1)[0]);
      else if (closed) resolve(null);
      else wake = look;
    };
    look();
  });
}
const isMsg = (e) => e.data !== undefined;

async function expectEcho(label, type, size) {
  const want = payload(type, size);
  const got = await next(isMsg);
  if (!got) return bad(`${label} bad: closed first`);
  if (got.isBinary !== (type === 'binary')) return bad(`${label} bad: type`);
  if (!got.data.equals(want)) return bad(`${label} bad: ${got.data.length} bytes differ`);
  out(`${label} ok`);
}

async function run() {
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('close', reject); });
  out(`OPEN ${q(ws.protocol)}`);
  for (const act of actions) {
    const [verb, ...rest] = act.split(':');
    if (verb === 'echo') {
      const [type, size] = [rest[0], Number(rest[1])];
      ws.send(payload(type, size), { binary: type === 'binary' });
      await expectEcho(`ECHO ${type} ${size}`, type, size);
    } else if (verb === 'frag' || verb === 'fragping') {
      const [type, size, frag] = [rest[0], Number(rest[1]), Number(rest[2])];
      const p = payload(type, size);
      for (let at = 0, first = true; first || at < size; at += frag, first = false) {
        ws.send(p.subarray(at, Math.min(size, at + frag)), { binary: type === 'binary', fin: at + frag >= size });
        if (first && verb === 'fragping') ws.ping('mid');
      }
      if (verb === 'fragping') {
        const pong = await next((e) => e.pong !== undefined);
        if (pong) out(`PONG ${q(pong.pong.toString('utf8'))}`);
        else bad('PONG bad: closed first');
      }
      await expectEcho(`FRAG ${type} ${size} ${frag}`, type, size);
    } else if (verb === 'recv') {
      await expectEcho(`RECV ${rest[0]} ${Number(rest[1])}`, rest[0], Number(rest[1]));
    } else if (verb === 'ping') {
      const data = rest.join(':');
      ws.ping(data);
      const pong = await next((e) => e.pong !== undefined);
      if (pong) out(`PONG ${q(pong.pong.toString('utf8'))}`);
      else bad('PONG bad: closed first');
    } else if (verb === 'send') {
      ws.send(rest.join(':'));
    } else if (verb === 'close') {
      ws.close(Number(rest[0]), rest.slice(1).join(':'));
      await next(() => false);
    } else if (verb === 'wait-close') {
      await next(() => false);
    } else if (verb === 'drop') {
      ws.terminate();
      await next(() => false);
    } else {
      bad(`ERROR ${q('unknown action ' + act)}`);
    }
  }
  if (!closed) { ws.close(1000); await next(() => false); }
}

run().then(
  () => { out('DONE'); process.exit(failed ? 1 : 0); },
  (e) => { bad(`ERROR ${q(String(e && e.message ? e.message : e))}`); out('DONE'); process.exit(1); },
);
