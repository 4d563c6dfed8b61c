// Command goproxy is the Go contender of the proxy benchmark
// (scripts/bench/proxy.sh): the standard library's
// net/http/httputil.ReverseProxy in front of one backend, with a keep-alive
// transport and no logging, as a Go service would put one in front of
// another.
package main

import (
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9002", "address to listen on")
	backend := flag.String("backend", "http://127.0.0.1:9000", "URL of the backend every request goes to")
	idle := flag.Int("idle", 1024, "idle keep-alive connections kept to the backend (at least wrk's connection count)")
	flag.Parse()

	target, err := url.Parse(*backend)
	if err != nil {
		log.Fatalf("bad -backend %q: %v", *backend, err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.Transport = &http.Transport{
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   time.Second,
			KeepAlive: 60 * time.Second,
		}).DialContext,
		MaxIdleConns:        *idle,
		MaxIdleConnsPerHost: *idle,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	// No log line per failed request: the benchmark counts errors itself.
	proxy.ErrorLog = log.New(io.Discard, "", 0)

	server := &http.Server{
		Addr:              *listen,
		Handler:           proxy,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("listen %s: %v", *listen, err)
	}
	log.Printf("goproxy listening on %s, backend %s", ln.Addr(), target)
	log.Fatal(server.Serve(ln))
}
