// The reference integration, tested: the stock oidc-provider AS of as.js behind
// medmij-vert-proxy, driven by a real client library (openid-client, as a PGO uses it: its own
// state, PKCE and RFC 9207 `iss` checks) and a browser stand-in (fetch, redirects followed by
// hand, cookies kept). Every server runs on 127.0.0.1 on a port the kernel picked: the AS in
// this process, the proxy binary given as the first argument.
//
//   node test.js path/to/medmij-vert-proxy
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as client from 'openid-client';

import { createAs } from './as.js';

const CALLBACK = 'https://pgo.example.nl/callback';
// The AS's issuer identifier, as a DVA names it; the proxy sends it as `iss` on its own
// redirects (oauth.issuer), the AS on its own.
const ISSUER = 'https://as.example.nl';
const proxyBin = process.argv[2];

/** An AS on a port of 127.0.0.1 the kernel picks. */
async function startAs(options) {
  const server = http.createServer(createAs(ISSUER, options).callback());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

const asServer = await startAs();
// The same AS as a DVA runs it that leaves the new login to the proxy's fresh_login: without
// its own login Check.
const plainAs = await startAs({ freshLoginByProxy: true });

const work = mkdtempSync(join(tmpdir(), 'vert-oidc-'));
const proxyLog = [];
const proxies = [];

/** The proxy binary in front of the AS on `port`, with `representation` keys added. */
async function startProxy(name, port, representation = '') {
  const config = join(work, `${name}.toml`);
  writeFileSync(config, `
[listen]
addr = "127.0.0.1:0"
[upstream]
url = "http://127.0.0.1:${port}"
[oauth]
authorize_path = "/auth"
issuer = "${ISSUER}"
[clients]
static = [ { hostname = "pgo.example.nl", name = "Voorbeeld PGO" } ]
[representation]
scopes = ["onbehalfof", "onbehalfofchild"]
${representation}
[token_guard]
path = "/token"
[log]
format = "json"
`);
  const proc = spawn(proxyBin, ['--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  proxies.push(proc);
  return new Promise((resolve, reject) => {
    let buffered = '';
    proc.stderr.on('data', (chunk) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop();
      for (const line of lines) {
        proxyLog.push(line);
        const found = line.match(/"addr":"127\.0\.0\.1:(\d+)"/);
        if (found) resolve(`http://127.0.0.1:${found[1]}`);
      }
    });
    proc.on('exit', (code) => reject(new Error(`proxy ${name} exited ${code}:\n${proxyLog.join('\n')}`)));
  });
}

/** The PGO's configuration: the AS's discovery document, fetched through the proxy at
 * `base`, with its endpoints where this test reaches them (the issuer stays the AS's name). */
async function pgoConfigFor(base) {
  const discovered = await (await fetch(`${base}/.well-known/openid-configuration`)).json();
  const metadata = JSON.parse(JSON.stringify(discovered).replaceAll(ISSUER, base));
  metadata.issuer = ISSUER;
  const config = new client.Configuration(metadata, 'pgo.example.nl', undefined, client.None());
  client.allowInsecureRequests(config); // plain HTTP on loopback only
  return config;
}

const base = await startProxy('proxy', asServer.address().port);
const pgoConfig = await pgoConfigFor(base);
// In front of the AS without its own Check: with representation.fresh_login, and without.
const freshBase = await startProxy('fresh', plainAs.address().port, 'fresh_login = true');
const freshConfig = await pgoConfigFor(freshBase);
const staleBase = await startProxy('stale', plainAs.address().port);
const staleConfig = await pgoConfigFor(staleBase);

class Browser {
  constructor() {
    this.cookies = new Map();
    this.logins = 0;
  }

  async request(method, url, form) {
    const headers = { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') };
    let body;
    if (form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(form).toString();
    }
    const r = await fetch(url, { method, headers, body, redirect: 'manual' });
    for (const line of r.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const [name, ...value] = pair.split('=');
      this.cookies.set(name.trim(), value.join('='));
    }
    return r;
  }

  /** From `url` to the PGO's callback ({ callback }) or a page of the proxy's ({ page }). */
  async walk(url, { login = 'self', allow = true } = {}) {
    let method = 'GET';
    let form;
    for (let i = 0; i < 20; i += 1) {
      const r = await this.request(method, url, form);
      method = 'GET';
      form = undefined;
      if (r.status >= 300 && r.status < 400) {
        const target = new URL(r.headers.get('location'), url).href;
        await r.arrayBuffer();
        if (target.startsWith(CALLBACK)) return { callback: target, response: r };
        url = target;
        continue;
      }
      const text = await r.text();
      const action = text.match(/<form[^>]*action="([^"]+)"/)?.[1];
      if (r.status === 200 && action && text.includes('document.forms[0].submit()')) {
        // A page that posts itself, as a browser runs it (the provider ending the old
        // session when another account logs in).
        method = 'POST';
        form = Object.fromEntries(
          [...text.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1], m[2]]),
        );
        url = new URL(action, url).href;
        continue;
      }
      const prompt = text.match(/name="prompt" value="(\w+)"/)?.[1];
      if (r.status === 200 && action && prompt === 'login') {
        this.logins += 1;
        method = 'POST';
        form = { prompt, login, password: 'any' };
        url = new URL(action, url).href;
        continue;
      }
      if (r.status === 200 && action && prompt === 'consent') {
        if (allow) {
          method = 'POST';
          form = { prompt };
          url = new URL(action, url).href;
        } else {
          url = new URL(`${action}/abort`, url).href;
        }
        continue;
      }
      return { page: { status: r.status, text } };
    }
    throw new Error('more than 20 steps');
  }
}

