// Go reader: net/http server + http.ServeMux, standard library only.
// r.URL.Query() = url.ParseQuery(RawQuery): '&' only; since Go 1.17 a pair with
// ';' is dropped (ParseQuery returns an error that Query() ignores); Get returns
// the FIRST value. r.ParseMultipartForm (what r.FormValue calls) fills r.PostForm
// from urlencoded bodies of POST/PUT/PATCH and from multipart bodies, and r.Form =
// PostForm values first, then query values, so "merged" (FormValue) prefers the body.
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
)

var guarded = []string{"client_id", "redirect_uri", "response_type", "scope", "state",
	"MedMij_geboortedatum", "response_mode", "request", "request_uri",
	"grant_type", "code", "code_verifier"}

func env(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

// single reports v.Get(name) (first value) or null; Go keeps raw bytes, and
// encoding/json turns invalid UTF-8 into U+FFFD.
func single(v url.Values) map[string]interface{} {
	out := map[string]interface{}{}
	for _, n := range guarded {
		if vs, ok := v[n]; ok && len(vs) > 0 {
			out[n] = v.Get(n)
		} else {
			out[n] = nil
		}
	}
	return out
}

func lists(v url.Values) map[string][]string {
	out := map[string][]string{}
	for _, n := range guarded {
		if len(v[n]) > 0 {
			out[n] = v[n]
		}
	}
	return out
}

func echo(w http.ResponseWriter, r *http.Request, route, location string) {
	query := r.URL.Query()
	if err := r.ParseMultipartForm(32 << 20); err != nil && err != http.ErrNotMultipart {
		// A malformed body still leaves whatever ParseForm managed to read.
		fmt.Fprintln(os.Stderr, "form:", err)
	}
	body := map[string]interface{}{
		"reader": "go", "route": route,
		"query": single(query), "form": single(r.PostForm), "merged": single(r.Form),
		"all": map[string]interface{}{"query": lists(query), "form": lists(r.PostForm), "merged": lists(r.Form)},
	}
	if location != "" {
		body["location"] = location
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(body)
}

func handler(route string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { echo(w, r, route, "") }
}

func main() {
	// ServeMux (Go 1.19): exact patterns, case-sensitive, matched on the decoded
	// r.URL.Path; a path that is not clean ('//', '.', '..') gets a 301 to the
	// cleaned path before any handler runs.
	mux := http.NewServeMux()
	mux.HandleFunc(env("READER_AUTHORIZE_PATH", "/oauth2/authorize"), handler("authorize"))
	mux.HandleFunc(env("READER_TOKEN_PATH", "/oauth2/token"), handler("token"))
	mux.HandleFunc("/", handler("other"))

	top := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Buffer the mux's answer: only ServeMux's own clean-path redirect answers
		// with a Location, and it runs before (instead of) any handler.
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, r)
		if loc := rec.Header().Get("Location"); loc != "" {
			echo(w, r, "redirect", loc)
			return
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Printf("LISTENING %d\n", ln.Addr().(*net.TCPAddr).Port)
	panic(http.Serve(ln, top))
}
