// ws_server.js - a WebSocket server built on the npm package `ws`, the peer
// that tests/test_interop.c runs against our client.
//
//   node ws_server.js [--port N] [--subprotocols a,b] [--ping PAYLOAD]
//                     [--close-on K CODE REASON] [--drop-on K] [--fragment N]
//
// Binds 127.0.0.1 (port 0 unless --port) and prints the port as the first
// line of stdout. Every connection echoes each message back as it came (text
// or binary) and reports what happened, one line each:
//   OPEN "<subprotocol>"            the upgrade is done ("" when none)
//   MSG <text|binary> <len> <sha1> ["<text>"]   a message (the text itself when <= 64 bytes)
//   PONG "<payload>"                the answer to the --ping sent at open
//   CLOSE <code> "<reason>"         the connection ended (1005: close without code, 1006: no close)
// --subprotocols: the ones we accept, in our order of preference.
// --close-on K CODE REASON: the K-th message is not echoed; we close with CODE REASON.
// --drop-on K: the K-th message is not echoed; we drop the TCP connection (no close frame).
// --fragment N: echoes go out as frames of N bytes (fin=false but the last; a
//   text frame may end inside a character), with a ping "mid" after the first.
'use strict';
const crypto = require('crypto');
const { WebSocketServer } = require('ws');

const opt = { port: 0, subprotocols: [], ping: null, closeOn: 0, dropOn: 0, fragment: 0 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--port') opt.port = Number(argv[++i]);
  else if (a === '--subprotocols') opt.subprotocols = argv[++i].split(',').map((s) => s.trim()).filter(Boolean);
  else if (a === '--ping') opt.ping = argv[++i];
  else if (a === '--close-on') { opt.closeOn = Number(argv[++i]); opt.closeCode = Number(argv[++i]); opt.closeReason = argv[++i]; }
  else if (a === '--drop-on') opt.dropOn = Number(argv[++i]);
  else if (a === '--fragment') opt.fragment = Number(argv[++i]);
  else { process.stderr.write(`ws_server.js: unknown argument ${a}\n`); process.exit(2); }
}

const out = (line) => process.stdout.write(line + '\n');
const q = (s) => JSON.stringify(s);

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: opt.port,
  maxPayload: 64 * 1024 * 1024,
  handleProtocols: (offered) => {
    for (const p of opt.subprotocols) if (offered.has(p)) return p;
    return false;
  },
});
wss.on('listening', () => out(String(wss.address().port)));
wss.on('error', (e) => { process.stderr.write(`ws_server.js: ${e.message}\n`); process.exit(1); });

wss.on('connection', (ws) => {
  let n = 0;
  out(`OPEN ${q(ws.protocol)}`);
  ws.on('message', (data, isBinary) => {
    n++;
    const sha = crypto.createHash('sha1').update(data).digest('hex');
    let line = `MSG ${isBinary ? 'binary' : 'text'} ${data.length} ${sha}`;
    if (!isBinary && data.length <= 64) line += ` ${q(data.toString('utf8'))}`;
    out(line);
    if (n === opt.closeOn) ws.close(opt.closeCode, opt.closeReason);
    else if (n === opt.dropOn) ws.terminate();
    else if (!opt.fragment) ws.send(data, { binary: isBinary });
    else {
      for (let at = 0, first = true; first || at < data.length; at += opt.fragment, first = false) {
        ws.send(data.subarray(at, at + opt.fragment), { binary: isBinary, fin: at + opt.fragment >= data.length });
        if (first) ws.ping('mid');
      }
    }
  });
  ws.on('pong', (data) => out(`PONG ${q(data.toString('utf8'))}`));
  ws.on('close', (code, reason) => out(`CLOSE ${code} ${q(reason.toString('utf8'))}`));
  ws.on('error', (e) => out(`ERROR ${q(e.message)}`));
  if (opt.ping !== null) ws.ping(opt.ping);
});
