// Minimal HTTP load generator (keep-alive, fixed concurrency, fixed duration).
// node load.js URL [concurrency=32] [seconds=5] [host header] -> prints requests/s
const http = require('http');
const [url, conc = '32', secs = '5', host] = process.argv.slice(2);
const u = new URL(url);
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(conc) });
const end = Date.now() + Number(secs) * 1000;
let ok = 0, bad = 0;
function one(done) {
  if (Date.now() >= end) return done();
  const req = http.request({ agent, host: u.hostname, port: u.port, path: u.pathname, headers: host ? { host } : {} }, (res) => {
    res.resume();
    res.on('end', () => { if (res.statusCode === 200) ok++; else bad++; one(done); });
  });
  req.on('error', () => { bad++; one(done); });
  req.end();
}
const t0 = Date.now();
let left = Number(conc);
for (let i = 0; i < Number(conc); i++) one(() => { if (--left === 0) {
  const s = (Date.now() - t0) / 1000;
  console.log(JSON.stringify({ rps: Math.round(ok / s), ok, bad }));
  agent.destroy();
} });
