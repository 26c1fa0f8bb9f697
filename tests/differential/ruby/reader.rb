# Rack reader (Debian ruby-rack 2.2, served by WEBrick through Rack's own handler).
# Rack::Request#GET = Rack::QueryParser#parse_nested_query(QUERY_STRING, '&;') --
# Rack 2 still splits on ';' as well as '&'. #POST parses urlencoded and multipart
# bodies, and also a POST with no Content-Type at all (form_data? in Rack 2.2).
# #params = GET.merge(POST), so the body wins. `a[]`/`a[k]` nest; last value wins.
# Rack has no list accessor, so no "all".
require 'json'
require 'rack'
require 'rack/handler/webrick'

GUARDED = %w[client_id redirect_uri response_type scope state MedMij_geboortedatum
             response_mode request request_uri grant_type code code_verifier].freeze
AUTHORIZE = ENV.fetch('READER_AUTHORIZE_PATH', '/oauth2/authorize')
TOKEN = ENV.fetch('READER_TOKEN_PATH', '/oauth2/token')

# Rack keeps the decoded bytes as they are (tagged UTF-8, possibly invalid); JSON
# cannot carry invalid UTF-8, so those bytes are shown as U+FFFD here.
def scrub(v)
  case v
  when String then v.dup.force_encoding(Encoding::UTF_8).scrub("\uFFFD")
  when Array then v.map { |x| scrub(x) }
  when Hash then v.to_h { |k, x| [scrub(k), scrub(x)] }
  else v
  end
end

def pick(h)
  GUARDED.to_h { |n| [n, h.key?(n) ? scrub(h[n]) : nil] }
end

def echo(route)
  lambda do |env|
    req = Rack::Request.new(env)
    read = lambda do |what|
      pick(req.public_send(what))
    rescue StandardError => e # e.g. Rack::QueryParser::InvalidParameterError
      { 'error' => e.class.name }
    end
    body = { reader: 'rack', route: route, query: read.call(:GET), form: read.call(:POST),
             merged: read.call(:params) }
    [200, { 'Content-Type' => 'application/json' }, [JSON.generate(body)]]
  end
end

# Rack's own router is Rack::URLMap: longest prefix first, a mount matches the path
# itself or path + '/...', '/' in the location matches '/+' (so '//' is tolerated),
# case-sensitive, on the PATH_INFO the server hands over.
app = Rack::URLMap.new(AUTHORIZE => echo('authorize'), TOKEN => echo('token'), '/' => echo('other'))

server = nil
Rack::Handler::WEBrick.run(
  app, Host: '127.0.0.1', Port: 0,
       Logger: WEBrick::Log.new($stderr, WEBrick::Log::WARN), AccessLog: [],
       StartCallback: -> { $stdout.puts "LISTENING #{server.listeners[0].addr[1]}"; $stdout.flush }
) do |s|
  server = s
  trap('TERM') { s.shutdown } # a clean exit instead of a FATAL trace on SIGTERM
end
