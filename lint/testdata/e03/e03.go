// Package e03 holds processes that use the network, and some that do not.
package e03

import (
	"net"
	"net/http"

	"github.com/theus-run/theus/worker"
)

func Defs() []worker.Def {
	return []worker.Def{
		worker.Process("fetch", worker.Contract{Effect: true}, fetch),
		worker.Process("parse", worker.Contract{}, parse),
	}
}

func fetch(ctx *worker.Ctx, _ worker.None) (int, error) {
	resp, err := http.Get("http://example.com") // want `POP-E03 http.Get uses the network`
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	c, err := net.Dial("tcp", "localhost:1") // want `POP-E03 net.Dial uses the network`
	if err != nil {
		return 0, err
	}
	c.Close() // want `POP-E03 net.Conn.Close uses the network`
	return resp.StatusCode, nil
}

func parse(ctx *worker.Ctx, in struct{ Addr string }) (string, error) {
	host, _, err := net.SplitHostPort(in.Addr)
	if err != nil {
		return "", err
	}
	h := http.Header{}
	h.Set("host", host)
	return net.ParseIP(host).String() + http.StatusText(200) + h.Get("host"), nil
}

// Serve is no process: it may listen.
func Serve() error { return http.ListenAndServe(":0", nil) }
