// Express 5 reader. req.query: qs ('query parser' = 'extended': `a[]`, `a[k]`,
// duplicates -> array, '&' only, depth 5, arrayLimit 20). req.body: only what
// express.urlencoded({extended: true}) parses (application/x-www-form-urlencoded,
// any method, via qs); Express parses no body by default and has no merged view
// in v5 (req.param() is gone), so there is no "merged" and no "all".
const express = require('express');
const { AUTHORIZE, TOKEN, pick } = require('./common');

const app = express();
app.set('query parser', 'extended');
app.set('x-powered-by', false);
app.use(express.urlencoded({ extended: true }));

function echo(route) {
  return (req, res) => {
    res.json({ reader: 'express', route, query: pick(req.query), form: pick(req.body) });
  };
}

// Default router settings: case-insensitive, non-strict (trailing '/' optional),
// matched against the raw (still percent-encoded) req.path.
app.all(AUTHORIZE, echo('authorize'));
app.all(TOKEN, echo('token'));
app.use(echo('other'));
// A body the parser rejects still gets an answer showing the query as read.
app.use((err, req, res, next) => res.status(err.status || 500).json({ reader: 'express', error: String(err.message) }));

const server = app.listen(0, '127.0.0.1', () => console.log(`LISTENING ${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
