// The runner's Workers-style runtime API, evaluated in every worker's own context before the
// worker module. Natives from Rust: __log(level, msg), __uuid(), __random(n), __url(href, base).
(() => {
  const G = globalThis;
  const natives = { log: G.__log, uuid: G.__uuid, random: G.__random, url: G.__url, enqueue: G.__enqueue, fetch: G.__fetch, db: G.__db, wf: G.__wf, wfApi: G.__wfApi };
  delete G.__log; delete G.__uuid; delete G.__random; delete G.__url; delete G.__enqueue; delete G.__fetch; delete G.__db;
  delete G.__wf; delete G.__wfApi;

  // ---- timers: run by the runner between promise jobs, cleared after each invocation
  let timerSeq = 0;
  const timers = new Map();
  G.setTimeout = (fn, ms = 0, ...args) => {
    if (typeof fn !== 'function') throw new TypeError('setTimeout needs a function');
    const id = ++timerSeq;
    timers.set(id, { at: Date.now() + Math.max(0, Number(ms) || 0), fn, args });
    return id;
  };
  G.clearTimeout = (id) => { timers.delete(id); };
  // An interval is a timer that is set again (at least 1 ms on) each time it runs.
  G.setInterval = (fn, ms = 0, ...args) => {
    if (typeof fn !== 'function') throw new TypeError('setInterval needs a function');
    const id = ++timerSeq;
    const every = Math.max(1, Number(ms) || 0);
    timers.set(id, { at: Date.now() + every, fn, args, every });
    return id;
  };
  G.clearInterval = G.clearTimeout;
  G.__timers = () => {
    const now = Date.now();
    for (const [id, t] of [...timers]) {
      if (t.at > now) continue;
      if (t.every === undefined) timers.delete(id); else t.at = now + t.every;
      t.fn(...t.args);
    }
    let next = -1;
    for (const t of timers.values()) { const d = Math.max(0, t.at - Date.now()); if (next < 0 || d < next) next = d; }
    return next;
  };
  G.__timersClear = () => timers.clear();

  // ---- env.QUEUE: send(body, { delaySeconds, queue }) and sendBatch([{ body, delaySeconds }], { queue })
  // Without `queue`: the worker's one consumed queue, or the queue named after it (js.rs decides).
  const makeQueue = (defaultQueue) => Object.freeze({
    async send(body, opts = {}) {
      const id = natives.enqueue(String(opts.queue || defaultQueue), JSON.stringify(body === undefined ? null : body), Number(opts.delaySeconds) || 0);
      return { id: String(id) };
    },
    async sendBatch(messages, opts = {}) {
      for (const m of messages) natives.enqueue(String(opts.queue || defaultQueue), JSON.stringify(m.body === undefined ? null : m.body), Number(m.delaySeconds) || 0);
    },
  });
  G.__makeQueue = makeQueue;

  // ---- env.DB (only with the worker's own postgate token): query(sql, params) runs one
  // statement in its own transaction as the token's tenant role; rows come back as objects.
  G.__makeDb = () => {
    if (typeof natives.db !== 'function') return undefined;
    const db = natives.db;
    return Object.freeze({
      async query(sql, params = []) {
        if (typeof sql !== 'string') throw new TypeError('env.DB.query needs an SQL string');
        if (!Array.isArray(params)) throw new TypeError('env.DB.query params must be an array');
        const r = JSON.parse(db(sql, JSON.stringify(params)));
        if (!r.ok) {
          const e = new Error(r.error.message);
          e.code = r.error.code;
          if (r.error.sqlstate) e.sqlstate = r.error.sqlstate;
          throw e;
        }
        return { rows: r.result.rows, columns: r.result.columns, rowCount: r.result.row_count };
      },
    });
  };

  const fmt = (v) => {
    if (typeof v === 'string') return v;
    if (v instanceof Error) return v.stack ? `${v.name}: ${v.message}\n${v.stack}` : `${v.name}: ${v.message}`;
    try { return JSON.stringify(v); } catch (_) { return String(v); }
  };
  const mk = (level) => (...args) => natives.log(level, args.map(fmt).join(' '));
  G.console = { log: mk('info'), info: mk('info'), debug: mk('debug'), warn: mk('warn'), error: mk('error') };

  // ---- text and bytes
  class TextEncoder {
    get encoding() { return 'utf-8'; }
    encode(s = '') {
      s = String(s);
      const out = [];
      for (let i = 0; i < s.length; i++) {
        let c = s.charCodeAt(i);
        if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length) {
          const d = s.charCodeAt(i + 1);
          if (d >= 0xdc00 && d < 0xe000) { c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00); i++; }
          else c = 0xfffd;
        } else if (c >= 0xd800 && c < 0xe000) c = 0xfffd;
        if (c < 0x80) out.push(c);
        else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
        else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
        else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
      }
      return new Uint8Array(out);
    }
  }
  class TextDecoder {
    get encoding() { return 'utf-8'; }
    decode(buf) {
      if (buf === undefined) return '';
      const b = buf instanceof Uint8Array ? buf : ArrayBuffer.isView(buf)
        ? new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength) : new Uint8Array(buf);
      let s = '';
      for (let i = 0; i < b.length;) {
        const c = b[i];
        let cp, n;
        if (c < 0x80) { cp = c; n = 1; }
        else if (c >= 0xc2 && c < 0xe0) { cp = c & 31; n = 2; }
        else if (c >= 0xe0 && c < 0xf0) { cp = c & 15; n = 3; }
        else if (c >= 0xf0 && c < 0xf5) { cp = c & 7; n = 4; }
        else { s += '\ufffd'; i++; continue; }
        if (i + n > b.length) { s += '\ufffd'; break; }
        let ok = true;
        for (let k = 1; k < n; k++) { const d = b[i + k]; if ((d & 0xc0) !== 0x80) { ok = false; break; } cp = (cp << 6) | (d & 63); }
        if (!ok) { s += '\ufffd'; i++; continue; }
        s += String.fromCodePoint(cp); i += n;
      }
      return s;
    }
  }
  G.TextEncoder = TextEncoder; G.TextDecoder = TextDecoder;

  const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  G.btoa = (s) => {
    s = String(s); let out = '';
    for (let i = 0; i < s.length; i += 3) {
      const a = s.charCodeAt(i), b = s.charCodeAt(i + 1), c = s.charCodeAt(i + 2);
      if (a > 255 || b > 255 || c > 255) throw new Error('btoa: character out of Latin1 range');
      const n = (a << 16) | ((b || 0) << 8) | (c || 0);
      out += B64[n >> 18] + B64[(n >> 12) & 63] + (i + 1 < s.length ? B64[(n >> 6) & 63] : '=') + (i + 2 < s.length ? B64[n & 63] : '=');
    }
    return out;
  };
  G.atob = (s) => {
    s = String(s).replace(/[\t\n\f\r ]/g, '').replace(/=+$/, '');
    if (/[^A-Za-z0-9+/]/.test(s) || s.length % 4 === 1) throw new Error('atob: invalid base64');
    let out = '', bits = 0, acc = 0;
    for (const ch of s) { acc = (acc << 6) | B64.indexOf(ch); bits += 6; if (bits >= 8) { bits -= 8; out += String.fromCharCode((acc >> bits) & 255); } }
    return out;
  };

  G.crypto = {
    randomUUID: () => natives.uuid(),
    getRandomValues(arr) {
      if (!ArrayBuffer.isView(arr)) throw new TypeError('getRandomValues needs a typed array');
      if (arr.byteLength > 65536) throw new Error('getRandomValues: at most 65536 bytes');
      const bytes = natives.random(arr.byteLength);
      new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength).set(bytes);
      return arr;
    },
  };

  // ---- URL
  class URLSearchParams {
    constructor(init = '') {
      this._list = [];
      if (typeof init === 'string') {
        for (const part of init.replace(/^\?/, '').split('&')) {
          if (!part) continue;
          const i = part.indexOf('=');
          const dec = (x) => decodeURIComponent(x.replace(/\+/g, ' '));
          this._list.push(i < 0 ? [dec(part), ''] : [dec(part.slice(0, i)), dec(part.slice(i + 1))]);
        }
      } else if (init && typeof init === 'object') {
        const it = Array.isArray(init) || init instanceof URLSearchParams ? init : Object.entries(init);
        for (const [k, v] of it) this._list.push([String(k), String(v)]);
      }
    }
    append(k, v) { this._list.push([String(k), String(v)]); this._update(); }
    delete(k) { this._list = this._list.filter(([a]) => a !== k); this._update(); }
    get(k) { const e = this._list.find(([a]) => a === k); return e ? e[1] : null; }
    getAll(k) { return this._list.filter(([a]) => a === k).map(([, b]) => b); }
    has(k) { return this._list.some(([a]) => a === k); }
    set(k, v) { const i = this._list.findIndex(([a]) => a === k); if (i < 0) this._list.push([k, String(v)]); else { this._list[i][1] = String(v); this._list = this._list.filter(([a], j) => a !== k || j === i); } this._update(); }
    forEach(f) { for (const [k, v] of this._list) f(v, k, this); }
    entries() { return this._list.map((e) => [e[0], e[1]])[Symbol.iterator](); }
    keys() { return this._list.map((e) => e[0])[Symbol.iterator](); }
    values() { return this._list.map((e) => e[1])[Symbol.iterator](); }
    [Symbol.iterator]() { return this.entries(); }
    toString() { const enc = (x) => encodeURIComponent(x).replace(/%20/g, '+'); return this._list.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&'); }
    _update() { if (this._url) { const s = this.toString(); this._url._set('search', s ? '?' + s : ''); } }
  }
  class URL {
    constructor(href, base) {
      const r = base === undefined ? natives.url(String(href)) : natives.url(String(href), String(base));
      if (r === null) throw new TypeError(`Invalid URL: ${href}`);
      this._p = JSON.parse(r);
      this._sp = new URLSearchParams(this._p.search);
      this._sp._url = this;
    }
    _set(k, v) { const u = new URL(this.href); u._p[k] = v; const o = u._p; this._p = JSON.parse(natives.url(`${o.protocol}//${o.username ? o.username + (o.password ? ':' + o.password : '') + '@' : ''}${o.host}${o.pathname}${o.search}${o.hash}`)); }
    get href() { return this._p.href; }
    get origin() { return this._p.origin; }
    get protocol() { return this._p.protocol; }
    get host() { return this._p.host; }
    get hostname() { return this._p.hostname; }
    get port() { return this._p.port; }
    get pathname() { return this._p.pathname; }
    get search() { return this._p.search; }
    set search(v) { this._set('search', v ? (String(v).startsWith('?') ? v : '?' + v) : ''); this._sp = new URLSearchParams(this._p.search); this._sp._url = this; }
    get hash() { return this._p.hash; }
    get username() { return this._p.username; }
    get password() { return this._p.password; }
    get searchParams() { return this._sp; }
    toString() { return this.href; }
    toJSON() { return this.href; }
  }
  G.URL = URL; G.URLSearchParams = URLSearchParams;

  // ---- fetch API objects
  class Headers {
    constructor(init) {
      this._m = new Map();
      if (init instanceof Headers) init.forEach((v, k) => this.append(k, v));
      else if (Array.isArray(init)) for (const [k, v] of init) this.append(k, v);
      else if (init && typeof init === 'object') for (const k of Object.keys(init)) this.append(k, init[k]);
    }
    // Set-Cookie values are kept apart as well (`_sc`): joined with ", " they would break at the
    // comma of an Expires date, so they go out as one header each (`getSetCookie()`).
    append(k, v) {
      k = String(k).toLowerCase(); v = String(v);
      if (k === 'set-cookie') (this._sc || (this._sc = [])).push(v);
      const o = this._m.get(k); this._m.set(k, o === undefined ? v : `${o}, ${v}`);
    }
    set(k, v) { k = String(k).toLowerCase(); v = String(v); if (k === 'set-cookie') this._sc = [v]; this._m.set(k, v); }
    get(k) { const v = this._m.get(String(k).toLowerCase()); return v === undefined ? null : v; }
    getSetCookie() { return this._sc ? [...this._sc] : []; }
    has(k) { return this._m.has(String(k).toLowerCase()); }
    delete(k) { k = String(k).toLowerCase(); if (k === 'set-cookie') this._sc = undefined; this._m.delete(k); }
    forEach(f) { for (const [k, v] of this.entries()) f(v, k, this); }
    // Sorted by name (a stable sort: cookies keep their order), each Set-Cookie on its own.
    entries() {
      const out = [];
      this._m.forEach((v, k) => { if (k === 'set-cookie' && this._sc) for (const c of this._sc) out.push([k, c]); else out.push([k, v]); });
      return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))[Symbol.iterator]();
    }
    keys() { return [...this.entries()].map((e) => e[0])[Symbol.iterator](); }
    values() { return [...this.entries()].map((e) => e[1])[Symbol.iterator](); }
    [Symbol.iterator]() { return this.entries(); }
    // The runner's own request headers: `name\0value\0...`, names already lower case.
    static _fromRunner(raw) {
      const h = Object.create(Headers.prototype);
      const m = h._m = new Map();
      const p = raw ? raw.split('\0') : [];
      for (let i = 0; i + 1 < p.length; i += 2) { const k = p[i], v = p[i + 1], o = m.get(k); m.set(k, o === undefined ? v : `${o}, ${v}`); }
      return h;
    }
  }
  // A body is held as a string (text) or a Uint8Array (bytes); null when there is none.
  const bodyInit = (b) => {
    if (b === undefined || b === null) return null;
    if (typeof b === 'string') return b;
    if (b instanceof URLSearchParams) return b.toString();
    // Bytes are copied, as the Fetch standard does: later changes to the caller's buffer do not
    // reach the body.
    if (b instanceof ArrayBuffer) return new Uint8Array(b.slice(0));
    if (ArrayBuffer.isView(b)) return new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    return String(b);
  };
  // Bytes cross to the runner as a latin1 string (one character per byte; see src/body.rs).
  const toLatin1 = (u8) => {
    let s = '';
    for (let i = 0; i < u8.length; i += 8192) s += String.fromCharCode.apply(null, u8.subarray(i, i + 8192));
    return s;
  };
  const fromLatin1 = (s) => {
    const u8 = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) u8[i] = s.charCodeAt(i);
    return u8;
  };
  // [body as a string, binary?] for the runner.
  const bodyOut = (b) => (b === null ? ['', false] : typeof b === 'string' ? [b, false] : [toLatin1(b), true]);
  const consume = (r) => { if (r.bodyUsed) throw new TypeError('Body already used'); r.bodyUsed = true; return r._body; };
  const asBytes = (b) => (b === null ? new Uint8Array(0) : typeof b === 'string' ? new TextEncoder().encode(b) : b.slice());
  // Body members shared by Request and Response, copied onto both prototypes (plain classes
  // construct faster in QuickJS than derived ones, and a response is made per request).
  const bodyMembers = {
    get body() { return this._body; },
    async text() { const b = consume(this); return b === null ? '' : typeof b === 'string' ? b : new TextDecoder().decode(b); },
    async json() { return JSON.parse(await this.text()); },
    async arrayBuffer() { return asBytes(consume(this)).buffer; },
    async bytes() { return asBytes(consume(this)); },
  };
  const withBody = (C) => { Object.defineProperties(C.prototype, Object.getOwnPropertyDescriptors(bodyMembers)); return C; };
  const create = Object.create;
  class Request {
    constructor(input, init = {}) {
      const src = input instanceof Request ? input : null;
      this.url = src ? src.url : new URL(String(input)).href;
      this.method = String(init.method || (src && src.method) || 'GET').toUpperCase();
      this._raw = '';
      this._h = new Headers(init.headers || (src && src.headers) || undefined);
      this._body = bodyInit(init.body !== undefined ? init.body : src ? src._body : null);
      this.bodyUsed = false;
      this.signal = null;
    }
    clone() { return new Request(this); }
    // A request from the runner builds its Headers on first use (`_raw`, see __dispatch).
    get headers() { if (this._h === undefined) this._h = Headers._fromRunner(this._raw); return this._h; }
    set headers(h) { this._h = h; }
  }
  withBody(Request);
  const REQUEST = Request.prototype;
  const STATUS = { 200: 'OK', 201: 'Created', 204: 'No Content', 301: 'Moved Permanently', 302: 'Found', 304: 'Not Modified', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 409: 'Conflict', 500: 'Internal Server Error', 503: 'Service Unavailable' };
  const NO_INIT = Object.freeze({});
  const TEXT = 'text/plain;charset=UTF-8';
  class Response {
    constructor(body = null, init = NO_INIT) {
      const status = init.status === undefined ? 200 : init.status | 0;
      if (status < 200 || status > 599) throw new RangeError(`invalid status ${init.status}`);
      this.status = status;
      this.statusText = init.statusText || STATUS[status] || '';
      this._body = bodyInit(body);
      this.bodyUsed = false;
      // Without init headers, the Headers object is made on first use (`headers`); until then
      // `_ct` holds the content type it would start with.
      if (init.headers === undefined) {
        this._h = undefined;
        this._ct = typeof body === 'string' ? TEXT : null;
      } else {
        const h = this._h = new Headers(init.headers);
        this._ct = null;
        if (typeof body === 'string' && !h._m.has('content-type')) h._m.set('content-type', TEXT);
      }
    }
    get headers() {
      let h = this._h;
      if (h === undefined) {
        h = this._h = new Headers();
        if (this._ct !== null) h._m.set('content-type', this._ct);
        this._ct = null;
      }
      return h;
    }
    set headers(h) { this._h = h; this._ct = null; }
    get ok() { return this.status >= 200 && this.status < 300; }
    clone() { return new Response(this._body, { status: this.status, statusText: this.statusText, headers: this.headers }); }
    static json(data, init = {}) {
      const r = new Response(JSON.stringify(data), init);
      if (r._h === undefined) r._ct = 'application/json';
      else r._h.set('content-type', 'application/json');
      return r;
    }
    static redirect(url, status = 302) { return new Response(null, { status, headers: { location: String(url) } }); }
  }
  withBody(Response);
  G.Headers = Headers; G.Request = Request; G.Response = Response;

  G.fetch = async (input, init = {}) => {
    const req = input instanceof Request && Object.keys(init).length === 0 ? input : new Request(input, init);
    const [body, binary] = bodyOut(req._body);
    const r = JSON.parse(natives.fetch(JSON.stringify({ method: req.method, url: req.url, headers: [...req.headers], body: req._body === null ? null : body, binary })));
    const resBody = r.status === 204 || r.status === 304 ? null : r.binary ? fromLatin1(r.body) : r.body;
    const res = new Response(resBody, { status: r.status, headers: r.headers });
    Object.defineProperty(res, 'url', { value: r.url });
    return res;
  };


  // ---- durable workflows (Cloudflare's shape): `export class X extends WorkflowEntrypoint`,
  // `env.BINDING` for each `--workflow BINDING=X`. A run replays recorded steps from the
  // database (natives.wf) and stops ("suspends") at the first sleep or wait not yet over.
  class WorkflowEntrypoint {
    constructor(ctx, env) { this.ctx = ctx; this.env = env; }
  }
  class NonRetryableError extends Error {
    constructor(message, name) { super(message); this.name = name || 'NonRetryableError'; this.nonRetryable = true; }
  }
  G.WorkflowEntrypoint = WorkflowEntrypoint;
  G.NonRetryableError = NonRetryableError;
  const UNITS = { millisecond: 1, second: 1000, minute: 60000, hour: 3600000, day: 86400000, week: 604800000, month: 2592000000, year: 31536000000 };
  // A number (milliseconds) or "N unit(s)" (second, minute, hour, day, week, month, year).
  const durationMs = (d, what) => {
    if (typeof d === 'number' && Number.isFinite(d) && d >= 0) return d;
    const m = typeof d === 'string' && /^\s*(\d+(?:\.\d+)?)\s*([a-z]+?)s?\s*$/i.exec(d);
    const unit = m && (UNITS[m[2].toLowerCase()] || { ms: 1, sec: 1000, s: 1000, min: 60000, m: 60000, h: 3600000, hr: 3600000, d: 86400000 }[m[2].toLowerCase()]);
    if (!unit) throw new TypeError(`${what}: cannot parse duration ${JSON.stringify(d)} (a number of milliseconds, or "N second|minute|hour|day|week|month|year")`);
    return Number(m[1]) * unit;
  };
  const MAX_JSON = 1 << 20;
  const DEFAULT_RETRIES = { limit: 5, delay: 10000, backoff: 'exponential' };
  const backoffMs = (r, attempt) => {
    const base = durationMs(r.delay, 'retries.delay');
    if (r.backoff === 'constant') return base;
    if (r.backoff === 'linear') return base * attempt;
    if (r.backoff === undefined || r.backoff === 'exponential') return base * 2 ** (attempt - 1);
    throw new TypeError(`retries.backoff must be "constant", "linear" or "exponential", not ${JSON.stringify(r.backoff)}`);
  };
  const errText = (e) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e));
  const runWorkflow = async (input, env, ctx) => {
    const C = G.__wfClasses && G.__wfClasses[input.class];
    if (typeof C !== 'function') throw new Error(`the worker exports no workflow class ${input.class}`);
    let halted = null; let inflight = 0; let suspend;
    const suspended = new Promise((r) => { suspend = r; });
    const maybeStop = () => { if (halted && inflight === 0) suspend(); };
    // Stop the run here: the step's promise never settles; the run ends once no step body runs.
    const halt = (why) => { if (!halted || why.reason !== 'suspend') halted = why; maybeStop(); return new Promise(() => {}); };
    let seq = 0; const seen = new Map();
    const began = Date.now(); let progressed = false;
    const position = (name) => {
      if (typeof name !== 'string' || name === '') throw new TypeError('a step needs a name (a non-empty string)');
      // Past the run's budget: stop before this step; the runner starts the next run at once.
      // (Only once this run has run a step of its own: a replay alone always gets through.)
      if (!halted && progressed && input.budget_ms > 0 && Date.now() - began > input.budget_ms) halted = { reason: 'suspend' };
      const occ = (seen.get(name) || 0) + 1; seen.set(name, occ);
      return { workflow: input.class, instance: input.instanceId, job: input.job, name, occ, seq: ++seq };
    };
    const call = (op, args) => JSON.parse(natives.wf(op, JSON.stringify(args)));
    // A halt from the store: a replay mismatch (fails the instance), a stale run, a storage error.
    const stopped = (r) => (r.state === 'halt' ? halt({ reason: r.reason, error: r.error }) : r.state === 'suspend' ? halt({ reason: 'suspend' }) : null);
    const step = {
      async do(name, config, fn) {
        if (typeof config === 'function') { fn = config; config = {}; }
        if (typeof fn !== 'function') throw new TypeError(`step.do(${JSON.stringify(name)}): needs a function`);
        const pos = position(name);
        if (halted) return halt({ reason: 'suspend' });
        const r = call('do_begin', pos);
        const h = stopped(r); if (h) return h;
        if (r.state === 'complete') return r.output;
        if (r.state === 'errored') { const e = new Error(r.error); e.name = 'WorkflowStepError'; throw e; }
        progressed = true;
        const retries = { ...DEFAULT_RETRIES, ...((config && config.retries) || {}) };
        // A step timeout makes the attempt fail (and retry); its body is not stopped, its result
        // is ignored. Without one, the worker's wall time bounds the run.
        const timeoutMs = config && config.timeout !== undefined ? durationMs(config.timeout, `step.do(${JSON.stringify(name)}) timeout`) : null;
        inflight++;
        let out, err, failed = false, timer;
        const t0 = Date.now();
        try {
          const body = fn({ attempt: r.attempt });
          out = await (timeoutMs === null ? body : Promise.race([body, new Promise((_, rej) => {
            timer = setTimeout(() => rej(new Error(`step ${JSON.stringify(name)} timed out after ${timeoutMs} ms`)), timeoutMs);
          })]));
        } catch (e) { failed = true; err = e; }
        if (timer !== undefined) clearTimeout(timer);
        inflight--;
        const took_ms = Date.now() - t0;
        let text;
        if (!failed) {
          try { text = JSON.stringify(out === undefined ? null : out); } catch (e) { failed = true; err = new NonRetryableError(`step ${JSON.stringify(name)}: its result is not JSON-serialisable: ${e.message}`); }
          if (!failed && text.length > MAX_JSON) { failed = true; err = new NonRetryableError(`step ${JSON.stringify(name)}: its result is ${text.length} bytes of JSON, over the ${MAX_JSON} byte limit`); }
        }
        if (!failed) {
          const e = call('do_end', { ...pos, attempt: r.attempt, output: text, took_ms });
          const h2 = stopped(e); if (h2) return h2;
          maybeStop();
          return JSON.parse(text);
        }
        const nonRetryable = err instanceof NonRetryableError || (err && err.nonRetryable === true);
        const retry = !nonRetryable && r.attempt <= Number(retries.limit);
        const e = call('do_end', { ...pos, attempt: r.attempt, error: errText(err), retry_ms: retry ? backoffMs(retries, r.attempt) : null, took_ms });
        const h2 = stopped(e); if (h2) return h2;
        maybeStop();
        throw err;
      },
      async sleep(name, duration) {
        const ms = durationMs(duration, `step.sleep(${JSON.stringify(name)})`);
        const pos = position(name);
        if (halted) return halt({ reason: 'suspend' });
        const h = stopped(call('sleep', { ...pos, ms })); if (h) return h;
      },
      async sleepUntil(name, when) {
        const t = when instanceof Date ? when.getTime() : typeof when === 'number' ? when : Date.parse(String(when));
        if (!Number.isFinite(t)) throw new TypeError(`step.sleepUntil(${JSON.stringify(name)}): not a date: ${String(when)}`);
        const pos = position(name);
        if (halted) return halt({ reason: 'suspend' });
        const h = stopped(call('sleep', { ...pos, until: t })); if (h) return h;
      },
      async waitForEvent(name, opts = {}) {
        const type = opts && opts.type;
        if (typeof type !== 'string' || !/^[A-Za-z0-9_.:-]{1,100}$/.test(type)) throw new TypeError(`step.waitForEvent(${JSON.stringify(name)}): type must match ^[A-Za-z0-9_.:-]{1,100}$`);
        const timeout_ms = opts.timeout === undefined ? 86400000 : durationMs(opts.timeout, `step.waitForEvent(${JSON.stringify(name)}) timeout`);
        const pos = position(name);
        if (halted) return halt({ reason: 'suspend' });
        const r = call('event', { ...pos, type, timeout_ms });
        const h = stopped(r); if (h) return h;
        if (r.state === 'errored') { const e = new Error(r.error); e.name = 'WorkflowTimeoutError'; throw e; }
        const ev = r.output;
        return { payload: ev.payload, type: ev.type, timestamp: new Date(ev.timestamp) };
      },
      // A hook: `{ token, url, wait({ timeout }) }`. Each POST to `url` (a path on the runner)
      // delivers one JSON payload, kept if it comes early; each `wait()` is a waitForEvent step
      // (named like the hook) that takes the next one.
      async createHook(name) {
        const pos = position(name);
        if (halted) return halt({ reason: 'suspend' });
        const r = call('hook', pos);
        const h = stopped(r); if (h) return h;
        const token = r.output.token;
        return Object.freeze({
          token,
          url: `/workflows/hooks/${token}`,
          wait: (opts = {}) => step.waitForEvent(name, { type: `hook:${token}`, timeout: opts && opts.timeout }),
        });
      },
    };
    const inst = new C(ctx, env);
    if (typeof inst.run !== 'function') throw new Error(`workflow class ${input.class} has no run() method`);
    const event = { payload: input.payload, timestamp: new Date(input.timestamp), instanceId: input.instanceId };
    const out = await Promise.race([
      (async () => inst.run(event, step))().then((v) => ({ ok: v }), (e) => ({ err: e })),
      suspended.then(() => ({ halted: true })),
    ]);
    if (halted) {
      if (halted.reason === 'suspend') return JSON.stringify({ state: 'suspended' });
      if (halted.reason === 'stale') return JSON.stringify({ state: 'stale' });
      if (halted.reason === 'mismatch') return JSON.stringify({ state: 'errored', error: halted.error });
      return JSON.stringify({ state: 'retry', error: halted.error || 'workflow storage failed' });
    }
    if ('err' in out) return JSON.stringify({ state: 'errored', error: errText(out.err) });
    let text;
    try { text = JSON.stringify(out.ok === undefined ? null : out.ok); } catch (e) { return JSON.stringify({ state: 'errored', error: `the workflow's result is not JSON-serialisable: ${e.message}` }); }
    return JSON.stringify({ state: 'complete', output: text });
  };
  // env.BINDING for a workflow (its name is its class's).
  G.__makeWorkflow = (workflow) => {
    const api = (op, args) => {
      const r = JSON.parse(natives.wfApi(workflow, op, JSON.stringify(args)));
      if ('error' in r) throw new Error(r.error);
      return r.ok;
    };
    const instance = (id) => Object.freeze({
      id,
      async status() {
        const s = api('status', { id });
        return { status: s.status, output: s.output === null ? undefined : s.output, error: s.error === null ? undefined : { name: 'Error', message: s.error }, steps: s.steps };
      },
      async sendEvent({ type, payload } = {}) { api('sendEvent', { id, type, payload: payload === undefined ? null : payload }); },
      async pause() { api('pause', { id }); },
      async resume() { api('resume', { id }); },
      async terminate() { api('terminate', { id }); },
      async restart() { api('restart', { id }); },
    });
    return Object.freeze({
      async create(opts = {}) {
        const id = api('create', { id: opts.id === undefined ? null : String(opts.id), params: opts.params === undefined ? null : opts.params });
        return instance(id);
      },
      async createBatch(list) { const out = []; for (const o of list) out.push(await this.create(o)); return out; },
      async get(id) { api('status', { id: String(id) }); return instance(String(id)); },
    });
  };

  // ---- dispatch, called by the runner
  // `ctx` of an invocation; waitUntil's promises are awaited before the invocation ends.
  class Ctx {
    waitUntil(p) { (this._waits || (this._waits = [])).push(Promise.resolve(p)); }
    passThroughOnException() {}
  }
  // Timers left pending when the invocation ends are dropped (the runner also drops them when
  // the promise never settles).
  const dropTimers = () => { if (timers.size) timers.clear(); };
  // What the runner reads back: [status, body, binary, name, value, name, value, ...].
  const fetchResult = (res) => {
    if (!(res instanceof Response)) throw new TypeError('fetch handler must return a Response');
    const b = res._body;
    const h = res._h;
    if (typeof b === 'string' && h === undefined) return res._ct === null ? [res.status, b, false] : [res.status, b, false, 'content-type', res._ct];
    const [text, binary] = bodyOut(b);
    const out = [res.status, text, binary];
    if (h === undefined) { if (res._ct !== null) out.push('content-type', res._ct); return out; }
    h._m.forEach((v, k) => { if (k === 'set-cookie' && h._sc) for (const c of h._sc) out.push(k, c); else out.push(k, v); });
    return out;
  };
  // fetch: (kind, url, method, headers as `name\0value\0...`, body); scheduled and queue:
  // (kind, JSON input). Returns the result when the handler answered synchronously, else a
  // promise of it.
  G.__dispatch = (kind, input, method, rawHeaders, body) => {
    let settled = true;
    try {
      const w = G.__worker;
      const env = G.__env;
      const ctx = new Ctx();
      const handler = kind === 'workflow' ? runWorkflow : w && w[kind];
      if (typeof handler !== 'function') throw new Error(`worker has no ${kind} handler`);
      if (kind === 'fetch') {
        // The runner built this URL itself (valid, absolute): no second parse per request.
        const req = create(REQUEST);
        req.url = input; req.method = method; req._raw = rawHeaders; req._h = undefined;
        req._body = body === undefined ? null : typeof body === 'string' ? body : new Uint8Array(body);
        req.bodyUsed = false; req.signal = null;
        const res = w.fetch(req, env, ctx);
        if (res instanceof Response && !ctx._waits) return fetchResult(res);
        settled = false;
        return (async () => {
          try {
            const r = await res;
            if (ctx._waits) await Promise.allSettled(ctx._waits);
            return fetchResult(r);
          } finally { dropTimers(); }
        })();
      }
      settled = false;
      const event = JSON.parse(input);
      return (async () => {
        try { return await dispatchEvent(kind, event, w, handler, env, ctx); } finally { dropTimers(); }
      })();
    } finally {
      if (settled) dropTimers();
    }
  };
  const dispatchEvent = async (kind, input, w, handler, env, ctx) => {
    if (kind === 'scheduled') {
      const ev = { type: 'scheduled', cron: input.cron, scheduledTime: Date.parse(input.scheduledTime), missed: input.missed | 0 };
      await handler.call(w, ev, env, ctx);
      if (ctx._waits) await Promise.allSettled(ctx._waits);
      return '{}';
    }
    if (kind === 'workflow') return runWorkflow(input, env, ctx);
    if (kind === 'queue') {
      const retried = new Set();
      const messages = input.messages.map((m) => ({
        id: String(m.id), body: m.body, attempts: m.attempts, timestamp: new Date(),
        ack() { retried.delete(String(m.id)); }, retry() { retried.add(String(m.id)); },
      }));
      const batch = { queue: input.queue, messages, ackAll() { retried.clear(); }, retryAll() { for (const m of messages) retried.add(m.id); } };
      await handler.call(w, batch, env, ctx);
      if (ctx._waits) await Promise.allSettled(ctx._waits);
      return JSON.stringify({ retried: [...retried] });
    }
    throw new Error(`unknown event ${kind}`);
  };
})();
