// A stock oidc-provider AS, as a DVA runs one, plus the three additions of
// docs/integrating.md in the framework's own hooks (marked (1), (3) below; (2) is the
// provider's own code redirect). Nothing else of the stock flow is changed: the built-in
// login and consent interactions, PKCE required for the public client, RFC 9207 `iss`.
//
// The stand-in for DigiD is the built-in login page: the login `piet@onbehalfof` is "logged in
// on behalf of piet by machtiging", `kind@onbehalfofchild` by parental authority, any other
// login is the Persoon themselves. The code is issued for that account (ext.vert.authint.202).
import Provider, { interactionPolicy } from 'oidc-provider';

// The Vertegenwoordigden the AS knows, with their birth dates on record.
const RECORDS = { piet: '19700901', kind: '20200315' };

/** What a login (the account id) used: [kind, birth date], or ['none']. */
function used(accountId) {
  const [person, kind] = String(accountId ?? '').split('@');
  return kind && RECORDS[person] ? [kind, RECORDS[person]] : ['none'];
}

/**
 * `freshLoginByProxy`: the proxy runs with representation.fresh_login and asks for the new
 * login itself (prompt=login, which the provider honours), so the AS needs no Check of its own.
 */
export function createAs(issuer, { freshLoginByProxy = false } = {}) {
  // (1) What each flow asked for, kept with the flow (its sealed state names it): the header
  // arrives on the authorization request only.
  const flows = new Map();

  const policy = interactionPolicy.base();
  // (1) A login session for another representation than the one now asked is not reused:
  // DigiD must be asked again. Judged once per flow, on the login the flow found: within the
  // flow, what the Persoon then chose at DigiD stands (the proxy judges that).
  if (!freshLoginByProxy) {
    policy.get('login').checks.add(
      new interactionPolicy.Check('vert_representation', 'another representation is asked', (ctx) => {
        const flow = flows.get(ctx.oidc.params.state);
        if (!flow || flow.checked) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
        flow.checked = true;
        const accountId = ctx.oidc.session?.accountId;
        return accountId && used(accountId)[0] !== flow.requested
          ? interactionPolicy.Check.REQUEST_PROMPT
          : interactionPolicy.Check.NO_NEED_TO_PROMPT;
      }),
    );
  }

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'pgo.example.nl',
        token_endpoint_auth_method: 'none',
        redirect_uris: ['https://pgo.example.nl/callback'],
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
    ],
    scopes: ['openid', '48'],
    // MedMij's parameter: the proxy checks it; the AS lets it through.
    extraParams: { MedMij_geboortedatum: null },
    interactions: { policy },
    findAccount: async (ctx, accountId) => ({ accountId, claims: async () => ({ sub: accountId }) }),
    // Advertise only what the proxy lets through: response_type code, response_mode query,
    // no pushed or signed request objects (the proxy refuses them at the authorize endpoint).
    responseTypes: ['code'],
    features: {
      devInteractions: { enabled: true },
      pushedAuthorizationRequests: { enabled: false },
      requestObjects: { enabled: false },
    },
    pkce: { required: () => true },
  });
  // Behind medmij-vert-proxy: X-Forwarded-* are the proxy's.
  provider.proxy = true;

  provider.use(async (ctx, next) => {
    // (1) Only the proxy sets this header; absent means no representation asked.
    if (ctx.path === '/auth' && ctx.query.state && !flows.has(ctx.query.state)) {
      flows.set(ctx.query.state, { requested: ctx.get('x-vert-requested') || 'none' });
    }
    await next();
  });

  // (3) On the code redirect: what was used during this login, and for whom.
  provider.on('authorization.success', (ctx, out) => {
    if (!out.code) return;
    const [kind, birthdate] = used(ctx.oidc.session?.accountId);
    ctx.set('X-Vert-Representation', kind);
    if (birthdate) ctx.set('X-Vert-Birthdate', birthdate);
  });
  return provider;
}
