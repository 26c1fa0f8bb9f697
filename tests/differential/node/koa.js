// Koa reader. ctx.query: Node's querystring.parse (duplicates -> array, no `[]`
// nesting, '&' only). ctx.request.body: koa-bodyparser defaults (enableTypes json
// and form: application/json and application/x-www-form-urlencoded, the latter via
// co-body + qs with allowDots=true). Koa has no merged view and no list accessor.
const Koa = require('koa');
const Router = require('@koa/router');
const bodyParser = require('koa-bodyparser');
const { AUTHORIZE, TOKEN, pick } = require('./common');

const app = new Koa();
const router = new Router(); // defaults: case-insensitive, non-strict trailing slash

function echo(route) {
  return (ctx) => {
    ctx.body = { reader: 'koa', route, query: pick(ctx.query), form: pick(ctx.request.body) };
  };
}

router.all(AUTHORIZE, echo('authorize'));
router.all(TOKEN, echo('token'));

app.use(async (ctx, next) => {
  try {
    await next();
  } catch (err) { // body parse errors: co-body sets err.status (400/413/415)
    ctx.status = err.status || 500;
    ctx.body = { reader: 'koa', error: String(err.message) };
  }
});
app.use(bodyParser());
app.use(router.routes());
app.use(async (ctx, next) => { // catch-all: only when no route set a body
  if (ctx.body === undefined) echo('other')(ctx);
  await next();
});

const server = app.listen(0, '127.0.0.1', () => console.log(`LISTENING ${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
