// Shared by express.js and koa.js: the guarded names and the JSON shape.
const GUARDED = ['client_id', 'redirect_uri', 'response_type', 'scope', 'state',
  'MedMij_geboortedatum', 'response_mode', 'request', 'request_uri',
  'grant_type', 'code', 'code_verifier'];
const AUTHORIZE = process.env.READER_AUTHORIZE_PATH || '/oauth2/authorize';
const TOKEN = process.env.READER_TOKEN_PATH || '/oauth2/token';

// obj[name] exactly as the app would read it: a string, or an array/object when
// qs/querystring built one (reported as that JSON structure). Own properties only,
// so `__proto__`-style names do not leak Object.prototype members.
function pick(obj) {
  const out = {};
  for (const n of GUARDED) {
    out[n] = obj && Object.prototype.hasOwnProperty.call(obj, n) ? obj[n] : null;
  }
  return out;
}

module.exports = { GUARDED, AUTHORIZE, TOKEN, pick };