async function pgo(scope, extra = {}, config = pgoConfig) {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: CALLBACK,
    scope,
    state,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    ...extra,
  });
  return { url: url.href, verifier, state, config };
}

/** openid-client's own checks on the response (state, iss) and the token exchange. */
function grant(callback, flow, verifier = flow.verifier) {
  return client.authorizationCodeGrant(flow.config, new URL(callback), {
    pkceCodeVerifier: verifier,
    expectedState: flow.state,
  });
}

async function released(scope, extra, login) {
  const flow = await pgo(scope, extra);
  const { callback, page, response } = await new Browser().walk(flow.url, { login });
  assert(callback, `no code: ${page?.status} ${page?.text.slice(0, 300)}`);
  assert(response.headers.get('content-length') === '0', 'the AS body reached the client');
  const tokens = await grant(callback, flow);
  assert(tokens.access_token, JSON.stringify(tokens));
  return { flow, callback };
}

async function refusedWith(promise, error) {
  try {
    await promise;
  } catch (e) {
    const got = e.error ?? e.cause?.error ?? e.code;
    assert(got === error, `${e.name}: ${got}: ${e.message}`);
    return;
  }
  throw new Error(`not refused (${error})`);
}

async function withheld(scope, extra, login, status, title) {
  const flow = await pgo(scope, extra);
  const { callback, page } = await new Browser().walk(flow.url, { login });
  assert(!callback, `released: ${callback}`);
  assert(page.status === status, `${page.status} ${page.text.slice(0, 300)}`);
  assert(page.text.includes(title), page.text.slice(0, 500));
  return { flow, page };
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

const ONBEHALFOF = { MedMij_geboortedatum: '19700901' };
const cases = [
  ['self: released, the state, iss and the token once', async () => {
    const { flow, callback } = await released('openid 48', {}, 'self');
    // A second redemption of the code never reaches the AS.
    await refusedWith(grant(callback, flow), 'invalid_grant');
  }],
  ['onbehalfof: released for the Vertegenwoordigde', () => released('openid 48 onbehalfof', ONBEHALFOF, 'piet@onbehalfof')],
  ['onbehalfofchild: released', () => released('openid 48 onbehalfofchild', { MedMij_geboortedatum: '20200315' }, 'kind@onbehalfofchild')],
  ['Vert 1: asked, not used: the page', () => withheld('openid 48 onbehalfof', ONBEHALFOF, 'self', 403, 'namens een ander is niet gelukt')],
  ['Vert 2: used, not asked: the page', () => withheld('openid 48', {}, 'piet@onbehalfof', 403, 'U logde in namens een ander')],
  ['Vert 3: no MedMij_geboortedatum: invalid_request, with iss, passes the library', async () => {
    const flow = await pgo('openid 48 onbehalfof');
    const { callback } = await new Browser().walk(flow.url);
    assert(callback && new URL(callback).searchParams.get('iss') === ISSUER, callback);
    // Without it, the library would refuse the response before reading the error (RFC 9207).
    const bare = new URL(callback);
    bare.searchParams.delete('iss');
    let refusedBare = false;
    try {
      await grant(bare.href, flow);
    } catch (e) {
      refusedBare = (e.error ?? e.cause?.error) !== 'invalid_request';
    }
    assert(refusedBare, 'openid-client took an error response without iss as the error');
    // openid-client checks state and iss before it reads the error.
    await refusedWith(grant(callback, flow), 'invalid_request');
  }],
  ['Vert 4: another birth date: the page, its link back access_denied with iss', async () => {
    const { flow, page } = await withheld('openid 48 onbehalfof', { MedMij_geboortedatum: '19700902' }, 'piet@onbehalfof', 403, 'De geboortedatum klopt niet');
    const link = page.text.match(/href="(https:\/\/pgo\.example\.nl\/callback\?[^"]+)"/)[1].replaceAll('&#38;', '&').replaceAll('&amp;', '&');
    await refusedWith(grant(link, flow), 'access_denied');
  }],
  ['consent denied: access_denied with the PGO state and the AS iss', async () => {
    const flow = await pgo('openid 48');
    const { callback } = await new Browser().walk(flow.url, { allow: false });
    assert(callback, 'no redirect');
    await refusedWith(grant(callback, flow), 'access_denied');
  }],
  ['PKCE: a wrong code_verifier, then the right one', async () => {
    const flow = await pgo('openid 48');
    const { callback } = await new Browser().walk(flow.url);
    await refusedWith(grant(callback, flow, client.randomPKCECodeVerifier()), 'invalid_grant');
    const tokens = await grant(callback, flow);
    assert(tokens.access_token, 'no token after the retry');
  }],
  ['a login session for another representation: a new login', async () => {
    const browser = new Browser();
    const first = await pgo('openid 48');
    assert((await browser.walk(first.url)).callback, 'self');
    const second = await pgo('openid 48 onbehalfof', ONBEHALFOF);
    const { callback, page } = await browser.walk(second.url, { login: 'piet@onbehalfof' });
    assert(browser.logins === 2, `the existing login was reused (${browser.logins} logins)`);
    assert(callback, `${page?.status} ${page?.text.slice(0, 300)}`);
    assert((await grant(callback, second)).access_token, 'no token');
  }],
  ['fresh_login: a login for themselves, then onbehalfof: a fresh login, released', async () => {
    const browser = new Browser();
    const first = await pgo('openid 48', {}, freshConfig);
    assert((await browser.walk(first.url)).callback, 'self');
    const second = await pgo('openid 48 onbehalfof', ONBEHALFOF, freshConfig);
    const { callback, page } = await browser.walk(second.url, { login: 'piet@onbehalfof' });
    assert(browser.logins === 2, `no fresh login (${browser.logins} logins)`);
    assert(callback, `${page?.status} ${page?.text.slice(0, 300)}`);
    assert((await grant(callback, second)).access_token, 'no token');
  }],
  ['fresh_login off: a login for themselves reused for onbehalfof: Vert 1', async () => {
    const browser = new Browser();
    const first = await pgo('openid 48', {}, staleConfig);
    assert((await browser.walk(first.url)).callback, 'self');
    const second = await pgo('openid 48 onbehalfof', ONBEHALFOF, staleConfig);
    const { callback, page } = await browser.walk(second.url, { login: 'piet@onbehalfof' });
    assert(!callback, `released: ${callback}`);
    assert(browser.logins === 1, `${browser.logins} logins`);
    assert(page.status === 403 && page.text.includes('namens een ander is niet gelukt'), `${page.status} ${page.text.slice(0, 300)}`);
  }],
];

let passed = 0;
let failed = 0;
for (const [name, run] of cases) {
  try {
    await run();
    passed += 1;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}: ${e.stack ?? e}`);
  }
}
for (const proc of proxies) proc.kill('SIGTERM');
asServer.close();
plainAs.close();
if (failed) {
  for (const line of proxyLog) if (line.includes('decision')) console.log(line);
}
console.log(`oidc-provider: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
