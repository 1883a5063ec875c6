// bench_ws.js - the Node `ws` peer of tools/bench/wsr-bench.c.
//
//   node bench_ws.js --version          VERSION node=<v> ws=<v>
//   node bench_ws.js server             echo server on 127.0.0.1, port 0: READY <port>
//   node bench_ws.js client URL         READY once open, then one command a line on stdin:
//     WARM|RUN tp|lat SIZE WINDOW MS    RESULT <msgs> <ns> <p50 ns> <p99 ns> <errors>
//     QUIT                              close and exit
//
// The workload is the one wsr-bench.c runs itself (see wl_echo there):
//   tp:  WINDOW binary messages of SIZE bytes outstanding; each echo lets one
//        more go until MS have passed, then the window drains; ns is from the
//        first send to the last echo.
//   lat: one message at a time, the next sent from the echo's handler; p50 and
//        p99 are nearest-rank percentiles of the round trips.
// ws comes from tests/interop/node_modules (pinned by its package-lock.json).
// permessage-deflate is off on both sides, as in ws_reconnect.h.
'use strict';
const path = require('path');

const interop = path.join(__dirname, '..', '..', 'tests', 'interop');
const wsMain = require.resolve('ws', { paths: [interop] });
const WebSocket = require(wsMain);
const wsVersion = require(path.join(path.dirname(wsMain), 'package.json')).version;

const out = (line) => process.stdout.write(line + '\n');
const now = () => process.hrtime.bigint();
const MAX = 64 * 1024 * 1024;

const role = process.argv[2];
if (role === '--version') {
  out(`VERSION node ${process.version}, ws ${wsVersion}`);
  process.exit(0);
} else if (role === 'server') {
  const wss = new WebSocket.WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: MAX, perMessageDeflate: false });
  wss.on('listening', () => out(`READY ${wss.address().port}`));
  wss.on('error', (e) => { process.stderr.write(`bench_ws.js: ${e.message}\n`); process.exit(1); });
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('error', () => {});
  });
} else if (role === 'client') {
  client(process.argv[3]);
} else {
  process.stderr.write('usage: node bench_ws.js --version | server | client URL\n');
  process.exit(2);
}

function nearestRank(sorted, p) {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(p * sorted.length)));
  return sorted[rank - 1];
}

function client(url) {
  const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: MAX });
  let onEcho = null;
  ws.on('message', (data) => { if (onEcho) onEcho(data); });
  ws.on('error', (e) => { process.stderr.write(`bench_ws.js: ${e.message}\n`); process.exit(1); });
  ws.on('close', () => { if (onEcho) { process.stderr.write('bench_ws.js: closed during a run\n'); process.exit(1); } });

  // One run; resolves with the RESULT line.
  function run(mode, size, window, ms) {
    return new Promise((resolve) => {
      const msg = Buffer.alloc(size);
      for (let i = 0; i < size; i++) msg[i] = (i * 7 + 3) & 255;
      const t0 = now();
      const end = t0 + BigInt(ms) * 1000000n;
      let sent = 0, got = 0, errors = 0, stop = false;
      if (mode === 'tp') {
        onEcho = (data) => {
          const t = now();
          got++;
          if (data.length !== size) errors++;
          if (!stop && t >= end) stop = true;
          if (!stop) { sent++; ws.send(msg); return; }
          if (got === sent) { onEcho = null; resolve(`RESULT ${got} ${t - t0} 0 0 ${errors}`); }
        };
        sent = window;
        for (let i = 0; i < window; i++) ws.send(msg);
      } else {
        const samples = [];
        let tSent = now();
        onEcho = (data) => {
          const t = now();
          got++;
          if (data.length !== size) errors++;
          samples.push(Number(t - tSent));
          if (t >= end) {
            onEcho = null;
            const s = Float64Array.from(samples).sort();
            resolve(`RESULT ${got} ${t - t0} ${nearestRank(s, 0.5)} ${nearestRank(s, 0.99)} ${errors}`);
            return;
          }
          sent++;
          tSent = now();
          ws.send(msg);
        };
        sent = 1;
        ws.send(msg);
      }
    });
  }

  ws.on('open', () => {
    out('READY');
    const readline = require('readline');
    const rl = readline.createInterface({ input: process.stdin });
    let chain = Promise.resolve();
    rl.on('line', (line) => {
      const [cmd, mode, size, window, ms] = line.trim().split(/\s+/);
      if (cmd === 'QUIT') { ws.close(1000); setTimeout(() => process.exit(0), 200); return; }
      if (cmd !== 'WARM' && cmd !== 'RUN') { out(`ERROR unknown command ${cmd}`); return; }
      chain = chain.then(() => run(mode, Number(size), Number(window), Number(ms))).then(out);
    });
    rl.on('close', () => process.exit(0));
  });
}
