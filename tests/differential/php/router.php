<?php
// PHP reader: run as `php -S 127.0.0.1:PORT router.php` (the built-in server hands
// every request to this script). PHP itself has no router, so "route" follows the
// front-controller idiom of Symfony/Laravel: the REQUEST_URI up to the first '?',
// rawurldecode()d, compared exactly (case-sensitive, no slash or dot cleaning).
//
// $_GET / $_POST / $_REQUEST are PHP's own parsing (php_default_treat_data):
// separator '&' only (arg_separator.input), '.', ' ', '[' (unpaired) in names
// become '_', a name is cut at NUL, `a[]`/`a[k]` build arrays, the last value wins.
// $_POST is filled only for POST with application/x-www-form-urlencoded or
// multipart/form-data. $_REQUEST = GET then POST (Debian php.ini: request_order=GP),
// so POST wins in "merged". PHP has no list accessor, so no "all".
$GUARDED = ['client_id', 'redirect_uri', 'response_type', 'scope', 'state',
    'MedMij_geboortedatum', 'response_mode', 'request', 'request_uri',
    'grant_type', 'code', 'code_verifier'];

function pick(array $src, array $names) {
    $out = [];
    foreach ($names as $n) {
        // A value may be an array when the request used `name[]`; it is reported as is.
        $out[$n] = array_key_exists($n, $src) ? $src[$n] : null;
    }
    return $out;
}

$uri = $_SERVER['REQUEST_URI'];
$q = strpos($uri, '?');
$path = rawurldecode($q === false ? $uri : substr($uri, 0, $q));
$route = 'other';
if ($path === (getenv('READER_AUTHORIZE_PATH') ?: '/oauth2/authorize')) {
    $route = 'authorize';
} elseif ($path === (getenv('READER_TOKEN_PATH') ?: '/oauth2/token')) {
    $route = 'token';
}

header('Content-Type: application/json');
// Values are raw bytes in PHP; JSON cannot carry invalid UTF-8, so each invalid
// sequence is shown as U+FFFD (PHP itself does not replace anything).
echo json_encode([
    'reader' => 'php',
    'route' => $route,
    'query' => (object) pick($_GET, $GUARDED),
    'form' => (object) pick($_POST, $GUARDED),
    'merged' => (object) pick($_REQUEST, $GUARDED),
], JSON_INVALID_UTF8_SUBSTITUTE | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
