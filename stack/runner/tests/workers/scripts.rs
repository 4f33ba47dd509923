//! The JavaScript workers the serving test deploys: hello (two versions), a JSON API, a CPU spin,
//! a memory bomb, timers and the queue, fetch, binary bodies, cookies, a throw.

pub(super) const HELLO: &str = r#"export default { fetch(req, env) { return new Response(`hello from ${env.GREETING} v1`); } };"#;
pub(super) const HELLO2: &str =
    r#"export default { fetch() { return new Response("hello v2"); } };"#;
pub(super) const API: &str = r#"
export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const body = request.method === 'POST' ? await request.json() : null;
    await Promise.resolve();
    const bytes = new TextEncoder().encode('héllo');
    console.log('api call', { path: url.pathname });
    return Response.json({
      path: url.pathname,
      q: url.searchParams.get('q'),
      method: request.method,
      ua: request.headers.get('user-agent'),
      body,
      uuidOk: /^[0-9a-f-]{36}$/.test(crypto.randomUUID()),
      bytes: bytes.length,
      roundtrip: new TextDecoder().decode(bytes),
      b64: btoa('hi!'),
      unb64: atob('aGkh'),
      leaked: typeof globalThis.secretOfSpin,
    }, { status: 201, headers: { 'x-worker': 'api' } });
  },
  async queue(batch) {
    for (const m of batch.messages) { if (m.body.fail) m.retry(); else m.ack(); }
  },
  async scheduled(event) { if (!event.cron) throw new Error('no cron'); },
};"#;
pub(super) const SPIN: &str =
    r#"globalThis.secretOfSpin = 42; export default { fetch() { for (;;) {} } };"#;
pub(super) const BOMB: &str =
    r#"export default { fetch() { const a = []; for (;;) a.push(new Array(100000).fill(1)); } };"#;
pub(super) const TIMERS: &str = r#"export default { async fetch(req, env) {
  const t = Date.now();
  await new Promise((r) => setTimeout(r, 120));
  const ticks = await new Promise((r) => {
    let n = 0;
    const every = setInterval(() => { n += 1; if (n === 3) { clearInterval(every); setTimeout(() => r(n), 50); } }, 10);
  });
  const { id } = await env.QUEUE.send({ from: 'js' }, { queue: 'from-js', delaySeconds: 5 });
  await env.QUEUE.send({ default: true });
  return new Response(`slept ${Date.now() - t >= 120} ticks ${ticks} ${id}`);
} };"#;
pub(super) const FETCHER: &str = r#"export default { async fetch(req) {
  const target = new URL(req.url).searchParams.get('u');
  try {
    const r = await fetch(target, { headers: { 'x-from': 'worker' } });
    return new Response(`ok ${r.status} ${await r.text()}`);
  } catch (e) {
    return new Response(`refused: ${e.message}`, { status: 502 });
  }
} };"#;
/// Bytes in and out: the request's bytes plus 0xFE; `/fetch` POSTs bytes upstream and answers
/// with the bytes that came back.
pub(super) const BINARY: &str = r#"export default { async fetch(req) {
  const url = new URL(req.url);
  if (url.pathname === '/fetch') {
    const r = await fetch(url.searchParams.get('u'), { method: 'POST', body: new Uint8Array([0, 255, 128, 10]) });
    return new Response(await r.arrayBuffer(), { headers: { 'content-type': 'application/octet-stream' } });
  }
  const b = await req.bytes();
  const out = new Uint8Array(b.length + 1); out.set(b); out[b.length] = 0xfe;
  return new Response(out, { headers: { 'content-type': 'application/octet-stream' } });
} };"#;
/// Two cookies, one with the comma of an Expires date, through a copied `Headers`.
pub(super) const COOKIES: &str = r#"export default { fetch() {
  const h = new Headers();
  h.append('set-cookie', 'a=1; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Path=/');
  h.append('Set-Cookie', 'b=2; HttpOnly');
  const copy = new Headers(h);
  return new Response(JSON.stringify({ list: copy.getSetCookie(), joined: copy.get('set-cookie') }), { headers: copy });
} };"#;
pub(super) const THROWS: &str =
    r#"export default { fetch() { throw new Error('secret internal detail'); } };"#;
